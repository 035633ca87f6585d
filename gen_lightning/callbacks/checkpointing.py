"""``last.ckpt``: written every N training steps, after every validation and when training ends, never just before a
validation (``validation.validation_follows``, which counts the final validation of ``FinalValidation`` too).

Lightning resumes a checkpoint written at the batch that precedes a validation *after* that validation point,
so the validation would be skipped and the resumed run's metrics history would differ from the uninterrupted
run's. Periodic saves therefore skip such batches; the save at the end of the validation covers them.
Writes go through ``trainer.save_checkpoint``, which saves to a temporary file and renames it (atomic).
"""

from __future__ import annotations

from pathlib import Path

import lightning as L

from gen_lightning.callbacks.validation import validation_follows


class LastCheckpoint(L.Callback):
    def __init__(self, path: str | Path, every_n_train_steps: int = 200) -> None:
        self.path = Path(path)
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
        # during that evaluation resumes from its final weights and only evaluates (train.finish_evaluations).
        trainer.save_checkpoint(self.path, weights_only=False)
