"""Input images derived from target images by a named transform, and paired folders (the paired data's sources).

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

from pathlib import Path

import datasets
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from gen_lightning.data.sources import IMAGE_SUFFIXES, DataSourceError

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
    try:
        if kind == "downscale" and arg:
            return downscale(images, int(arg))
        if kind == "edges" and not arg:
            return sobel_edges(images)
        if kind == "grayscale" and not arg:
            return luma(images)
        if kind == "mask":
            return mask_holes(images, float(arg) if arg else 0.5, seed)
    except ValueError as err:
        raise DataSourceError(f"cannot read the transform '{name}': {err}") from err
    raise DataSourceError(f"unknown transform '{name}' (data.transform); choose one of {', '.join(TRANSFORMS)}")


# ---------------------------------------------------------------------------------------- paired folders


def _images_by_stem(folder: Path) -> dict[str, Path]:
    files = sorted(f for f in folder.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
    return {str(f.relative_to(folder).with_suffix("")): f for f in files}


def load_paired_folders(path: str | Path) -> datasets.Dataset:
    """Images ``path/A/NAME.*`` paired with ``path/B/NAME.*`` (same relative name, any image suffix)."""
    root = Path(path).expanduser()
    folders = {side: root / side for side in ("A", "B")}
    missing = [str(f) for f in folders.values() if not f.is_dir()]
    if missing:
        raise DataSourceError(
            f"paired folders need '{root}/A' (inputs) and '{root}/B' (targets) with matching file names; "
            f"missing: {', '.join(missing)}"
        )
    a, b = _images_by_stem(folders["A"]), _images_by_stem(folders["B"])
    if not a:
        raise DataSourceError(f"'{folders['A']}' holds no images (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
    only_a, only_b = sorted(set(a) - set(b)), sorted(set(b) - set(a))
    if only_a or only_b:
        raise DataSourceError(
            f"the images in '{root}/A' and '{root}/B' must pair up by file name: {len(only_a)} only in A "
            f"({', '.join(only_a[:5])}), {len(only_b)} only in B ({', '.join(only_b[:5])})"
        )
    names = sorted(a)
    features = datasets.Features({"source": datasets.Image(decode=False), "target": datasets.Image(decode=False)})
    rows = {side: [{"path": str(files[n]), "bytes": None} for n in names] for side, files in zip(features, (a, b))}
    return datasets.Dataset.from_dict(rows, features=features)
