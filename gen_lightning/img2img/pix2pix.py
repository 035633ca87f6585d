"""pix2pix: paired image-to-image translation with a conditional GAN (Isola et al. 2017, "Image-to-Image
Translation with Conditional Adversarial Networks").

``G* = arg min_G max_D L_cGAN(G, D) + lambda L_L1(G)`` (eq. 4), lambda = 100: the U-Net generator maps the input
``x`` to ``G(x)``; the PatchGAN discriminator scores (input, image) pairs patch by patch, real pairs ``(x, y)``
against fake ``(x, G(x))`` (eq. 1, conditional: D sees the input). As in the paper, the generator maximises
``log D(x, G(x))`` (non-saturating) and the discriminator's objective is halved (section 3.3). The noise is the
dropout of the decoder; outputs are taken in eval mode (deterministic) here.

Steps: manual optimisation, one discriminator then one generator step per batch (``global_step`` advances by
2 per batch). Logged: ``train/d_loss``, ``train/g_loss`` (adversarial term), ``train/l1``, ``train/loss`` (the
generator's total); ``val/loss``, the L1 of the sampling generator on the whole validation split.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from gen_lightning.gan.losses import discriminator_loss, generator_loss
from gen_lightning.img2img.base import Adversarial, ImageTranslator, PatchGAN
from gen_lightning.img2img.nets import PatchDiscriminator, UNetGenerator
from gen_lightning.nn.ema import EMA


def same_size(model: str, source_image_size: int, image_size: int) -> None:
    if source_image_size != image_size:
        raise ValueError(
            f"{model} translates images of one size, but the data go from {source_image_size}x{source_image_size} "
            f"to {image_size}x{image_size}: set data.source_image_size={image_size} (the inputs are then resized "
            "bicubically), or use model=srresnet for super-resolution"
        )


@dataclass
class Pix2PixSettings:
    num_downs: int | None = None  # U-Net levels; None: down to 1x1 (8 for 256x256, 5 for 28x28)
    dropout: float = 0.5  # in the three innermost decoder blocks: the generator's noise (section 2.1.2)
    l1_weight: float = 100.0  # lambda of eq. 4


class Pix2Pix(ImageTranslator):
    """U-Net generator and PatchGAN discriminator on (input, output) pairs; see the file docstring."""

    settings = (Adversarial, PatchGAN, Pix2PixSettings)

    def __init__(self, **settings) -> None:
        super().__init__(settings)
        hp = self.hparams
        self.automatic_optimization = False
        same_size("pix2pix", hp.source_image_size, hp.image_size)
        # Down to 1x1 like the paper's 256x256 net (8 levels), on the input padded to a power of two.
        downs = hp.num_downs or min(8, math.ceil(math.log2(hp.image_size)))
        self.generator = UNetGenerator(hp.source_channels, hp.channels, downs, hp.hidden_dim, hp.norm, hp.dropout)
        pairs = hp.source_channels + hp.channels  # D sees (input, image) pairs
        self.discriminator = PatchDiscriminator(pairs, hp.image_size, hp.d_hidden_dim, hp.d_layers, hp.norm)
        self.ema = EMA(self.generator, hp.ema_decay) if hp.ema_decay else None

    def on_fit_start(self) -> None:
        self.require_paired()

    def configure_optimizers(self):
        betas = tuple(self.hparams.betas)
        opt_g = torch.optim.Adam(self.generator.parameters(), lr=self.hparams.lr, betas=betas)
        opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=self.hparams.lr, betas=betas)
        return [opt_g, opt_d]

    def training_step(self, batch: dict, batch_idx: int) -> None:
        x, y = batch["source"], batch["target"]  # (B, C_src, H, W), (B, C, H, W)
        opt_g, opt_d = self.optimizers()
        fake = self.generator(x)
        logs = self.optimizer_step_on(opt_d, lambda: self._discriminator_loss(x, y, fake.detach()))
        logs.update(self.optimizer_step_on(opt_g, lambda: self._generator_loss(x, y, fake)))
        if self.ema is not None:
            self.ema.update(self.generator)
        self.log_dict(logs, batch_size=x.shape[0])

    def _discriminator_loss(self, x: torch.Tensor, y: torch.Tensor, fake: torch.Tensor):
        s_real = self.discriminator(torch.cat([x, y], dim=1))  # (B, 1, h, w) patch scores
        s_fake = self.discriminator(torch.cat([x, fake], dim=1))
        loss = 0.5 * discriminator_loss(self.hparams.loss, s_real, s_fake)  # halved (Isola et al. 3.3)
        return loss, {"train/d_loss": loss, "train/d_real": s_real.mean(), "train/d_fake": s_fake.mean()}

    def _generator_loss(self, x: torch.Tensor, y: torch.Tensor, fake: torch.Tensor):
        g_loss = generator_loss(self.hparams.loss, self.discriminator(torch.cat([x, fake], dim=1)))
        l1 = F.l1_loss(fake, y)  # eq. 3
        loss = g_loss + self.hparams.l1_weight * l1
        return loss, {"train/g_loss": g_loss, "train/l1": l1, "train/loss": loss}
