"""Metric protocols (docs/CONTRACT.md, "Evaluation"): one callback per kind of model, the same numbers in
training and in ``gen-lightning evaluate``.

- ``ImageMetrics`` (``inception``, ``classifier``): FID, IS, KID, precision/recall of generated images;
- ``PairedImageMetrics`` (``paired_image``): PSNR, SSIM, L1 of image -> image outputs against their targets;
- ``TextGenerationMetrics`` (``text_generation``): SacreBLEU, chrF, ROUGE of text -> text hypotheses;
- ``ClassificationMetrics`` (``classification``): accuracy, macro F1, confusion matrix.
"""

from gen_lightning.metrics.callback import ImageMetrics
from gen_lightning.metrics.evaluate import evaluate_module
from gen_lightning.metrics.image import ImageFidelity
from gen_lightning.metrics.protocol import EvaluationCallback

__all__ = ["EvaluationCallback", "ImageFidelity", "ImageMetrics", "evaluate_module"]
