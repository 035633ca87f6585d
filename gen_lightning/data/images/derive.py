"""Input images derived from target images by a named transform (the ``derived`` source of paired image data).

Transforms act on uint8 images ``(N, C, H, W)`` and are deterministic (the ``mask`` holes come from a seeded
generator), so every run sees the same pairs:
- ``downscale:K``: bicubic reduction by ``K`` (PIL's antialiased bicubic, as the low-resolution inputs of the
  super-resolution literature are made with MATLAB's ``imresize``; Ledig et al. 2017 section 4.1);
- ``edges``: binary edge maps, the thresholded Sobel gradient magnitude of the luma (Sobel 1968; the role of
  HED edges in Isola et al.'s edges2shoes, with a classic operator);
- ``grayscale``: the luma of RGB images (ITU-R 601, PIL's ``convert("L")``), the colourisation input;
- ``mask`` or ``mask:F``: a square hole of side ``F`` (default 0.5) of the image side filled with mid grey,
  at a seeded random position per image (inpainting, Pathak et al. 2016).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from gen_lightning.data.sources import DataSourceError

TRANSFORMS = ("downscale:K", "edges", "grayscale", "mask[:F]")
EDGE_THRESHOLD = 0.25  # of each image's largest gradient magnitude


def _pil(image: torch.Tensor) -> Image.Image:
    arr = image.permute(1, 2, 0).numpy()  # (H, W, C)
    return Image.fromarray(arr[:, :, 0] if arr.shape[2] == 1 else arr)


def _from_pil(img: Image.Image, channels: int) -> torch.Tensor:
    arr = np.asarray(img, dtype=np.uint8).reshape(img.size[1], img.size[0], channels)
    return torch.from_numpy(arr.copy()).permute(2, 0, 1)


def resize_all(images: torch.Tensor, size: int) -> torch.Tensor:
    """Every image of uint8 ``(N, C, H, W)`` resized to ``size x size`` with PIL's bicubic filter."""
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    c = images.shape[1]
    return torch.stack([_from_pil(_pil(x).resize((size, size), Image.BICUBIC), c) for x in images])


def downscale(images: torch.Tensor, factor: int) -> torch.Tensor:
    h, w = images.shape[-2:]
    if factor < 2 or h % factor or w % factor or h != w:
        raise DataSourceError(
            f"downscale:{factor} needs square images whose side is a multiple of {factor} (and a factor >= 2), "
            f"got {h}x{w}: set the image data's image_size (e.g. 28 for downscale:4, 32 for downscale:8)"
        )
    return resize_all(images, h // factor)


def luma(images: torch.Tensor) -> torch.Tensor:
    if images.shape[1] != 3:
        raise DataSourceError(
            f"the grayscale transform makes colourisation pairs from RGB images, but these have {images.shape[1]} "
            "channel(s): use RGB data (channels: 3)"
        )
    return torch.stack([_from_pil(_pil(x).convert("L"), 1) for x in images])


def sobel_edges(images: torch.Tensor, threshold: float = EDGE_THRESHOLD) -> torch.Tensor:
    """White edges on black: Sobel magnitude of the luma above ``threshold`` of the image's maximum."""
    grey = images.float().mean(1, keepdim=True) if images.shape[1] == 1 else luma(images).float()
    kx = torch.tensor([[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]])
    kernels = torch.stack([kx, kx.T])[:, None]  # (2, 1, 3, 3): d/dx, d/dy
    grad = F.conv2d(F.pad(grey, (1, 1, 1, 1), mode="replicate"), kernels)  # (N, 2, H, W)
    magnitude = grad.pow(2).sum(1, keepdim=True).sqrt()
    peak = magnitude.flatten(1).amax(1).clamp_min(1e-6)[:, None, None, None]
    edges = (magnitude / peak > threshold).to(torch.uint8) * 255  # (N, 1, H, W)
    return edges.expand(-1, images.shape[1], -1, -1).contiguous()


def mask_holes(images: torch.Tensor, fraction: float, seed: int) -> torch.Tensor:
    if not 0.0 < fraction < 1.0:
        raise DataSourceError(f"mask:F needs a hole side fraction F in (0, 1), got {fraction}")
    n, _, h, w = images.shape
    side_h, side_w = max(1, round(fraction * h)), max(1, round(fraction * w))
    g = torch.Generator().manual_seed(seed)
    tops = torch.randint(h - side_h + 1, (n,), generator=g)
    lefts = torch.randint(w - side_w + 1, (n,), generator=g)
    out = images.clone()
    for i in range(n):
        out[i, :, tops[i] : tops[i] + side_h, lefts[i] : lefts[i] + side_w] = 128
    return out


def apply_transform(name: str, images: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """The input images of the named transform (see the file docstring) for target images uint8 (N, C, H, W)."""
    kind, _, arg = str(name).partition(":")
    try:  # parsed before any transform runs: their own errors (DataSourceError, a ValueError too) pass unchanged
        number = (int(arg) if kind == "downscale" else float(arg)) if arg and kind in ("downscale", "mask") else None
    except ValueError as err:
        raise DataSourceError(f"cannot read the transform '{name}': {err}") from err
    if kind == "downscale" and arg:
        return downscale(images, number)
    if kind == "edges" and not arg:
        return sobel_edges(images)
    if kind == "grayscale" and not arg:
        return luma(images)
    if kind == "mask":
        return mask_holes(images, 0.5 if number is None else number, seed)
    raise DataSourceError(f"unknown transform '{name}' (data.transform); choose one of {', '.join(TRANSFORMS)}")
