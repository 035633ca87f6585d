"""The verdict of ``debug=overfit`` (conf/debug/overfit.yaml): did the training loss fall on the repeated batches?

Overfitting a handful of batches is the standard first check of a new model (Karpathy, "A Recipe for Training
Neural Networks", 2019): a model that cannot drive its loss down on two batches it sees hundreds of times has a bug
in its loss, its optimizer step or its data, whatever it does on the full data set.
"""

from __future__ import annotations

import math
import warnings

import lightning as L
import torch


class OverfitCheck(L.Callback):
    """Compares the mean training loss over the first epoch's batches with the mean over the last epoch's (the same
    batches under ``overfit_batches``); prints both and warns when the last is not below ``target_ratio`` of the
    first."""

    def __init__(self, key: str = "train/loss", target_ratio: float = 0.1) -> None:
        self.key = key
        self.target_ratio = target_ratio
        self.losses: list[float] = []
        self.result: dict | None = None

    def on_train_batch_end(self, trainer: L.Trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        value = trainer.callback_metrics.get(self.key)
        if isinstance(value, torch.Tensor):
            self.losses.append(float(value))

    def on_train_end(self, trainer: L.Trainer, pl_module) -> None:
        if not trainer.is_global_zero:
            return
        window = max(1, int(trainer.num_training_batches)) if math.isfinite(trainer.num_training_batches) else 1
        if len(self.losses) < 2 * window:
            warnings.warn(f"overfit check: too few steps logged {self.key} ({len(self.losses)}) to judge", stacklevel=2)
            return
        first = sum(self.losses[:window]) / window
        last = sum(self.losses[-window:]) / window
        ratio = last / first if first > 0 else math.nan
        passed = math.isfinite(ratio) and ratio < self.target_ratio
        self.result = {"first": first, "last": last, "ratio": ratio, "steps": len(self.losses), "passed": passed}
        print(
            f"overfit check: {self.key} {first:.4g} -> {last:.4g} over {len(self.losses)} steps on {window} "
            f"repeated batch(es) ({ratio:.1%} of the start): " + ("passed" if passed else "NOT below the target")
        )
        if not passed:
            warnings.warn(
                f"overfit check: {self.key} fell only to {ratio:.1%} of its start (target < {self.target_ratio:.0%}): "
                "check the loss, the optimizer step and the batches (or the loss has a floor above zero, as a "
                "VAE's KL term or a diffusion model's noise)",
                stacklevel=2,
            )
