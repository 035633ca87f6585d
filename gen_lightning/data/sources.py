"""Where data comes from: the Hugging Face hub, local files, or data embedded in an installed package.

Every source returns a Hugging Face ``datasets.Dataset``, so hub datasets, local folders and parquet files go
through one decoding path. Failures name what failed and what to do about it.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path

import datasets


class DataSourceError(RuntimeError):
    """A data source could not be read; the message says which and how to fix it."""


def _quiet() -> None:
    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()


def load_hub(name: str, split: str, **kwargs) -> datasets.Dataset:
    """``datasets.load_dataset(name, split=split)``; a hub name or a local dataset directory of the same layout."""
    _quiet()
    try:
        return datasets.load_dataset(name, split=split, **kwargs)
    except ValueError as err:
        if "split" in str(err).lower() or "Unknown split" in str(err):
            raise DataSourceError(f"dataset '{name}' has no split '{split}': {err}") from err
        raise DataSourceError(f"could not load dataset '{name}' (split '{split}'): {err}") from err
    except Exception as err:  # connection errors come in many types (requests, httpx, hub, OSError)
        offline = os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("HF_DATASETS_OFFLINE") == "1"
        hint = (
            "HF_HUB_OFFLINE/HF_DATASETS_OFFLINE is set, and the dataset is not in the local cache"
            if offline
            else "check the name and your internet connection"
        )
        raise DataSourceError(
            f"could not load the hub dataset '{name}' (split '{split}'): {type(err).__name__}: {err}. "
            f"Likely cause: {hint}. To fix: run once with internet access (the download is cached under "
            f"{datasets.config.HF_DATASETS_CACHE}), or download the dataset's parquet files yourself and use "
            "data=parquet data.path=DIR (or data=image_folder for a folder of images)."
        ) from err


def load_parquet(path: str) -> datasets.Dataset:
    """All parquet files at ``path`` (a file, a directory searched recursively, or a glob)."""
    _quiet()
    p = Path(path).expanduser()
    if p.is_dir():
        files = sorted(str(f) for f in p.rglob("*.parquet"))
    elif any(ch in path for ch in "*?["):
        files = sorted(glob.glob(os.path.expanduser(path), recursive=True))
    else:
        files = [str(p)] if p.exists() else []
    if not files:
        raise DataSourceError(
            f"no parquet files found at '{path}' (data.path): give a .parquet file, a folder or a glob"
        )
    try:
        return datasets.load_dataset("parquet", data_files=files, split="train")
    except Exception as err:
        raise DataSourceError(f"could not read parquet files at '{path}': {err}") from err


IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}


def load_image_folder(path: str) -> datasets.Dataset:
    """Images in ``path``; immediate sub-folders are class names (labels), as in the imagefolder builder.

    Files are listed here rather than by ``datasets``' imagefolder builder so that a folder with no images, or
    with unreadable files, fails with a message naming them (decoding happens later, per file).
    """
    _quiet()
    root = Path(path).expanduser()
    if not root.is_dir():
        raise DataSourceError(f"image folder '{path}' (data.path) does not exist or is not a directory")
    files = sorted(f for f in root.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DataSourceError(
            f"image folder '{path}' contains no images (looked for {', '.join(sorted(IMAGE_SUFFIXES))})"
        )
    classes = sorted({f.parent.name for f in files if f.parent != root})
    features = {"image": datasets.Image(decode=False)}
    rows: dict[str, list] = {"image": [{"path": str(f), "bytes": None} for f in files]}
    if classes and all(f.parent != root for f in files):
        features["label"] = datasets.ClassLabel(names=classes)
        rows["label"] = [classes.index(f.parent.name) for f in files]
    return datasets.Dataset.from_dict(rows, features=datasets.Features(features))


def load_digits() -> datasets.Dataset:
    """scikit-learn's bundled 8x8 digits (UCI optdigits test set): 1,797 images, 17 grey levels, 10 classes."""
    from sklearn.datasets import load_digits as sk_load_digits

    _quiet()
    bunch = sk_load_digits()
    # 0..16 grey levels -> 0..255 uint8 exactly (16 * 255 / 16); the image stays lossless.
    images = (bunch.images * (255.0 / 16.0)).round().astype("uint8")
    features = datasets.Features(
        {"image": datasets.Array2D(shape=(8, 8), dtype="uint8"), "label": datasets.ClassLabel(num_classes=10)}
    )
    return datasets.Dataset.from_dict({"image": list(images), "label": bunch.target.tolist()}, features=features)
