"""Denoising diffusion (Ho et al. 2020): U-Net denoiser (``nets``), the noise process (``process``), its samplers
(``samplers/``, one class per file, found by name), SDEdit (``edit``), the LightningModule parts every diffusion
model shares (``system``) and the pixel-space ``DDPM`` (``module``)."""

from gen_lightning.diffusion.module import DDPM
from gen_lightning.diffusion.nets import UNet
from gen_lightning.diffusion.process import GaussianDiffusion
from gen_lightning.diffusion.samplers import Sampler, get_sampler, make_sampler, sampler_names

__all__ = ["DDPM", "GaussianDiffusion", "Sampler", "UNet", "get_sampler", "make_sampler", "sampler_names"]
