"""The training progress bar, measured against the budget that ends the run first.

Lightning's bar counts the batches of one epoch and shows ``Epoch 0/49``, so ``trainer.max_steps=2000`` on a text
corpus of 13,077 batches an epoch shows ``2000/13077`` and an ETA for an epoch (and 49 more) that the run will never
do. This bar counts the training batches of the whole run against the first of the three budgets to end:
``trainer.max_epochs``, ``trainer.max_steps`` (optimizer steps: a GAN steps two optimizers a batch, gradient
accumulation steps once in k batches; the ratio is measured as the run goes) and ``trainer.max_time`` (the
Timer's time left, at the speed measured so far, validations included). Its ETA is the run's, and the description
names the budget that ends it: ``Epoch 0/0 (max_steps 2000)``.

Lightning's Rich bar where ``rich`` is installed (as Lightning chooses), its tqdm bar otherwise.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import lightning as L
from lightning.pytorch.callbacks import RichProgressBar, Timer, TQDMProgressBar
from lightning.pytorch.callbacks.progress.rich_progress import _RICH_AVAILABLE


@dataclass(frozen=True)
class Budget:
    done: int  # training batches of the run so far (resumed runs included)
    total: float  # batches when the first budget ends (inf: no budget known ends it)
    last_epoch: float  # the epoch in which it ends
    ends_by: str  # "max_epochs" | "max_steps" | "max_time"


def budget(
    epoch: int,
    done: int,
    epoch_batches: float,
    max_epochs: int | None,
    steps_left: int | None,
    steps_per_batch: float,
    time_left: float | None,
    batches_per_s: float | None,
) -> Budget:
    """Where the run ends, in training batches: ``done`` batches so far, ``epoch`` the current one (of
    ``epoch_batches`` batches, possibly inf); ``steps_left`` optimizer steps to ``max_steps`` (None: no step
    budget), ``time_left`` seconds to ``max_time`` (None: no time budget)."""
    left = {}
    if max_epochs is not None and max_epochs >= 0:
        left["max_epochs"] = max(0.0, max_epochs * epoch_batches - done)
    if steps_left is not None:
        left["max_steps"] = math.ceil(max(0, steps_left) / steps_per_batch)
    if time_left is not None and batches_per_s:
        left["max_time"] = max(0.0, time_left) * batches_per_s
    if not left:
        return Budget(done, math.inf, math.inf, "")
    ends_by = min(left, key=left.get)
    total = done + math.ceil(left[ends_by]) if math.isfinite(left[ends_by]) else math.inf
    last_epoch = max(epoch, math.ceil(total / epoch_batches) - 1) if math.isfinite(epoch_batches) else epoch
    return Budget(done, total, last_epoch, ends_by)


class _BudgetMeter:
    """What the bar needs from the trainer: batches done, the measured steps per batch and batches per second."""

    def __init__(self) -> None:
        self._start: tuple[int, int, float] | None = None  # (batches, global_step, time) when this process started

    def start(self, trainer: L.Trainer) -> None:
        self._start = (self.done(trainer), trainer.global_step, time.monotonic())

    @staticmethod
    def done(trainer: L.Trainer) -> int:
        return trainer.fit_loop.epoch_loop.batch_progress.total.processed  # counted before on_train_batch_end

    def measure(self, trainer: L.Trainer) -> Budget:
        batches0, step0, time0 = self._start or (0, 0, time.monotonic())
        done = self.done(trainer)
        ran, stepped = done - batches0, trainer.global_step - step0
        steps_per_batch = stepped / ran if ran and stepped else 1.0 / max(1, trainer.accumulate_grad_batches)
        elapsed = time.monotonic() - time0
        timer = next((cb for cb in trainer.callbacks if isinstance(cb, Timer)), None)
        max_steps = trainer.max_steps if trainer.max_steps is not None and trainer.max_steps >= 0 else None
        return budget(
            epoch=trainer.current_epoch,
            done=done,
            epoch_batches=float(trainer.num_training_batches),
            max_epochs=trainer.max_epochs,
            steps_left=None if max_steps is None else max_steps - trainer.global_step,
            steps_per_batch=steps_per_batch,
            time_left=timer.time_remaining() if timer is not None else None,
            batches_per_s=ran / elapsed if ran and elapsed > 0 else None,
        )


def description(epoch: int, b: Budget, max_steps: int, max_time_s: float | None) -> str:
    """``Epoch 3/49``, or ``Epoch 0/0 (max_steps 2000)`` when another budget than the epochs ends the run."""
    last = "?" if not math.isfinite(b.last_epoch) else int(b.last_epoch)
    text = f"Epoch {epoch}/{last}"
    if b.ends_by == "max_steps":
        text += f" (max_steps {max_steps})"
    elif b.ends_by == "max_time" and max_time_s is not None:
        text += f" (max_time {time.strftime('%H:%M:%S', time.gmtime(max_time_s))})"
    return text


def _max_time_s(trainer: L.Trainer) -> float | None:
    timer = next((cb for cb in trainer.callbacks if isinstance(cb, Timer)), None)
    return timer._duration if timer is not None else None


class _BudgetBar:
    """What the two bars share: the meter, started when training starts (a resumed run included), and the bar's
    measure and description of the budget."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.meter = _BudgetMeter()

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        self.meter.start(trainer)

    def measured(self, trainer: L.Trainer) -> tuple[Budget, str]:
        b = self.meter.measure(trainer)
        return b, description(trainer.current_epoch, b, trainer.max_steps, _max_time_s(trainer))


class RichBudgetProgressBar(_BudgetBar, RichProgressBar):
    """Lightning's Rich bar over the run's batches to the first budget (see the file docstring)."""

    @property
    def total_train_batches(self) -> float:
        return self.meter.measure(self.trainer).total

    def _get_train_description(self, current_epoch: int) -> str:
        b = self.meter.measure(self.trainer)
        return description(current_epoch, b, self.trainer.max_steps, _max_time_s(self.trainer))

    def _show(self, trainer: L.Trainer) -> None:
        if self.progress is None or self.train_progress_bar_id is None or self.is_disabled:
            return
        b, text = self.measured(trainer)
        bar = self.train_progress_bar_id
        self.progress.update(bar, completed=b.done, total=b.total, description=text, visible=True)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Lightning resets the bar (and its speed estimate) every epoch; one bar runs over the whole budget here.
        if self.train_progress_bar_id is None or self._leave:
            super().on_train_epoch_start(trainer, pl_module)
            if self.progress is not None and self.train_progress_bar_id is not None:
                # A resumed run starts at its batch count, not at 0 (a jump would count as speed in the ETA).
                self.progress.reset(self.train_progress_bar_id, completed=self.meter.done(trainer))
        self._show(trainer)
        self.refresh()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        if not self.is_disabled and self.train_progress_bar_id is None:
            self._initialize_train_progress_bar_id()  # a run resumed mid-epoch
        self._show(trainer)
        self._update_metrics(trainer, pl_module)
        self.refresh()


class TQDMBudgetProgressBar(_BudgetBar, TQDMProgressBar):
    """Lightning's tqdm bar over the run's batches to the first budget (see the file docstring)."""

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        self.train_progress_bar.reset()
        self._show(trainer)

    def _show(self, trainer: L.Trainer) -> None:
        bar = self.train_progress_bar
        if bar is None or bar.disable:
            return
        b, text = self.measured(trainer)
        bar.total = b.total if math.isfinite(b.total) else None
        bar.n = b.done
        bar.set_description(text)

    def on_train_epoch_start(self, trainer: L.Trainer, *_) -> None:
        if self._leave:
            self.train_progress_bar = self.init_train_tqdm()
        self._show(trainer)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        if self.train_progress_bar is not None and self._should_update(batch_idx + 1, trainer.num_training_batches):
            self._show(trainer)
            self.train_progress_bar.set_postfix(self.get_metrics(trainer, pl_module))


# What conf/callbacks/default.yaml names: the bar Lightning itself would choose, measured against the budget.
BudgetProgressBar = RichBudgetProgressBar if _RICH_AVAILABLE else TQDMBudgetProgressBar
