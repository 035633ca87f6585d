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

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from gen_lightning.gan.losses import discriminator_loss, generator_loss
from gen_lightning.img2img.base import Adversarial, ImageTranslator
from gen_lightning.img2img.nets import SRDiscriminator, SRResNet, upscale_factor
from gen_lightning.img2img.perceptual import FEATURES, ClassifierFeatures, build_features
from gen_lightning.metrics.extractors import ClassifierSettings
from gen_lightning.nn.ema import EMA

PIXEL_LOSSES = ("mse", "l1")


@dataclass
class SuperResolutionSettings:
    num_res_blocks: int = 16  # residual blocks of the generator (the paper: 16)
    pixel_loss: str = "mse"  # mse (eq. 4) | l1
    pixel_weight: float = 1.0
    perceptual_weight: float = 0.0  # weight of the feature-space MSE l_X (eq. 5); 0: SRResNet
    adversarial_weight: float = 0.0  # weight of l_Gen (eq. 6; the paper: 1e-3); 0: no discriminator
    features: str = "classifier"  # classifier | vgg19 (perceptual.py)
    d_dense_dim: int = 1024  # the discriminator's dense layer
    pretrain_steps: int = 0  # pixel-loss batches before the adversarial phase
    lr_d: float = 1e-4  # the discriminator's Adam learning rate

    def __post_init__(self) -> None:
        if self.pixel_loss not in PIXEL_LOSSES:
            raise ValueError(f"model.pixel_loss must be one of {PIXEL_LOSSES}, got {self.pixel_loss!r}")
        if self.features not in FEATURES:
            raise ValueError(f"model.features must be one of {FEATURES}, got {self.features!r}")
        weights = (self.pixel_weight, self.perceptual_weight, self.adversarial_weight)
        if min(weights) < 0 or self.pixel_weight + self.perceptual_weight == 0:
            raise ValueError("loss weights must be >= 0, and pixel_weight or perceptual_weight must be > 0")


class SuperResolution(ImageTranslator):
    """SRResNet generator, optionally trained adversarially with a feature loss (SRGAN); see the file docstring."""

    settings = (Adversarial, SuperResolutionSettings)
    defaults = {"lr": 1e-4, "betas": (0.9, 0.999)}

    def __init__(self, **settings) -> None:
        super().__init__(settings)
        hp = self.hparams
        self.automatic_optimization = False
        scale = upscale_factor(hp.source_image_size, hp.image_size)
        self.generator = SRResNet(hp.source_channels, hp.channels, scale, hp.hidden_dim, hp.num_res_blocks)
        self.discriminator = (
            SRDiscriminator(hp.channels, hp.image_size, hp.d_hidden_dim, hp.d_dense_dim)
            if hp.adversarial_weight > 0
            else None
        )
        self.ema = EMA(self.generator, hp.ema_decay) if hp.ema_decay else None
        # Generator steps so far: where the adversarial phase starts after pre-training (module state, resumes).
        self.register_buffer("generator_steps", torch.zeros((), dtype=torch.long))
        # The frozen feature network of the perceptual loss: the classifier's in buffers (checkpointed: a resume
        # elsewhere keeps the run's loss), VGG-19's outside the state dict (a fixed download).
        classifier = hp.perceptual_weight > 0 and hp.features == "classifier"
        self.classifier_features = ClassifierFeatures(ClassifierSettings().width) if classifier else None
        self._vgg: list = []

    # ---- losses --------------------------------------------------------------------------------------------
    def pixel_loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(output, target) if self.hparams.pixel_loss == "mse" else F.l1_loss(output, target)

    def on_fit_start(self) -> None:
        self.require_paired()
        hp = self.hparams
        if self.classifier_features is not None and not self.classifier_features.ready:  # a new run
            self.classifier_features.load_from(build_features("classifier", self.trainer.datamodule, self.device))
        elif hp.perceptual_weight > 0 and hp.features == "vgg19" and not self._vgg:
            self._vgg.append(build_features("vgg19", self.trainer.datamodule, self.device))

    def perceptual_loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Feature-space MSE (Ledig et al. eq. 5)."""
        phi = self.classifier_features if self.classifier_features is not None else self._vgg[0]
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
