"""Single-image super-resolution: SRResNet and SRGAN (Ledig et al. 2017, "Photo-Realistic Single Image
Super-Resolution Using a Generative Adversarial Network").

One module, two presets:
- SRResNet (``adversarial_weight=0``, ``perceptual_weight=0``): the residual generator trained on the pixel
  loss alone (MSE, section 2.2.1 eq. 4); it maximises PSNR and gives smooth outputs.
- SRGAN: the generator's perceptual loss ``l_SR = l_X + 10^-3 l_Gen`` (eq. 3), the content term ``l_X`` a
  feature-space MSE (eq. 5) on VGG-19 or on the data set's own digit classifier (``perceptual.py``) plus an
  optional pixel term, the adversarial term the non-saturating ``-log D(G(I_LR))`` (eq. 6) against the SRGAN
  discriminator. As in the paper, the generator is first trained as an SRResNet (``pretrain_steps`` pixel-loss
  steps), then adversarially. It trades PSNR for realism: the perception-distortion trade-off of section 4.

Steps: manual optimisation; every batch makes one generator step, and after the pre-training one discriminator
step first. Lightning's ``global_step`` counts both optimizers (two per batch in the adversarial phase).
Logged: ``train/loss`` (the generator's total), ``train/pixel``, ``train/perceptual``, ``train/g_loss``,
``train/d_loss``; in validation ``val/loss``, the pixel loss of the sampling generator on the whole split.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from gen_lightning.gan.losses import LOSSES, discriminator_loss, generator_loss
from gen_lightning.img2img.base import ImageTranslator
from gen_lightning.img2img.nets import SRDiscriminator, SRResNet, upscale_factor
from gen_lightning.img2img.perceptual import FEATURES, build_features
from gen_lightning.nn.ema import EMA

PIXEL_LOSSES = ("mse", "l1")


class SuperResolution(ImageTranslator):
    """SRResNet generator, optionally trained adversarially with a feature loss (SRGAN); see the file docstring."""

    def __init__(
        self,
        channels: int,
        image_size: int,
        source_channels: int,
        source_image_size: int,
        num_classes: int = 0,
        hidden_dim: int = 64,
        num_res_blocks: int = 16,
        pixel_loss: str = "mse",
        pixel_weight: float = 1.0,
        perceptual_weight: float = 0.0,
        adversarial_weight: float = 0.0,
        features: str = "classifier",
        loss: str = "bce",
        d_hidden_dim: int = 64,
        d_dense_dim: int = 1024,
        pretrain_steps: int = 0,
        lr: float = 1e-4,
        lr_d: float = 1e-4,
        betas: tuple[float, float] = (0.9, 0.999),
        ema_decay: float | None = None,
        gradient_clip_val: float = 0.0,
    ) -> None:
        super().__init__()
        betas = [float(b) for b in betas]  # plain floats: a ListConfig fails torch.load(weights_only=True)
        self.save_hyperparameters()
        self.automatic_optimization = False
        if pixel_loss not in PIXEL_LOSSES:
            raise ValueError(f"model.pixel_loss must be one of {PIXEL_LOSSES}, got {pixel_loss!r}")
        if features not in FEATURES:
            raise ValueError(f"model.features must be one of {FEATURES}, got {features!r}")
        if loss not in LOSSES:
            raise ValueError(f"model.loss must be one of {LOSSES}, got {loss!r}")
        if min(pixel_weight, perceptual_weight, adversarial_weight) < 0 or pixel_weight + perceptual_weight == 0:
            raise ValueError("loss weights must be >= 0, and pixel_weight or perceptual_weight must be > 0")
        scale = upscale_factor(source_image_size, image_size)
        self.generator = SRResNet(source_channels, channels, scale, hidden_dim, num_res_blocks)
        self.discriminator = (
            SRDiscriminator(channels, image_size, d_hidden_dim, d_dense_dim) if adversarial_weight > 0 else None
        )
        self.ema = EMA(self.generator, ema_decay) if ema_decay else None
        # Generator steps so far: where the adversarial phase starts after pre-training (module state, resumes).
        self.register_buffer("generator_steps", torch.zeros((), dtype=torch.long))
        self._features: list = []  # the frozen feature network, rebuilt from its disk cache, never checkpointed

    # ---- losses --------------------------------------------------------------------------------------------
    def pixel_loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(output, target) if self.hparams.pixel_loss == "mse" else F.l1_loss(output, target)

    def on_fit_start(self) -> None:
        self.require_paired()
        if self.hparams.perceptual_weight > 0 and not self._features:
            self._features.append(build_features(self.hparams.features, self.trainer.datamodule, self.device))

    def perceptual_loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Feature-space MSE (Ledig et al. eq. 5)."""
        phi = self._features[0]
        with torch.no_grad():
            phi_target = phi(target)
        return F.mse_loss(phi(output), phi_target)

    def adversarial(self) -> bool:
        return self.discriminator is not None and int(self.generator_steps) >= self.hparams.pretrain_steps

    # ---- training ------------------------------------------------------------------------------------------
    def configure_optimizers(self):
        hp = self.hparams
        opt_g = torch.optim.Adam(self.generator.parameters(), lr=hp.lr, betas=tuple(hp.betas))
        if self.discriminator is None:
            return opt_g
        return [opt_g, torch.optim.Adam(self.discriminator.parameters(), lr=hp.lr_d, betas=tuple(hp.betas))]

    def training_step(self, batch: dict, batch_idx: int) -> None:
        source, target = batch["source"], batch["target"]  # (B, C_src, h, w), (B, C, h * s, w * s)
        optimizers = self.optimizers()
        opt_g, opt_d = (optimizers, None) if self.discriminator is None else optimizers
        logs = {}
        adversarial = self.adversarial()
        if adversarial:
            with torch.no_grad():
                fake = self.generator(source)
            logs.update(self.optimizer_step_on(opt_d, lambda: self._discriminator_loss(target, fake)))
        logs.update(self.optimizer_step_on(opt_g, lambda: self._generator_loss(source, target, adversarial)))
        self.generator_steps += 1
        if self.ema is not None:
            self.ema.update(self.generator)
        self.log_dict(logs, batch_size=source.shape[0], prog_bar=False)

    def _discriminator_loss(self, real: torch.Tensor, fake: torch.Tensor):
        s_real, s_fake = self.discriminator(real), self.discriminator(fake)  # (B,) each
        loss = discriminator_loss(self.hparams.loss, s_real, s_fake)
        return loss, {"train/d_loss": loss, "train/d_real": s_real.mean(), "train/d_fake": s_fake.mean()}

    def _generator_loss(self, source: torch.Tensor, target: torch.Tensor, adversarial: bool):
        hp = self.hparams
        output = self.generator(source)
        pixel = self.pixel_loss(output, target)
        logs = {"train/pixel": pixel}
        if self.discriminator is not None and not adversarial:  # pre-training: an SRResNet on the pixel loss
            logs["train/loss"] = pixel
            return pixel, logs
        loss = hp.pixel_weight * pixel
        if hp.perceptual_weight > 0:
            perceptual = self.perceptual_loss(output, target)
            loss = loss + hp.perceptual_weight * perceptual
            logs["train/perceptual"] = perceptual
        if adversarial:
            g_loss = generator_loss(hp.loss, self.discriminator(output))
            loss = loss + hp.adversarial_weight * g_loss
            logs["train/g_loss"] = g_loss
        logs["train/loss"] = loss
        return loss, logs

    def sample_info(self) -> dict:
        return {**super().sample_info(), "scale": self.hparams.image_size // self.hparams.source_image_size}
