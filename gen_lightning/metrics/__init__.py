"""Image quality metrics (FID, IS, KID, precision/recall) under one protocol for every image family."""

from gen_lightning.metrics.callback import ImageMetrics
from gen_lightning.metrics.evaluate import evaluate_module
from gen_lightning.metrics.image import ImageFidelity

__all__ = ["ImageFidelity", "ImageMetrics", "evaluate_module"]
