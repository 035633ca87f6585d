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
    batches under ``overfit_batches``) and prints a verdict: near zero (below ``target_ratio`` of the start: what a
    model that can memorise reaches), falling but with a floor (a VAE's KL term and the pixels' own entropy, a
    diffusion model's noise), or not falling (below ``stuck_ratio``: a warning, something is broken)."""

    def __init__(self, key: str = "train/loss", target_ratio: float = 0.1, stuck_ratio: float = 0.9) -> None:
        self.key = key
        self.target_ratio = target_ratio
        self.stuck_ratio = stuck_ratio
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
        if math.isfinite(ratio) and ratio < self.target_ratio:
            verdict = "near zero: passed"
        elif math.isfinite(ratio) and ratio < self.stuck_ratio:
            verdict = (
                f"falling, not near zero (below {self.target_ratio:.0%} is what a model that can memorise reaches; "
                "a loss with a floor, as a VAE's KL term and pixel entropy or a diffusion model's noise, stays above)"
            )
        else:
            verdict = "NOT falling"
        self.result = {"first": first, "last": last, "ratio": ratio, "steps": len(self.losses), "verdict": verdict}
        print(
            f"overfit check: {self.key} {first:.4g} -> {last:.4g} over {len(self.losses)} steps on {window} "
            f"repeated batch(es) ({ratio:.1%} of the start): {verdict}"
        )
        if verdict == "NOT falling":
            warnings.warn(
                f"overfit check: {self.key} did not fall on batches seen {len(self.losses) // window} times "
                f"({ratio:.1%} of its start): check the loss, the optimizer step (learning rate, frozen weights) and "
                "the batches",
                stacklevel=2,
            )
