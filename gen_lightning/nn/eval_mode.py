"""``evaluating``: a module in eval mode without gradients, its previous mode restored after.

Used by every family's ``sample``/``generate`` (dropout off, batch norm from running statistics, so a sample does
not depend on its batch-mates) and by the metric protocols around an evaluation.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def evaluating(module: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """Eval mode (no dropout) and no gradients inside; the previous mode is restored after."""
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            yield module
    finally:
        module.train(was_training)
