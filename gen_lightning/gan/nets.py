"""DCGAN-style generator and discriminator, sized from the image shape (plain PyTorch).

- Generator (Radford et al. 2015, "Unsupervised Representation Learning with Deep Convolutional GANs"):
  ``z`` is projected to an ``s0 x s0`` feature map, then upsampled ``k`` times by stride-2 transposed
  convolutions with batch norm and ReLU, ending in ``tanh``; ``image_size = s0 * 2**k``.
- Discriminator: the mirror image, strided convolutions with leaky ReLU (slope 0.2), no norm on the first
  layer, then a linear read-out of the flattened ``s0 x s0`` map (DCGAN's final valid convolution).
- Class conditioning (Miyato & Koyama 2018, "cGANs with Projection Discriminator"): conditional batch norm in
  the generator (de Vries et al. 2017), its gains and biases linear in one shared class embedding (Brock et
  al. 2019), and the projection term ``<embed(y), phi(x)>`` added to the discriminator's output (their eq. 3).
  On 8x8 digits, per-class gain/bias tables learned the classes far more slowly (Adam moves each entry by
  ~lr per step), and concatenating a label embedding with ``z`` collapsed each class to one image.
- Spectral normalisation of every discriminator weight (Miyato et al. 2018) is applied here; the choice of
  critic normalisation (batch norm, or layer/instance norm for WGAN-GP, Gulrajani et al. 2017) is the
  caller's.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm as _spectral_norm

NORMS = ("batch", "layer", "instance", "none")


def feature_plan(image_size: int) -> tuple[int, int]:
    """``(s0, k)`` with ``image_size = s0 * 2**k``, ``4 <= s0 <= 7`` and ``k >= 1`` (28 -> 7x7, 32 -> 4x4); small
    images get a second stage from a 2x2 or 3x3 base where the 4x4 base would leave one (8 -> 2x2, k = 2)."""
    s0, k = image_size, 0
    while s0 % 2 == 0 and s0 // 2 >= 4:
        s0, k = s0 // 2, k + 1
    if k == 1 and s0 % 2 == 0:
        # One transposed convolution after a linear map is a generator with one hidden layer, and the critic has
        # no normalised layer: on 8x8 digits such GANs drew blobs where two stages draw strokes.
        s0, k = s0 // 2, k + 1
    if k == 0 or s0 > 7:
        raise ValueError(
            f"the GAN networks cannot be built for image_size={image_size}: it must be s0 * 2**k with "
            f"4 <= s0 <= 7 and k >= 1 (e.g. 8, 16, 28, 32, 64, 128); {image_size} = {s0} * 2**{k}"
        )
    return s0, k


def _critic_norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "layer":  # normalises over (C, H, W) of each sample: no coupling across the batch
        return nn.GroupNorm(1, channels)
    if kind == "instance":
        return nn.GroupNorm(channels, channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown discriminator norm {kind!r}; choose one of {NORMS}")


class ConditionalBatchNorm2d(nn.Module):
    """Batch norm with gain ``1 + W_g e`` and bias ``W_b e`` from a class embedding ``e`` (BigGAN style);
    a plain affine batch norm when ``embed_dim == 0``."""

    def __init__(self, num_features: int, embed_dim: int = 0) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(num_features, affine=embed_dim == 0)
        self.affine = nn.Linear(embed_dim, 2 * num_features) if embed_dim > 0 else None
        self.reset_affine()

    def reset_affine(self) -> None:
        # Zero start: class-blind at initialisation, an identity batch norm.
        if self.affine is not None:
            nn.init.zeros_(self.affine.weight)
            nn.init.zeros_(self.affine.bias)

    def forward(self, x: torch.Tensor, e: torch.Tensor | None = None) -> torch.Tensor:
        h = self.bn(x)  # (B, C, H, W)
        if self.affine is None:
            return h
        gain, bias = self.affine(e)[:, :, None, None].chunk(2, dim=1)  # (B, C, 1, 1) each
        return (1.0 + gain) * h + bias


class Generator(nn.Module):
    """``z (B, latent_dim)`` [+ labels ``(B,)``] -> images ``(B, C, image_size, image_size)`` in [-1, 1]."""

    def __init__(
        self, latent_dim: int, channels: int, image_size: int, hidden_dim: int = 64, num_classes: int = 0
    ) -> None:
        super().__init__()
        s0, k = feature_plan(image_size)
        widths = [hidden_dim * 2 ** (k - 1 - i) for i in range(k)]  # e.g. 64x64: 512, 256, 128, 64
        self.s0, self.latent_dim, self.num_classes = s0, latent_dim, num_classes
        # One class embedding shared by every conditional batch norm (Brock et al. 2019).
        self.embed = nn.Embedding(num_classes, latent_dim) if num_classes > 0 else None
        # A linear projection of z is DCGAN's first 4x4 transposed convolution of a 1x1 input.
        self.project = nn.Linear(latent_dim, widths[0] * s0 * s0, bias=False)
        embed_dim = latent_dim if num_classes > 0 else 0
        self.norms = nn.ModuleList([ConditionalBatchNorm2d(w, embed_dim) for w in widths])
        self.ups = nn.ModuleList([nn.ConvTranspose2d(a, b, 4, 2, 1, bias=False) for a, b in zip(widths, widths[1:])])
        self.to_image = nn.ConvTranspose2d(widths[-1], channels, 4, 2, 1)
        self.apply(_dcgan_init)
        for norm in self.norms:
            norm.reset_affine()

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        e = self.embed(y) if self.embed is not None else None  # (B, latent_dim)
        h = self.project(z).view(z.shape[0], -1, self.s0, self.s0)  # (B, W0, s0, s0)
        h = torch.relu(self.norms[0](h, e))
        for up, norm in zip(self.ups, self.norms[1:]):
            h = torch.relu(norm(up(h), e))  # spatial size doubles, width halves
        return torch.tanh(self.to_image(h))  # (B, C, image_size, image_size)


class Discriminator(nn.Module):
    """Images ``(B, C, H, W)`` [+ labels ``(B,)``] -> one unnormalised score per image ``(B,)``."""

    def __init__(
        self,
        channels: int,
        image_size: int,
        hidden_dim: int = 64,
        num_classes: int = 0,
        norm: str = "batch",
        spectral_norm: bool = False,
    ) -> None:
        super().__init__()
        s0, k = feature_plan(image_size)
        widths = [hidden_dim * 2**i for i in range(k)]  # e.g. 64x64: 64, 128, 256, 512
        layers: list[nn.Module] = [nn.Conv2d(channels, widths[0], 4, 2, 1), nn.LeakyReLU(0.2)]
        for a, b in zip(widths, widths[1:]):
            layers += [nn.Conv2d(a, b, 4, 2, 1), _critic_norm(norm, b), nn.LeakyReLU(0.2)]
        self.features = nn.Sequential(*layers)
        feature_dim = widths[-1] * s0 * s0
        self.read_out = nn.Linear(feature_dim, 1)
        # Projection discriminator, eq. 3: D(x, y) = psi(phi(x)) + <V y, phi(x)>.
        self.embed = nn.Embedding(num_classes, feature_dim) if num_classes > 0 else None
        self.apply(_dcgan_init)
        if self.embed is not None:
            nn.init.normal_(self.embed.weight, 0.0, 0.02)
        if spectral_norm:
            for module in self.modules():
                if isinstance(module, (nn.Conv2d, nn.Linear, nn.Embedding)):
                    _spectral_norm(module)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        phi = self.features(x).flatten(1)  # (B, W * s0 * s0)
        out = self.read_out(phi).squeeze(1)  # (B,)
        if self.embed is not None:
            if y is None:
                raise ValueError("this discriminator is class-conditional: pass labels y")
            out = out + (self.embed(y) * phi).sum(1)
        return out


def _dcgan_init(module: nn.Module) -> None:
    # DCGAN section 4: weights from N(0, 0.02); batch-norm gains from N(1, 0.02).
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d) and module.affine:
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)
