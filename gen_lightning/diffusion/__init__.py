"""Denoising diffusion (Ho et al. 2020): U-Net denoiser (``nets``), the noise process and its samplers
(``process``), and the LightningModule ``DDPM`` (``module``)."""

from gen_lightning.diffusion.module import DDPM
from gen_lightning.diffusion.nets import UNet
from gen_lightning.diffusion.process import GaussianDiffusion

__all__ = ["DDPM", "GaussianDiffusion", "UNet"]
