"""Exponential moving average of a network's weights (Polyak averaging).

Used by the GAN generator (Karras et al. 2018 evaluate with it) and the diffusion denoiser (Ho et al. 2020,
decay 0.9999). The average is an ``nn.Module`` child of the LightningModule, so it is saved in every checkpoint
and restored exactly on resume.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA(nn.Module):
    """Keeps ``shadow = decay * shadow + (1 - decay) * live`` for every parameter; buffers are copied."""

    def __init__(self, model: nn.Module, decay: float = 0.999, warmup: bool = True) -> None:
        super().__init__()
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.warmup = warmup
        self.shadow = copy.deepcopy(model).eval().requires_grad_(False)
        self.register_buffer("num_updates", torch.zeros((), dtype=torch.long))

    def current_decay(self) -> float:
        # Warm-up from Tensorflow's ExponentialMovingAverage: early averages forget the random init quickly.
        if not self.warmup:
            return self.decay
        n = int(self.num_updates.item())
        return min(self.decay, (1 + n) / (10 + n))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        decay = self.current_decay()
        for shadow, live in zip(self.shadow.parameters(), model.parameters()):
            shadow.lerp_(live.detach(), 1.0 - decay)
        for shadow, live in zip(self.shadow.buffers(), model.buffers()):
            shadow.copy_(live)
        self.num_updates += 1

    def forward(self, *args, **kwargs):
        return self.shadow(*args, **kwargs)

    def train(self, mode: bool = True) -> EMA:
        # The averaged copy always runs in eval mode (batch norm uses running statistics, no dropout).
        super().train(mode)
        self.shadow.eval()
        return self
