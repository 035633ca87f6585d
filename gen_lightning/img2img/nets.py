"""Image-to-image networks in plain PyTorch: SRResNet / SRGAN, pix2pix, CycleGAN.

- ``SRResNet`` (Ledig et al. 2017, "Photo-Realistic Single Image Super-Resolution Using a GAN", figure 4): a 9x9
  convolution, ``num_res_blocks`` residual blocks (conv-BN-PReLU-conv-BN plus the identity), a long skip over
  all of them, then one sub-pixel stage per factor 2 (conv to 4x the channels, ``PixelShuffle(2)``, PReLU; Shi et
  al. 2016) and a 9x9 convolution to the image. x2, x4 and x8.
- ``SRDiscriminator`` (Ledig et al. figure 4): eight 3x3 convolutions, strides 1, 2 alternating, widths doubling
  every second layer from ``hidden_dim``, leaky ReLU 0.2, batch norm from the second, then dense 1024, dense 1.
  Stride-2 layers stop where the map would fall below 2x2 (the paper's 96x96 crops end at 6x6).
- ``UNetGenerator`` (Isola et al. 2017, "Image-to-Image Translation with Conditional Adversarial Networks",
  appendix 6.1.1): ``num_downs`` 4x4 stride-2 convolutions (C64-C128-C256-C512-C512...), the mirror image of
  transposed convolutions with dropout 0.5 in the three innermost decoder blocks, and a skip connection from each
  encoder layer to its decoder mirror. The input is padded to a multiple of ``2**num_downs`` (edge replication)
  and the output cropped back, so 28x28 digits fit a 5-level U-Net.
- ``PatchDiscriminator`` (Isola et al. appendix 6.1.2; the 70x70 PatchGAN for ``num_layers=3``): C64-C128-C256
  with stride 2, C512 with stride 1, a 1-channel convolution; one score per patch ``(B, 1, h, w)``. pix2pix gives
  it (input, output) pairs concatenated on channels; CycleGAN gives it the image alone.
- ``ResnetGenerator`` (Zhu et al. 2017, "Unpaired Image-to-Image Translation using Cycle-Consistent Adversarial
  Networks", appendix 7.2, after Johnson et al. 2016): c7s1-64, d128, d256, ``num_res_blocks`` R256, u128, u64,
  c7s1-3 with reflection padding and instance norm.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

NORMS = ("batch", "instance", "none")


def norm_layer(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":  # CycleGAN: per-image statistics, no running averages (eval = train behaviour)
        return nn.InstanceNorm2d(channels, affine=False)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {kind!r}; choose one of {NORMS}")


def upscale_factor(source_size: int, target_size: int) -> int:
    """The integer factor 2, 4 or 8 between the two sizes, or a ValueError saying what fits."""
    factor = target_size // source_size if source_size else 0
    if factor * source_size != target_size or factor not in (2, 4, 8):
        raise ValueError(
            f"super-resolution upsamples by 2, 4 or 8 (one pixel-shuffle stage per factor 2), but the data go from "
            f"{source_size}x{source_size} to {target_size}x{target_size}; use data.transform=downscale:2|4|8"
        )
    return factor


def _gan_init(module: nn.Module) -> None:
    # pix2pix / CycleGAN initialise from N(0, 0.02) (Isola et al. section 3.3; Zhu et al. section 4).
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


# ---------------------------------------------------------------------------------------- SRResNet / SRGAN


class SRResidualBlock(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(width, width, 3, padding=1),
            nn.BatchNorm2d(width),
            nn.PReLU(width),
            nn.Conv2d(width, width, 3, padding=1),
            nn.BatchNorm2d(width),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class SRResNet(nn.Module):
    """Low-resolution ``(B, C_in, h, w)`` in [-1, 1] -> ``(B, C_out, h * scale, w * scale)`` in [-1, 1]."""

    def __init__(
        self, in_channels: int, out_channels: int, scale: int, hidden_dim: int = 64, num_res_blocks: int = 16
    ) -> None:
        super().__init__()
        if scale not in (2, 4, 8):
            raise ValueError(f"SRResNet upsamples by 2, 4 or 8, got {scale}")
        self.head = nn.Sequential(nn.Conv2d(in_channels, hidden_dim, 9, padding=4), nn.PReLU(hidden_dim))
        self.blocks = nn.Sequential(*[SRResidualBlock(hidden_dim) for _ in range(num_res_blocks)])
        self.fuse = nn.Sequential(nn.Conv2d(hidden_dim, hidden_dim, 3, padding=1), nn.BatchNorm2d(hidden_dim))
        ups = []
        for _ in range(int(math.log2(scale))):  # each stage: (B, 4w, h, w) -> (B, w, 2h, 2w)
            ups += [nn.Conv2d(hidden_dim, 4 * hidden_dim, 3, padding=1), nn.PixelShuffle(2), nn.PReLU(hidden_dim)]
        self.upsample = nn.Sequential(*ups)
        self.tail = nn.Conv2d(hidden_dim, out_channels, 9, padding=4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.head(x)  # (B, w, h, w)
        h = h + self.fuse(self.blocks(h))  # the long skip of figure 4
        return torch.tanh(self.tail(self.upsample(h)))  # (B, C_out, scale h, scale w)


class SRDiscriminator(nn.Module):
    """Images ``(B, C, H, W)`` -> one unnormalised score per image ``(B,)``."""

    def __init__(self, channels: int, image_size: int, hidden_dim: int = 64, dense_dim: int = 1024) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_ch, size = channels, image_size
        for i in range(8):  # k3n64s1, k3n64s2, k3n128s1, k3n128s2, ... k3n512s2
            width = hidden_dim * 2 ** (i // 2)
            stride = 2 if i % 2 == 1 and (size + 1) // 2 >= 2 else 1
            layers.append(nn.Conv2d(in_ch, width, 3, stride=stride, padding=1))
            if i > 0:
                layers.append(nn.BatchNorm2d(width))
            layers.append(nn.LeakyReLU(0.2))
            in_ch, size = width, (size + 1) // 2 if stride == 2 else size
        self.features = nn.Sequential(*layers)
        self.read_out = nn.Sequential(
            nn.Flatten(), nn.Linear(in_ch * size * size, dense_dim), nn.LeakyReLU(0.2), nn.Linear(dense_dim, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.read_out(self.features(x)).squeeze(1)  # (B,)


# ---------------------------------------------------------------------------------------- pix2pix


class UNetGenerator(nn.Module):
    """``(B, C_in, H, W)`` -> ``(B, C_out, H, W)``, a U-Net with skips at every level (Isola et al. figure 3)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        num_downs: int = 8,
        hidden_dim: int = 64,
        norm: str = "batch",
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        if num_downs < 2:
            raise ValueError(f"the U-Net needs num_downs >= 2, got {num_downs}")
        widths = [hidden_dim * min(2**i, 8) for i in range(num_downs)]  # 64, 128, 256, 512, 512, ...
        self.downs = nn.ModuleList()
        for i, width in enumerate(widths):
            block: list[nn.Module] = [] if i == 0 else [nn.LeakyReLU(0.2)]
            block.append(nn.Conv2d(in_channels if i == 0 else widths[i - 1], width, 4, 2, 1))
            if 0 < i < num_downs - 1:  # no norm on the first layer, nor at the 1x1 bottleneck
                block.append(norm_layer(norm, width))
            self.downs.append(nn.Sequential(*block))
        self.ups = nn.ModuleList()
        for i in reversed(range(num_downs)):  # decoder level i mirrors encoder level i
            in_w = widths[i] if i == num_downs - 1 else 2 * widths[i]  # skip concatenation doubles the input
            out_w = out_channels if i == 0 else widths[i - 1]
            block = [nn.ReLU(), nn.ConvTranspose2d(in_w, out_w, 4, 2, 1)]
            if i > 0:
                block.append(norm_layer(norm, out_w))
                if dropout and i >= num_downs - 3:  # the three innermost decoder blocks
                    block.append(nn.Dropout(dropout))
            self.ups.append(nn.Sequential(*block))
        self.multiple = 2**num_downs
        self.apply(_gan_init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        pad_h, pad_w = -height % self.multiple, -width % self.multiple
        h = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate") if pad_h or pad_w else x
        skips = []
        for down in self.downs:
            h = down(h)
            skips.append(h)
        h = self.ups[0](skips.pop())  # the bottleneck has no skip partner
        for up in self.ups[1:]:
            h = up(torch.cat([h, skips.pop()], dim=1))  # (B, 2 w_i, ...): decoder features + encoder skip
        return torch.tanh(h)[..., :height, :width]


class PatchDiscriminator(nn.Module):
    """``(B, C, H, W)`` -> patch scores ``(B, 1, h, w)``; each score sees one receptive field of the input."""

    def __init__(self, channels: int, image_size: int, hidden_dim: int = 64, num_layers: int = 3, norm="batch"):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(channels, hidden_dim, 4, 2, 1), nn.LeakyReLU(0.2)]
        width, size = hidden_dim, image_size // 2
        for i in range(1, num_layers + 1):
            stride = 2 if i < num_layers else 1
            out = hidden_dim * min(2**i, 8)
            layers += [nn.Conv2d(width, out, 4, stride, 1), norm_layer(norm, out), nn.LeakyReLU(0.2)]
            width, size = out, size // 2 if stride == 2 else size - 1
        layers.append(nn.Conv2d(width, 1, 4, 1, 1))
        if size - 1 < 1:
            raise ValueError(
                f"a PatchGAN discriminator with {num_layers} layers is too deep for {image_size}x{image_size} "
                f"images (no patch is left); use a smaller model.d_layers"
            )
        self.net = nn.Sequential(*layers)
        self.apply(_gan_init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


# ---------------------------------------------------------------------------------------- CycleGAN


class ResnetBlock(nn.Module):
    def __init__(self, width: int, norm: str) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(width, width, 3),
            norm_layer(norm, width),
            nn.ReLU(),
            nn.ReflectionPad2d(1),
            nn.Conv2d(width, width, 3),
            norm_layer(norm, width),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResnetGenerator(nn.Module):
    """``(B, C_in, H, W)`` -> ``(B, C_out, H, W)``; H and W must be divisible by 4 (two stride-2 stages)."""

    def __init__(
        self, in_channels: int, out_channels: int, hidden_dim: int = 64, num_res_blocks: int = 9, norm="instance"
    ) -> None:
        super().__init__()
        w = hidden_dim
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(in_channels, w, 7),
            norm_layer(norm, w),
            nn.ReLU(),
        ]  # c7s1-64
        for mult in (1, 2):  # d128, d256
            layers += [nn.Conv2d(w * mult, w * mult * 2, 3, 2, 1), norm_layer(norm, w * mult * 2), nn.ReLU()]
        layers += [ResnetBlock(4 * w, norm) for _ in range(num_res_blocks)]
        for mult in (4, 2):  # u128, u64
            layers += [
                nn.ConvTranspose2d(w * mult, w * mult // 2, 3, 2, 1, output_padding=1),
                norm_layer(norm, w * mult // 2),
                nn.ReLU(),
            ]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(w, out_channels, 7), nn.Tanh()]  # c7s1-3
        self.net = nn.Sequential(*layers)
        self.apply(_gan_init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % 4 or x.shape[-2] % 4:
            raise ValueError(f"the CycleGAN generator needs sides divisible by 4, got {tuple(x.shape[-2:])}")
        return self.net(x)
