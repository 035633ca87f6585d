"""Exact resume: the RNG streams and the position in the epoch, which Lightning checkpoints do not keep.

A checkpoint gets the training RNG state (torch, CUDA, numpy, python) at the moment it is written, and how many
batches of the current epoch were done. On resume the RNG state is put back just before the first training batch
(so nothing Lightning does while restoring can shift it), and the epoch's ``EpochSampler`` skips the batches
already seen. Validation runs on a forked RNG with a fixed seed, so it neither consumes the training stream nor
varies from epoch to epoch. Together: a run interrupted after k steps and resumed equals the uninterrupted run.

Two of Lightning's habits are corrected here, because this callback is what makes the resume exact:
- A budget that ends inside an epoch (``max_steps``, the final validation's stop) ends Lightning's epoch loop
  there, and Lightning counts that epoch as finished: the final ``last.ckpt`` said epoch 1 after 10 of 23 batches,
  so a run resumed from it with a larger budget started epoch 1 from its first batch (another data order than the
  uninterrupted run) and recorded its validations under epoch 1. The checkpoint keeps the epoch unfinished.
- On a resume Lightning warns that the run directory's ``checkpoints/`` is not empty, and, mid-epoch, that the
  dataloader is not resumable ("unreliable results"). Both are handled by the project (the run directory's lock and
  ``resume=true``; the sampler's ``skip``), so exactly those two messages are silenced while the resumed fit runs,
  and the log says once where the epoch continues. Lightning's other warnings stay.
"""

from __future__ import annotations

import random
import re
import warnings

import lightning as L
import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_info

from gen_lightning.run_dir import RunDir

STATE_KEY = "gen_lightning"


def rng_state() -> dict:
    """Every global RNG, in types that ``torch.load(weights_only=True)`` accepts (no numpy arrays)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    numpy_state = (kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(gauss))
    state = {"torch": torch.get_rng_state(), "numpy": numpy_state, "python": random.getstate()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_all(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


def _train_sampler(trainer: L.Trainer):
    """The sampler that can skip: a batch sampler (e.g. length buckets) or the loader's item sampler."""
    loader = trainer.train_dataloader
    for sampler in (getattr(loader, "batch_sampler", None), getattr(loader, "sampler", None)):
        if hasattr(sampler, "skip"):
            return sampler
    return None


# Lightning's messages that this callback makes untrue (see the module docstring), matched from their start.
NOT_RESUMABLE = r"You're resuming from a checkpoint that ended before the epoch ended and your dataloader is not"
NOT_EMPTY = "Checkpoint directory {} exists and is not empty"


def unfinished_epoch(progress: dict) -> None:
    """Mark the last epoch of Lightning's ``epoch_progress`` state as started but not processed (mid-epoch)."""
    for counts in (progress["total"], progress["current"]):
        counts["processed"] = counts["completed"] = counts["started"] - 1


class ExactResume(L.Callback):
    def __init__(self, validation_seed: int = 0) -> None:
        self.validation_seed = validation_seed
        self._outer_rng: dict | None = None  # the training RNG, parked while validation runs
        self._pending_rng: dict | None = None  # loaded from a checkpoint, applied before the next batch
        self._pending_skip: tuple[int, int] | None = None  # (epoch, batches already done in it)
        self._epoch = 0
        self._batches = 0
        self._quiet: warnings.catch_warnings | None = None  # the resumed fit's filters of Lightning's warnings

    # ---- Lightning's messages about what this callback handles ---------------------------------------------
    def _silence(self, pattern: str) -> None:
        if self._quiet is None:
            self._quiet = warnings.catch_warnings()
            self._quiet.__enter__()
        warnings.filterwarnings("ignore", message=pattern)

    def _restore_warnings(self) -> None:
        if self._quiet is not None:
            self._quiet.__exit__(None, None, None)
            self._quiet = None

    def setup(self, trainer, pl_module, stage: str) -> None:
        # A fresh run never trains in a directory holding last.ckpt (run/prepare.py refuses it), so a last.ckpt in
        # the run directory means this fit resumes that run, and its checkpoint folders hold its own checkpoints.
        if stage != "fit" or not RunDir(trainer.default_root_dir).last.is_file():
            return
        for cb in trainer.checkpoint_callbacks:
            if dirpath := getattr(cb, "dirpath", None):
                self._silence(re.escape(NOT_EMPTY.format(dirpath)))

    def teardown(self, trainer, pl_module, stage: str) -> None:
        self._restore_warnings()

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        self._restore_warnings()

    # ---- bookkeeping ---------------------------------------------------------------------------------------
    def on_train_start(self, trainer, pl_module) -> None:
        # Lightning calls no on_train_epoch_start for an epoch resumed mid-way, but on_train_start comes before
        # the epoch's data iterator is created: the place to move the sampler past the batches already done.
        self._epoch = trainer.current_epoch
        if self._pending_skip is None:
            return
        epoch, done = self._pending_skip
        self._pending_skip = None
        if epoch != trainer.current_epoch or not 0 < done < trainer.num_training_batches:
            return  # saved at an epoch boundary: Lightning starts the next epoch from its first batch
        sampler = _train_sampler(trainer)
        if sampler is None:
            raise RuntimeError(
                "cannot resume mid-epoch exactly: the training dataloader does not use "
                "gen_lightning.data.loaders.EpochSampler (build it with gen_lightning.data.loaders.train_loader) "
                "or a batch sampler with skip/set_epoch (gen_lightning.data.buckets.BucketBatchSampler)"
            )
        batch_size = trainer.train_dataloader.batch_size  # None when the loader has a batch sampler
        sampler.skip(done * batch_size if batch_size else done)
        self._batches = done
        self._silence(NOT_RESUMABLE)  # Lightning warns next, when its epoch loop restarts
        rank_zero_info(
            f"Resuming mid-epoch at batch {done} of {trainer.num_training_batches} (epoch {epoch}): the project's "
            "sampler state continues the epoch exactly (Lightning's warning that the dataloader is not resumable "
            "does not apply)"
        )

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._epoch = trainer.current_epoch
        self._batches = 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self._pending_rng is not None:
            set_rng_state(self._pending_rng)
            self._pending_rng = None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._batches += 1

    # ---- validation on a forked, fixed-seed RNG ------------------------------------------------------------
    def on_validation_start(self, trainer, pl_module) -> None:
        self._outer_rng = rng_state()
        seed_all(self.validation_seed)

    def on_validation_end(self, trainer, pl_module) -> None:
        if self._outer_rng is not None:
            set_rng_state(self._outer_rng)
            self._outer_rng = None

    # ---- checkpoint ----------------------------------------------------------------------------------------
    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        cls = type(pl_module)
        checkpoint[STATE_KEY] = {
            "target": f"{cls.__module__}.{cls.__qualname__}",
            "rng": self._outer_rng if self._outer_rng is not None else rng_state(),
            "epoch": self._epoch,
            "batches_in_epoch": self._batches,
        }
        # Training stopped inside this epoch (a step budget): Lightning closed its epoch loop and counted the epoch
        # as done. It is not: a resume with a larger budget continues it from the next batch.
        progress = checkpoint.get("loops", {}).get("fit_loop", {}).get("epoch_progress")
        if progress and 0 < self._batches < trainer.num_training_batches and checkpoint["epoch"] == self._epoch + 1:
            unfinished_epoch(progress)
            checkpoint["epoch"] = self._epoch

    def on_load_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        state = checkpoint.get(STATE_KEY)
        if state is None:
            return
        self._pending_rng = state["rng"]
        self._pending_skip = (state["epoch"], state["batches_in_epoch"])
