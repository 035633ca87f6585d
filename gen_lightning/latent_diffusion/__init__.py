"""Latent diffusion (Rombach et al. 2022): a diffusion model in the latent space of a frozen, trained autoencoder
(``module.LatentDDPM``), with an MLP denoiser of latent vectors (``nets.LatentMLP``)."""

from gen_lightning.latent_diffusion.module import LatentDDPM
from gen_lightning.latent_diffusion.nets import LatentMLP

__all__ = ["LatentDDPM", "LatentMLP"]
