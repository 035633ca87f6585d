"""Small helpers shared by tests (kept out of conftest so tests can import them explicitly)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch


def mnist_arrays(mnist_dir: Path, n: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The first ``n`` MNIST test images and labels, read by the package's IDX reader."""
    from gen_lightning.data.images.idx import read_idx

    images = read_idx(mnist_dir / "t10k-images-idx3-ubyte.gz")
    labels = read_idx(mnist_dir / "t10k-labels-idx1-ubyte.gz")
    return (images[:n], labels[:n]) if n else (images, labels)


def write_mnist_parquet(mnist_dir: Path, out_dir: Path, n: int, split: str = "train") -> Path:
    """MNIST images as a parquet file with the hub dataset's schema (Image feature + ClassLabel 'label'),
    laid out like the hub repository ylecun/mnist (``mnist/<split>-00000-of-00001.parquet``): the hub's layout for
    the tests of the hub and parquet code paths. Runs read the IDX files themselves (``data.path=DIR``)."""
    import datasets
    from PIL import Image

    images, labels = mnist_arrays(mnist_dir, n)
    encoded = []
    for img in images:
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="PNG")
        encoded.append({"bytes": buf.getvalue(), "path": None})
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(num_classes=10)})
    ds = datasets.Dataset.from_dict({"image": encoded, "label": labels.tolist()}, features=features)
    target = out_dir / "mnist" / f"{split}-00000-of-00001.parquet"
    target.parent.mkdir(parents=True, exist_ok=True)
    ds.to_parquet(str(target))
    return target


def module_weights(ckpt_path: Path) -> dict[str, torch.Tensor]:
    return torch.load(ckpt_path, map_location="cpu", weights_only=False)["state_dict"]


# ----- the sequence families' tests ---------------------------------------------------------------


def shakespeare_file() -> Path | None:
    """Tiny Shakespeare beside the project (or under GEN_LIGHTNING_TEST_DATA), None where it is absent."""
    from conftest import SHARED_DATA

    path = SHARED_DATA / "tinyshakespeare" / "input.txt"
    return path if path.is_file() else None


def text_data(block_size: int = 32, batch_size: int = 16, seed: int = 0):
    """Tiny Shakespeare when present, else the embedded text, set up for fitting."""
    from gen_lightning.data.text import TextDataModule

    path = shakespeare_file()
    dm = TextDataModule(path=str(path) if path else None, block_size=block_size, batch_size=batch_size, seed=seed)
    dm.setup("fit")
    return dm


def lm_trainer(max_steps: int, **kwargs):
    """A quiet CPU Trainer validating once at the end on 8 batches (``kwargs`` override any option).

    inference_mode=False: metric states reset under inference mode cannot be updated in a later fit."""
    import lightning as L

    options = {
        "max_steps": max_steps, "limit_val_batches": 8, "val_check_interval": max_steps, "accelerator": "cpu",
        "devices": 1, "logger": False, "enable_checkpointing": False, "enable_progress_bar": False,
        "enable_model_summary": False, "num_sanity_val_steps": 0, "inference_mode": False,
    }  # fmt: skip
    return L.Trainer(**{**options, **kwargs})
