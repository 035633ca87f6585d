"""When a run validates: on Lightning's schedule, every ``validation.every_n_steps`` batches of a long epoch, and
always after the last training batch.

Lightning validates at epoch ends (every ``check_val_every_n_epoch``) or every ``val_check_interval`` batches. A
budget that ends inside an epoch, or after an epoch that is not a validation epoch, ends with no validation of the
final weights: on a text corpus one epoch is every window of the training split (83,649 batches of tiny
Shakespeare), so ``trainer.max_steps=40`` used to finish "completed" with an empty ``final`` in ``metrics.json``.

- ``step_schedule`` gives epochs longer than ``every_n_steps`` batches a validation every ``every_n_steps`` batches
  too (Lightning's ``val_check_interval``), unless the trainer config already schedules one;
- ``FinalValidation`` makes the last training batch validate when the schedule would not (it sets
  ``trainer.should_stop``, which makes Lightning validate before it stops, and lets that validation run whatever
  ``check_val_every_n_epoch`` says).

``validation_follows`` tells whether a validation comes right after a batch; ``last.ckpt`` is never written there
(``checkpointing.py``), so a run resumed from it never skips a validation.
"""

from __future__ import annotations

import lightning as L


def step_schedule(trainer_options: dict, num_batches: int | None, every_n_steps: int | None) -> dict:
    """``{"val_check_interval": every_n_steps}`` when epochs (``num_batches`` of the training loader, or the
    trainer's ``limit_train_batches``) are longer than that and the trainer options schedule no step validation of
    their own; else ``{}``."""
    if not every_n_steps or num_batches is None or trainer_options.get("val_check_interval") is not None:
        return {}
    limit = trainer_options.get("limit_train_batches")
    if isinstance(limit, int) and not isinstance(limit, bool):
        num_batches = min(num_batches, limit)
    elif isinstance(limit, float):
        num_batches = int(num_batches * limit)
    if trainer_options.get("check_val_every_n_epoch", 1) is None or num_batches <= every_n_steps:
        return {}
    return {"val_check_interval": int(every_n_steps)}


def is_final_batch(trainer: L.Trainer, batch_idx: int) -> bool:
    """Whether training stops after this batch (``global_step`` already counts it): ``max_steps`` is reached, or it
    is the last batch of the last epoch. A ``max_time`` budget is not known in advance."""
    if trainer.max_steps not in (None, -1) and trainer.global_step >= trainer.max_steps:
        return True
    last_epoch = trainer.max_epochs not in (None, -1) and trainer.current_epoch + 1 >= trainer.max_epochs
    return last_epoch and batch_idx + 1 >= trainer.num_training_batches


def scheduled_validation(trainer: L.Trainer, batch_idx: int) -> bool:
    """Whether Lightning's own schedule validates right after this training batch (batch- or epoch-based)."""
    every = trainer.check_val_every_n_epoch
    if every is not None and (trainer.current_epoch + 1) % every != 0:
        return False
    if batch_idx + 1 >= trainer.num_training_batches:
        return True
    interval = trainer.val_check_batch
    if interval is None or interval == float("inf"):
        return False
    iteration = trainer.fit_loop.epoch_loop.total_batch_idx if every is None else batch_idx
    return (iteration + 1) % interval == 0


def validation_follows(trainer: L.Trainer, batch_idx: int) -> bool:
    """Whether a validation runs right after this training batch: scheduled, or the final one."""
    if not trainer.enable_validation:
        return False
    return scheduled_validation(trainer, batch_idx) or is_final_batch(trainer, batch_idx)


class FinalValidation(L.Callback):
    """Validate after the last training batch when Lightning's schedule would not."""

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if not trainer.enable_validation or not is_final_batch(trainer, batch_idx):
            return
        if scheduled_validation(trainer, batch_idx):
            return
        # Lightning validates before it stops when should_stop is set, in an epoch that validates at all.
        trainer.should_stop = True
        if trainer.check_val_every_n_epoch is not None:
            trainer.check_val_every_n_epoch = 1
