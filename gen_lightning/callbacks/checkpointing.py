"""Checkpoints that survive kills, full disks and signals.

- ``AtomicCheckpointIO``: every checkpoint (``last.ckpt``, ``best.ckpt``) is written to a temporary name in its own
  folder, synced, read back (its archive index, through a memory map: cheap), and only then renamed onto the
  previous file (``gen_lightning/files.py``). Lightning's own writer goes through a temporary file in ``$TMPDIR``
  whose "move" is a copy that truncates the target first when the run directory is on another file system: a kill
  during that copy left a 0-byte ``last.ckpt``. Here the previous checkpoint is whole until the new one is.
- ``LastCheckpoint``: ``last.ckpt`` written every N training steps, after every validation and when training ends,
  never just before a validation (``validation.validation_follows``, which counts the final validation of
  ``FinalValidation`` too). Lightning resumes a checkpoint written at the batch that precedes a validation *after*
  that validation point, so the validation would be skipped and the resumed run's history would differ from the
  uninterrupted run's. Periodic saves therefore skip such batches; the save at the end of the validation covers
  them.
- ``StopOnSignal``: SIGTERM (what SLURM, Kubernetes and ``timeout`` send; Lightning notes it in
  ``trainer.received_sigterm``) or a first Ctrl-C (SIGINT) ends the run at the next batch boundary with
  ``last.ckpt`` at that step, written where a periodic save would be, so ``resume=true`` continues exactly; it
  raises ``RunInterrupted``, ``run/train.py`` records the run as interrupted, and the command exits 128 + the
  signal number (143, 130).
  A second Ctrl-C stops at once, as Python's default does.
"""

from __future__ import annotations

import signal
from pathlib import Path

import lightning as L
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import ModelCheckpoint

from gen_lightning.callbacks.validation import validation_follows
from gen_lightning.files import replacing, torch_save
from gen_lightning.run_dir import RunDir


class AtomicCheckpointIO(TorchCheckpointIO):
    """``TorchCheckpointIO`` whose writes replace the previous file only once the new one is whole and readable."""

    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options, got {storage_options!r}")
        with replacing(path) as tmp:
            torch_save(checkpoint, tmp)  # a full disk is its OSError, one line
            torch.load(tmp, map_location="cpu", weights_only=True, mmap=True)  # the archive is whole: readable


class LastCheckpoint(L.Callback):
    def __init__(self, run_dir: str | Path, every_n_train_steps: int = 200) -> None:
        self.path = RunDir(run_dir).last
        self.every_n_train_steps = every_n_train_steps

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        n = self.every_n_train_steps
        if n > 0 and trainer.global_step % n == 0 and not validation_follows(trainer, batch_idx):
            trainer.save_checkpoint(self.path, weights_only=False)  # a full state, to resume from

    def on_validation_end(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking:
            trainer.save_checkpoint(self.path, weights_only=False)

    def on_train_end(self, trainer, pl_module) -> None:
        # Before the metric protocols' final evaluation (they come later in the callback list): a run killed
        # during that evaluation resumes from its final weights and only evaluates (RunSummary.finish_evaluations).
        trainer.save_checkpoint(self.path, weights_only=False)


class BestCheckpoint(ModelCheckpoint):
    """``checkpoints/best.ckpt``: Lightning's ``ModelCheckpoint`` keeping the one best state by ``monitor``."""

    def __init__(self, run_dir: str | Path, monitor: str, mode: str = "min") -> None:
        layout = RunDir(run_dir)
        super().__init__(
            dirpath=layout.checkpoints,
            filename=layout.best.stem,
            monitor=monitor,
            mode=mode,
            save_top_k=1,
            enable_version_counter=False,
        )


class RunInterrupted(Exception):
    """A signal ended the run; ``saved_step`` is the step of the checkpoint to resume from (None: none written)."""

    def __init__(self, signum: int, saved_step: int | None, path: Path) -> None:
        self.signum, self.saved_step, self.path = signum, saved_step, path
        name = signal.Signals(signum).name
        where = (
            f"{path} holds step {saved_step}: resume with run_dir={path.parent.parent} resume=true"
            if saved_step is not None
            else "no checkpoint had been written yet, so the run cannot be resumed"
        )
        super().__init__(f"interrupted by {name}; {where}")

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class StopOnSignal(L.Callback):
    """See the file docstring; ``signum`` and ``saved_step`` tell ``train.fit`` what happened."""

    def __init__(self, run_dir: str | Path) -> None:
        self.path = RunDir(run_dir).last
        self.signum: int | None = None
        self.saved_step: int | None = None
        self._previous_sigint = None

    def on_train_start(self, trainer, pl_module) -> None:
        self.saved_step = trainer.global_step if trainer.ckpt_path else None  # the step resumed from

    def on_fit_start(self, trainer, pl_module) -> None:
        if trainer.is_global_zero and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            self._previous_sigint = signal.signal(signal.SIGINT, self._on_sigint)

    def _on_sigint(self, signum, frame) -> None:
        if self.signum is not None:  # the second Ctrl-C: stop now
            raise KeyboardInterrupt
        print("\nCtrl-C: the run stops at the end of this batch with a checkpoint (Ctrl-C again: at once)", flush=True)
        self.signum = signal.SIGINT

    def stopping(self, trainer) -> bool:
        if trainer.received_sigterm and self.signum is None:
            self.signum = signal.SIGTERM
        return self.signum is not None

    def on_save_checkpoint(self, trainer, pl_module, checkpoint) -> None:
        self.saved_step = int(checkpoint["global_step"])

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        # A validation due after this batch runs first and saves last.ckpt at its end (LastCheckpoint): a save here
        # would make the resumed run skip it. (Lightning aborts a validation on SIGTERM: the run then resumes from
        # the checkpoint before, which is still exact.)
        if not self.stopping(trainer) or validation_follows(trainer, batch_idx):
            return
        if self.saved_step != trainer.global_step:
            trainer.save_checkpoint(self.path, weights_only=False)
        raise self.interruption()

    def on_validation_end(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking and self.stopping(trainer):
            raise self.interruption()  # after LastCheckpoint's save (it comes first in the callback list)

    def teardown(self, trainer, pl_module, stage: str) -> None:
        if self._previous_sigint is not None:
            signal.signal(signal.SIGINT, self._previous_sigint)
            self._previous_sigint = None

    def interruption(self) -> RunInterrupted | None:
        return None if self.signum is None else RunInterrupted(self.signum, self.saved_step, self.path)
