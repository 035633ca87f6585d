"""Validation metrics of the sequence families, the same names in each: loss, bits per token, perplexity.

All three come from one token-weighted mean of the cross-entropy (nats per token): ``val/bpc`` is that mean
divided by ln 2 (bits per character, or per byte for the byte tokenizer), ``val/ppl`` its exponential (the
perplexity of the whole validation set, not a mean of per-batch perplexities). Each is a torchmetrics
``MeanMetric`` weighted by the number of tokens, logged as a metric object, so under DDP the sums are reduced
over all processes before the division.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torchmetrics import MeanMetric


class BitsPerToken(MeanMetric):
    """Weighted mean of a loss in nats, in bits."""

    def compute(self) -> torch.Tensor:
        return super().compute() / math.log(2.0)


class Perplexity(MeanMetric):
    """exp of the weighted mean of a loss in nats."""

    def compute(self) -> torch.Tensor:
        return super().compute().exp()


class TokenLossMetrics(nn.Module):
    """``{split}/loss``, ``{split}/bpc`` and ``{split}/ppl`` accumulated over an epoch."""

    def __init__(self, split: str = "val") -> None:
        super().__init__()
        self.split = split
        self.metrics = nn.ModuleDict({"loss": MeanMetric(), "bpc": BitsPerToken(), "ppl": Perplexity()})

    def update(self, loss: torch.Tensor, num_tokens: int) -> None:
        """``loss``: the mean cross-entropy over ``num_tokens`` tokens of one batch."""
        for metric in self.metrics.values():
            metric.update(loss.detach(), weight=num_tokens)

    def log_to(self, module, batch_size: int) -> None:
        """Log the metric objects through ``module.log`` (Lightning computes, syncs and resets them)."""
        for name, metric in self.metrics.items():
            module.log(
                f"{self.split}/{name}",
                metric,
                on_step=False,
                on_epoch=True,
                batch_size=batch_size,
                prog_bar=name == "loss",
            )
