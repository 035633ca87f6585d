"""Evaluate a loaded image module with the configured metric protocol, without a Trainer.

Used by ``gen-lightning evaluate ckpt=PATH``: the numbers the ``ImageMetrics`` callback computes in training
(same seeds, same reference, same extractor), so a checkpoint re-evaluated gives the value it logged.
"""

from __future__ import annotations

from collections.abc import Mapping

from lightning.pytorch import LightningModule

from gen_lightning.metrics.callback import ImageMetrics


def evaluate_module(module: LightningModule, datamodule, metrics: ImageMetrics | Mapping) -> dict:
    """``{"metrics": {"val/fid": ...}, "protocol": {...}}`` for ``module`` on ``datamodule``'s reference.

    ``metrics`` is the ``ImageMetrics`` callback or its config (``cfg.metrics``; ``_target_`` is ignored).
    The data module is set up here (``setup("fit")``). Runs on ``module.device``; under an initialised process
    group every process must call it (each generates its share of the samples).
    """
    if not isinstance(metrics, ImageMetrics):
        if not metrics:
            raise ValueError("no metric protocol configured (metrics=none): choose metrics=inception or classifier")
        metrics = ImageMetrics(**{k: v for k, v in dict(metrics).items() if k != "_target_"})
    datamodule.setup("fit")
    return metrics.evaluate(module, datamodule)
