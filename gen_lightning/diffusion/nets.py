"""The denoising U-Net of DDPM (Ho et al. 2020, Appendix B), in plain PyTorch.

A PixelCNN++-style U-Net: wide residual blocks with group normalisation, the timestep fed to every block
through a sinusoidal embedding (Vaswani et al. 2017) and an MLP, self-attention at the low resolutions listed
in ``attention_resolutions`` and always in the middle, skip connections between the two halves. The class
label, when the model is class-conditional, is added to the time embedding; index ``num_classes`` is the null
("no label") class of classifier-free guidance (Ho & Salimans 2022).

The network knows nothing of the noise schedule: it maps ``(x_t, t, labels)`` to a tensor of ``x_t``'s shape,
which ``gen_lightning.diffusion.process`` interprets as noise or velocity.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """Sinusoidal features of the (integer or real) timesteps ``t`` (B,) -> (B, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]  # (B, half)
    emb = torch.cat([torch.sin(args), torch.cos(args)], dim=-1)
    return F.pad(emb, (0, dim % 2))


def group_norm(channels: int) -> nn.GroupNorm:
    # 32 groups as in Ho et al. (width 128 and up), fewer for narrow layers: at least 4 channels per group, so
    # a group is never a single channel (instance norm would erase per-channel information).
    groups = max((g for g in range(1, 33) if channels % g == 0 and channels // g >= 4), default=1)
    return nn.GroupNorm(groups, channels)


def zero_init(module: nn.Module) -> nn.Module:
    # Residual branches start as the identity (as in guided-diffusion), which steadies early training.
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class ResBlock(nn.Module):
    """GN -> SiLU -> conv, then GN modulated by the embedding -> SiLU -> dropout -> conv; added to the input.

    The embedding scales and shifts the normalised features (AdaGN, Dhariwal & Nichol 2021, section 3) rather
    than being added before the norm as in Ho et al.: a shift added before group norm is partly removed by it,
    and entirely when a group holds one channel, which leaves a narrow network blind to the time and class.
    """

    def __init__(self, in_ch: int, out_ch: int, emb_dim: int, dropout: float) -> None:
        super().__init__()
        self.norm1 = group_norm(in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.emb = nn.Linear(emb_dim, 2 * out_ch)
        self.norm2 = group_norm(out_ch)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = zero_init(nn.Conv2d(out_ch, out_ch, 3, padding=1))
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))  # (B, out_ch, H, W)
        scale, shift = self.emb(F.silu(emb))[:, :, None, None].chunk(2, dim=1)  # each (B, out_ch, 1, 1)
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(self.dropout(F.silu(h)))
        return self.skip(x) + h


class Attention(nn.Module):
    """Multi-head self-attention over the H*W positions of a feature map, with a residual connection."""

    def __init__(self, channels: int, num_heads: int) -> None:
        super().__init__()
        if channels % num_heads:
            raise ValueError(f"attention width {channels} is not divisible by num_heads={num_heads}")
        self.num_heads = num_heads
        self.norm = group_norm(channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = zero_init(nn.Conv2d(channels, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        qkv = self.qkv(self.norm(x)).reshape(b, 3, self.num_heads, c // self.num_heads, h * w)
        q, k, v = qkv.transpose(-1, -2).unbind(1)  # each (B, heads, H*W, C/heads)
        out = F.scaled_dot_product_attention(q, k, v)  # (B, heads, H*W, C/heads)
        return x + self.proj(out.transpose(-1, -2).reshape(b, c, h, w))


class Downsample(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)  # (B, C, H/2, W/2)


class Upsample(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))  # (B, C, 2H, 2W)


class Stage(nn.ModuleList):
    """Layers applied in turn; residual blocks also receive the time (and class) embedding."""

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        for layer in self:
            x = layer(x, emb) if isinstance(layer, ResBlock) else layer(x)
        return x


class UNet(nn.Module):
    """Noise (or velocity) predictor ``(x_t, t, labels) -> (B, C, H, W)``.

    Level ``i`` works at resolution ``size / 2**i`` with ``hidden_dim * channel_mult[i]`` channels. Images
    whose side is not a multiple of ``2**(levels - 1)`` are zero-padded to the next multiple inside the
    network and the output is cropped back (28x28 MNIST runs 3 levels at 28/14/7 unpadded, 4 levels at
    32/16/8/4 padded).
    """

    def __init__(
        self,
        channels: int,
        image_size: int,
        hidden_dim: int = 64,
        channel_mult: Sequence[int] = (1, 2, 2),
        num_res_blocks: int = 2,
        attention_resolutions: Sequence[int] = (16,),
        num_heads: int = 1,
        dropout: float = 0.1,
        num_classes: int = 0,
    ) -> None:
        super().__init__()
        self.resolutions = _level_resolutions(image_size, len(channel_mult), num_res_blocks)
        self.pad = self.resolutions[0] - image_size
        self.num_classes = num_classes
        attn = _attention_levels(self.resolutions, attention_resolutions)

        emb_dim = 4 * hidden_dim
        self.hidden_dim = hidden_dim
        self.time_embed = nn.Sequential(nn.Linear(hidden_dim, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        # One extra row: the null class used for the unconditional half of classifier-free guidance.
        self.class_embed = nn.Embedding(num_classes + 1, emb_dim) if num_classes > 0 else None
        self.conv_in = nn.Conv2d(channels, hidden_dim, 3, padding=1)

        ch, skips = hidden_dim, [hidden_dim]
        self.down = nn.ModuleList()
        for level, mult in enumerate(channel_mult):
            for _ in range(num_res_blocks):
                stage = Stage([ResBlock(ch, hidden_dim * mult, emb_dim, dropout)])
                ch = hidden_dim * mult
                if level in attn:
                    stage.append(Attention(ch, num_heads))
                self.down.append(stage)
                skips.append(ch)
            if level < len(channel_mult) - 1:
                self.down.append(Stage([Downsample(ch)]))
                skips.append(ch)

        self.mid = Stage(
            [ResBlock(ch, ch, emb_dim, dropout), Attention(ch, num_heads), ResBlock(ch, ch, emb_dim, dropout)]
        )

        self.up = nn.ModuleList()
        for level, mult in reversed(list(enumerate(channel_mult))):
            for i in range(num_res_blocks + 1):
                stage = Stage([ResBlock(ch + skips.pop(), hidden_dim * mult, emb_dim, dropout)])
                ch = hidden_dim * mult
                if level in attn:
                    stage.append(Attention(ch, num_heads))
                if level > 0 and i == num_res_blocks:
                    stage.append(Upsample(ch))
                self.up.append(stage)

        self.out = nn.Sequential(group_norm(ch), nn.SiLU(), zero_init(nn.Conv2d(ch, channels, 3, padding=1)))

    def forward(self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """``x`` (B, C, H, W), ``t`` (B,) timestep indices, ``labels`` (B,) int64 or None (the null class)."""
        emb = self.time_embed(timestep_embedding(t, self.hidden_dim))  # (B, 4 * hidden_dim)
        if self.class_embed is not None:
            if labels is None:
                labels = torch.full_like(t, self.num_classes, dtype=torch.long)
            emb = emb + self.class_embed(labels)
        elif labels is not None:
            raise ValueError("labels were given to an unconditional U-Net (built with num_classes=0)")

        lo, hi = self.pad // 2, self.pad - self.pad // 2
        h = F.pad(x, (lo, hi, lo, hi))  # (B, C, S, S), S = resolutions[0]
        h = self.conv_in(h)
        hs = [h]
        for stage in self.down:
            h = stage(h, emb)
            hs.append(h)
        h = self.mid(h, emb)
        for stage in self.up:
            h = stage(torch.cat([h, hs.pop()], dim=1), emb)
        h = self.out(h)  # (B, C, S, S)
        return h[..., lo : h.shape[-2] - hi, lo : h.shape[-1] - hi]


def _level_resolutions(image_size: int, levels: int, num_res_blocks: int) -> list[int]:
    """Side of the feature maps at each level, after padding the image to a multiple of ``2**(levels-1)``."""
    if levels < 1 or num_res_blocks < 1:
        raise ValueError(f"channel_mult needs at least one level and num_res_blocks >= 1, got {levels} levels")
    factor = 2 ** (levels - 1)
    if image_size < factor:
        raise ValueError(
            f"channel_mult has {levels} levels, which halve the image {levels - 1} times, but image_size is "
            f"only {image_size}: use at most {int(math.log2(image_size)) + 1} levels for this data"
        )
    size = math.ceil(image_size / factor) * factor
    return [size // 2**i for i in range(levels)]


def _attention_levels(resolutions: list[int], attention_resolutions: Sequence[int]) -> set[int]:
    levels = {i for i, r in enumerate(resolutions) if r in set(attention_resolutions)}
    if attention_resolutions and not levels:
        # Not an error: one config serves several image sizes (e.g. [16, 14] for 32x32 and 28x28 data).
        warnings.warn(
            f"attention_resolutions {list(attention_resolutions)} match no level of this U-Net (resolutions "
            f"{resolutions}); self-attention is used only in the middle block",
            stacklevel=3,
        )
    return levels
