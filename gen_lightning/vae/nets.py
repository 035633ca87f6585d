"""Encoder and decoder networks of the VAE (Kingma & Welling 2013), MLP and convolutional, in plain PyTorch.

The encoder maps an image to the mean and log-variance of a diagonal Gaussian q(z|x); the decoder maps a latent
to per-pixel parameters of p(x|z) (logits for a Bernoulli decoder, means for a Gaussian one).
"""

from __future__ import annotations

import torch
from torch import nn


class MLPEncoder(nn.Module):
    def __init__(self, channels: int, image_size: int, hidden_dim: int, latent_dim: int, num_layers: int) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = channels * image_size * image_size
        for _ in range(num_layers):
            layers += [nn.Linear(width, hidden_dim), nn.SiLU()]
            width = hidden_dim
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, 2 * latent_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.head(self.body(x)).chunk(2, dim=1)  # (B, D) each
        return mu, logvar


class MLPDecoder(nn.Module):
    def __init__(self, channels: int, image_size: int, hidden_dim: int, latent_dim: int, num_layers: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = latent_dim
        for _ in range(num_layers):
            layers += [nn.Linear(width, hidden_dim), nn.SiLU()]
            width = hidden_dim
        layers.append(nn.Linear(width, channels * image_size * image_size))
        self.body = nn.Sequential(*layers)
        self.shape = (channels, image_size, image_size)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.body(z).view(z.shape[0], *self.shape)  # (B, C, H, W)


def conv_plan(image_size: int, max_downsamples: int = 3) -> int:
    """How many stride-2 halvings the conv nets use: while the size is even and the map stays at least 2x2."""
    n, size = 0, image_size
    while n < max_downsamples and size % 2 == 0 and size >= 4:
        size //= 2
        n += 1
    if n == 0:
        raise ValueError(f"image_size {image_size} is too small or odd for the conv VAE: use an even size >= 8")
    return n


class ConvEncoder(nn.Module):
    """Stride-2 convolutions doubling the width at each halving, then a linear head."""

    def __init__(self, channels: int, image_size: int, hidden_dim: int, latent_dim: int, num_layers: int) -> None:
        super().__init__()
        n = conv_plan(image_size, num_layers)
        layers: list[nn.Module] = []
        c_in, c_out = channels, hidden_dim
        for _ in range(n):
            layers += [
                nn.Conv2d(c_in, c_out, 4, stride=2, padding=1),
                nn.GroupNorm(min(8, c_out), c_out),
                nn.SiLU(),
            ]
            c_in, c_out = c_out, c_out * 2
        self.body = nn.Sequential(*layers, nn.Flatten())
        side = image_size // 2**n
        self.head = nn.Linear(c_in * side * side, 2 * latent_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.head(self.body(x)).chunk(2, dim=1)  # (B, D) each
        return mu, logvar


class ConvDecoder(nn.Module):
    """The encoder mirrored: a linear map to the smallest feature map, then stride-2 transposed convolutions."""

    def __init__(self, channels: int, image_size: int, hidden_dim: int, latent_dim: int, num_layers: int) -> None:
        super().__init__()
        n = conv_plan(image_size, num_layers)
        self.side = image_size // 2**n
        self.width = hidden_dim * 2 ** (n - 1)
        self.stem = nn.Linear(latent_dim, self.width * self.side * self.side)
        layers: list[nn.Module] = []
        c = self.width
        for i in range(n):
            c_out = c // 2 if i < n - 1 else hidden_dim
            layers += [
                nn.SiLU(),
                nn.ConvTranspose2d(c, c_out, 4, stride=2, padding=1),
                nn.GroupNorm(min(8, c_out), c_out),
            ]
            c = c_out
        layers += [nn.SiLU(), nn.Conv2d(c, channels, 3, padding=1)]
        self.body = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.stem(z).view(z.shape[0], self.width, self.side, self.side)  # (B, W, s, s)
        return self.body(h)  # (B, C, H, W)


NETWORKS = {"mlp": (MLPEncoder, MLPDecoder), "conv": (ConvEncoder, ConvDecoder)}
