"""Evaluate a loaded module with a metric protocol, without a Trainer.

Used by ``gen-lightning evaluate ckpt=PATH`` and by the evaluation variants of studies: the numbers the protocol's
callback computes in training (same seeds, same subsets, same extractor), so a checkpoint re-evaluated gives the
value it logged. Another split than the protocol's (``split=test``) is scored whole, unless the command line gave
the protocol's subset setting (``metrics.num_items=N``): ``EvaluationCallback.for_split``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from lightning.pytorch import LightningModule

from gen_lightning.metrics.protocol import EvaluationCallback


def build_protocol(metrics: EvaluationCallback | Mapping) -> EvaluationCallback:
    """The protocol callback itself, or built from its config (``cfg.metrics``; a mapping without ``_target_``
    holds ``ImageMetrics`` arguments)."""
    if isinstance(metrics, EvaluationCallback):
        return metrics
    if metrics and "_target_" not in metrics:
        from gen_lightning.metrics.callback import ImageMetrics

        return ImageMetrics(**metrics)
    if not metrics:
        raise ValueError(
            "no metric protocol configured (metrics=none): choose one, e.g. metrics=classifier for images, "
            "metrics=text_generation for translation, metrics=classification for classifiers"
        )
    try:
        return instantiate(dict(metrics))
    except InstantiationException as err:  # Hydra's wrapper around the protocol's own refusal
        if isinstance(err.__cause__, ValueError):
            raise ValueError(str(err.__cause__)) from err
        raise


def evaluate_module(
    module: LightningModule,
    datamodule,
    metrics: EvaluationCallback | Mapping,
    split: str | None = None,
    given: Iterable[str] = (),
) -> dict:
    """``{"metrics": {...}, "protocol": {...}}`` (and ``"outputs"``/``"figures"`` where the protocol has them).

    ``metrics`` is a protocol callback or its config; ``given``: the metric settings the user gave for this
    evaluation, as ``metrics.KEY=VALUE`` (or ``KEY``): a split other than the protocol's is scored whole unless
    they name its subset setting (``num_items``). The data module is set up here (``setup("fit")``). Runs on
    ``module.device``; under an initialised process group every process must call it."""
    protocol = build_protocol(metrics)
    if split is not None:
        keys = {item.split("=", 1)[0].removeprefix("metrics.") for item in given}
        protocol = protocol.for_split(split, keep_subset=protocol.subset_setting in keys)
    protocol.check(module)
    datamodule.setup("fit")
    return protocol.evaluate(module, datamodule, split)
