"""The interpolation baseline of every super-resolution table (Ledig et al. 2017, table 2: "bicubic").

``Resize`` has no weights: it converts the input's channels and resizes it to the output size by bicubic
interpolation (Keys 1981; PyTorch's ``a = -0.75``, antialiased when shrinking). With equal sizes it is the
identity, the "untranslated input" row of a translation table. It "trains" by stopping at its first batch, so a
study runs it as one more row, validated and evaluated by the same protocol as the trained models.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from gen_lightning.img2img.base import ImageTranslator, convert_channels

MODES = ("bicubic", "bilinear", "nearest")


@dataclass
class Interpolation:
    mode: str = "bicubic"  # bicubic | bilinear | nearest

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"model.mode must be one of {MODES}, got {self.mode!r}")


class Resize(ImageTranslator):
    """Bicubic (or bilinear / nearest) resizing from the source shape to the target shape; no training."""

    settings = (Interpolation,)

    def __init__(self, **settings) -> None:
        super().__init__(settings)

    def translate(self, sources: torch.Tensor) -> torch.Tensor:
        hp = self.hparams
        x = convert_channels(sources, hp.channels)
        if x.shape[-1] == hp.image_size:
            return x
        smooth = {} if hp.mode == "nearest" else {"align_corners": False, "antialias": x.shape[-1] > hp.image_size}
        return F.interpolate(x, size=(hp.image_size, hp.image_size), mode=hp.mode, **smooth)

    def configure_optimizers(self):
        return None  # nothing to learn

    def training_step(self, batch: dict, batch_idx: int) -> None:
        # One batch is the whole 'training' (its pixel loss is logged); validation and metrics follow.
        self.log("train/loss", self.pixel_loss(self.translate(batch["source"]), batch["target"]))
        self.trainer.should_stop = True

    def sample_info(self) -> dict:
        return {"weights": "none", "interpolation": self.hparams.mode}
