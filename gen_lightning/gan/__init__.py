"""GAN family: DCGAN, SNGAN (hinge + spectral norm), WGAN-GP and class-conditional projection GANs; their losses
(``losses.py``) also serve the image-to-image GANs."""

from gen_lightning.gan.module import GAN

__all__ = ["GAN"]
