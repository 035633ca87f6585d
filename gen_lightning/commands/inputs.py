"""Inputs a user gives a trained model from disk: ``input=PATH`` (an image, a folder of images, a text file with
one source a line) or ``source="..."`` (one text), checked against what the model takes (docs/CONTRACT.md).

Images are converted to the model's channels (grey <-> RGB) and must have its size, unless ``resize=true``
(bicubic); texts are read strictly in the given encoding. Every refusal names the file and what was expected.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")


def image_files(path: Path) -> list[Path]:
    if not path.exists():
        raise ValueError(f"input '{path}' does not exist")
    if path.is_file():
        return [path]
    files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"input folder '{path}' holds no image files ({', '.join(IMAGE_SUFFIXES)})")
    return files


def read_image(path: Path, channels: int, size: int, resize: bool) -> torch.Tensor:
    """One image file as (C, H, W) in [-1, 1]."""
    try:
        with Image.open(path) as img:
            img = img.convert({1: "L", 3: "RGB"}[channels])
    except (UnidentifiedImageError, OSError) as err:
        raise ValueError(f"input '{path}' is not a readable image ({err})") from err
    if img.size != (size, size):
        if not resize:
            raise ValueError(
                f"input '{path}' is {img.size[0]}x{img.size[1]}, but the model takes {size}x{size} images; "
                "pass resize=true to resize it (bicubic)"
            )
        img = img.resize((size, size), Image.BICUBIC)
    arr = np.asarray(img, dtype=np.uint8).reshape(size, size, channels)
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).float().div(127.5).sub(1.0)


def read_images(path: str | Path, channels: int, size: int, resize: bool = False) -> tuple[torch.Tensor, list[Path]]:
    """An image file or a folder of them as (N, C, H, W) in [-1, 1], and the files in order."""
    files = image_files(Path(path))
    return torch.stack([read_image(f, channels, size, resize) for f in files]), files


def read_texts(path: str | Path, encoding: str = "utf-8") -> list[str]:
    """One source a line; empty lines and undecodable files are errors naming the line or the encoding."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"input '{path}' is not a text file (one source a line)")
    try:
        text = path.read_text(encoding=encoding)
    except UnicodeDecodeError as err:
        raise ValueError(
            f"input '{path}' is not {encoding} text (byte {err.start}: {err.reason}); an image given to a text "
            "model? Otherwise pass encoding=... (e.g. encoding=latin-1)"
        ) from err
    lines = text.splitlines()
    if not lines:
        raise ValueError(f"input '{path}' is empty: give one source a line")
    empty = [i + 1 for i, line in enumerate(lines) if not line.strip()]
    if empty:
        raise ValueError(f"input '{path}' has empty lines ({', '.join(map(str, empty[:5]))}): one source a line")
    return lines


def model_sources(module, input: str | None, source: str | None, resize: bool = False, encoding: str = "utf-8"):
    """``(sources, names)`` for a conditional or prediction model: an image tensor or a list of texts."""
    kind = getattr(module, "source_modality", None)
    if (input is None) == (source is None):
        raise ValueError('give the model an input: input=PATH (a file or folder) or source="..." (one text)')
    if kind == "image":
        if source is not None:
            raise ValueError(f"{type(module).__name__} takes images: pass input=IMAGE_OR_FOLDER, not source=")
        hp = module.hparams
        channels = hp.get("source_channels", hp.get("channels"))
        size = hp.get("source_image_size", hp.get("image_size"))
        images, files = read_images(input, channels, size, resize)
        return images, [f.name for f in files]
    if kind == "text":
        if source is not None:
            if not str(source).strip():
                raise ValueError("source= is empty: give the text to translate, summarise or classify")
            return [str(source)], ["source"]
        if Path(input).suffix.lower() in IMAGE_SUFFIXES:
            raise ValueError(f"{type(module).__name__} takes text, but input '{input}' is an image")
        texts = read_texts(input, encoding)
        return texts, [f"line {i + 1}" for i in range(len(texts))]
    raise ValueError(f"{type(module).__name__} generates from nothing: it takes no input= or source=")
