"""GAN family: DCGAN, SNGAN (hinge + spectral norm), WGAN-GP and class-conditional projection GANs."""

from gen_lightning.gan.module import GAN

__all__ = ["GAN"]
