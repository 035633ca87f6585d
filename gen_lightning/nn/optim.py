"""AdamW with nanoGPT's parameter groups and its warm-up + cosine learning-rate schedule.

Loshchilov & Hutter 2019 ("Decoupled Weight Decay Regularization") for AdamW; the grouping and the schedule
are nanoGPT's (``model.configure_optimizers`` and ``train.get_lr``): weight decay only on tensors with two or
more dimensions (matrices and embeddings), none on biases and norm gains; the learning rate rises linearly for
``warmup_steps``, then follows a half cosine from ``lr`` down to ``min_lr`` at ``lr_decay_steps`` and stays.
Used by every sequence family, so their optimisers differ only in their numbers.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, fields
from functools import partial

import torch
from torch import nn


def warmup_cosine(step: int, *, lr: float, min_lr: float, warmup_steps: int, lr_decay_steps: int) -> float:
    """nanoGPT's ``get_lr(step)``: the learning rate of optimizer step ``step`` (0-based)."""
    if step < warmup_steps:
        return lr * (step + 1) / (warmup_steps + 1)
    if step > lr_decay_steps:
        return min_lr
    ratio = (step - warmup_steps) / max(1, lr_decay_steps - warmup_steps)  # 0 -> 1
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (lr - min_lr)


@dataclass
class WarmupCosine:
    """The hyperparameters of ``adamw_warmup_cosine`` (a module's group of them, see ``nn/hparams.py``); the
    defaults are the translation models' (Vaswani et al. 2017, section 5.3 betas)."""

    lr: float = 1e-3  # peak learning rate after warm-up
    min_lr: float = 1e-4  # floor of the cosine decay
    betas: tuple[float, float] = (0.9, 0.98)
    weight_decay: float = 0.01  # AdamW decay, on tensors with dim >= 2 only
    warmup_steps: int = 400  # linear warm-up, in optimizer steps
    lr_decay_steps: int = 10000  # step at which the cosine reaches min_lr (set it to trainer.max_steps)


OPTIMIZER_ARGS = tuple(f.name for f in fields(WarmupCosine))


def optimizer_args(hparams) -> dict:
    """The ``adamw_warmup_cosine`` keywords out of a module's hyperparameters (``fused_optimizer`` if it has one)."""
    return {**{key: hparams[key] for key in OPTIMIZER_ARGS}, "fused": bool(hparams.get("fused_optimizer", False))}


def _factor(step: int, **schedule) -> float:
    return warmup_cosine(step, **schedule) / schedule["lr"]


def adamw_groups(
    named_parameters: Iterable[tuple[str, nn.Parameter]], weight_decay: float, lr_scales: dict[str, float] | None = None
) -> list[dict]:
    """AdamW groups: tensors with dim >= 2 decay, the rest (biases, norm gains) do not.

    ``lr_scales`` maps a name prefix to a learning-rate factor (e.g. ``{"net.": 0.1}``: a pre-trained body learns
    10x slower than a new head); such parameters get their own groups, marked with ``lr_scale``."""
    scales = lr_scales or {}
    named = [(n, p) for n, p in named_parameters if p.requires_grad]
    scale_of = {n: next((s for prefix, s in scales.items() if n.startswith(prefix)), 1.0) for n, _ in named}
    groups = []
    for scale in dict.fromkeys([1.0, *scales.values()]):
        params = [p for n, p in named if scale_of[n] == scale]
        extra = {} if scale == 1.0 else {"lr_scale": scale}
        groups += [
            {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay, **extra},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0, **extra},
        ]
    return [g for g in groups if g["params"]] if scales else groups


def adamw_warmup_cosine(
    named_parameters: Iterable[tuple[str, nn.Parameter]],
    *,
    lr: float,
    min_lr: float,
    betas: tuple[float, float],
    weight_decay: float,
    warmup_steps: int,
    lr_decay_steps: int,
    lr_scales: dict[str, float] | None = None,
    fused: bool = False,
) -> dict:
    """``configure_optimizers``'s answer: AdamW and a schedule stepped after every optimizer step.

    Groups with an ``lr_scale`` (see ``adamw_groups``) follow the same schedule, scaled. ``fused``: PyTorch's
    single-kernel AdamW (CPU and CUDA) instead of the default multi-tensor ("foreach") one; the same update in
    another order of floating-point operations (equal to ~1e-7 relative per step).
    """
    if not 0.0 <= min_lr <= lr:
        raise ValueError(f"need 0 <= min_lr <= lr, got min_lr={min_lr}, lr={lr}")
    if warmup_steps < 0 or lr_decay_steps < warmup_steps:
        raise ValueError(f"need 0 <= warmup_steps <= lr_decay_steps, got {warmup_steps}, {lr_decay_steps}")
    groups = adamw_groups(named_parameters, weight_decay, lr_scales)
    for group in groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)  # LambdaLR scales each group's initial lr
    optimizer = torch.optim.AdamW(groups, lr=lr, betas=tuple(betas), **({"fused": True} if fused else {}))
    schedule = {"lr": lr, "min_lr": min_lr, "warmup_steps": warmup_steps, "lr_decay_steps": lr_decay_steps}
    # A partial of a module-level function: LambdaLR can save its state, and the checkpoint stays picklable.
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, partial(_factor, **schedule))
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
