"""The image data module: hub datasets, local files in the formats people have, and the embedded digits.

Every source becomes a Hugging Face dataset (``data/sources.py``; local paths: ``local.py``, which says the formats
a path may hold: MNIST IDX files, ``save_to_disk`` folders, parquet, CSV of image paths, zip, image folders); its
images are decoded once in ``setup`` to a uint8 tensor ``(N, C, H, W)`` (resized, padded, grey or RGB as
configured) and scaled to [-1, 1] per item. A file that cannot be decoded fails with its path (or its row) in the
message. Splits are fixed by ``split_seed``, so every run and every seed is evaluated on the same validation images.
"""

from __future__ import annotations

import io
from pathlib import Path

import datasets
import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import DataLoader, Dataset

from gen_lightning.data import sources
from gen_lightning.data.base import DataModule, Source, digest
from gen_lightning.data.images import local
from gen_lightning.data.images.derive import resize_all
from gen_lightning.data.images.folders import load_digits, load_image_folder
from gen_lightning.data.sources import DataSourceError

SOURCES = ("digits", "hub", "local", "parquet", "image_folder")


class ImageTensorDataset(Dataset):
    """uint8 images ``(N, C, H, W)`` and int64 labels; items are ``(float image in [-1, 1], label)``."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        self.images = images
        self.labels = labels

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images[i].float().div(127.5).sub(1.0), self.labels[i]


# Decoded embedded data sets of this process, by decoding settings: the runs of a study share them (the data ships
# inside an installed package and never changes; decoding the digits took 0.5 s of every run's start).
_EMBEDDED: dict[tuple, ImageTensorDataset] = {}


def _to_pil(value, where: str) -> Image.Image:
    """One cell of an image column (encoded bytes, a path, a PIL image or an array) as a PIL image."""
    try:
        if isinstance(value, Image.Image):
            return value
        if isinstance(value, dict):
            if value.get("bytes"):
                img = Image.open(io.BytesIO(value["bytes"]))
            elif value.get("path"):
                img = Image.open(value["path"])
                where = value["path"]
            else:
                raise ValueError("empty image cell (no bytes and no path)")
        elif isinstance(value, bytes | bytearray):
            img = Image.open(io.BytesIO(value))
        elif isinstance(value, str):  # a file's path (a CSV's column of paths)
            img, where = Image.open(value), value
        else:
            arr = np.asarray(value)
            if arr.dtype.kind not in "iu" or arr.size == 0 or arr.min() < 0 or arr.max() > 255:
                raise ValueError(f"array images must hold integers in 0..255 (dtype {arr.dtype})")
            img = Image.fromarray(arr.astype(np.uint8))
        img.load()
        return img
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as err:
        raise DataSourceError(f"cannot read image {where}: {err}") from err


def _labels(ds: datasets.Dataset, label_column: str | None) -> torch.Tensor:
    """int64 labels of ``label_column`` (``auto``: ``label`` where there is one), -1 without; text labels (a CSV's
    ``cat``/``dog``) become class indices in sorted order, as ``datasets.ClassLabel`` numbers them."""
    if label_column not in (None, "auto") and label_column not in ds.column_names:
        raise DataSourceError(
            f"label column '{label_column}' not found; the dataset has columns {ds.column_names} (set "
            "data.label_column to one of them, or data.label_column=null for unlabelled images)"
        )
    label_column = "label" if label_column == "auto" and "label" in ds.column_names else label_column
    if label_column in (None, "auto"):
        return torch.full((len(ds),), -1, dtype=torch.long)
    feature = ds.features[label_column]
    if isinstance(feature, datasets.Value) and feature.dtype in ("string", "large_string"):
        ds = ds.class_encode_column(label_column)
    return torch.as_tensor(np.asarray(ds.with_format("numpy")[:][label_column]), dtype=torch.long)


def _array_images(ds: datasets.Dataset, column: str, channels: int, size: int | None) -> torch.Tensor | None:
    """uint8 ``Array2D``/``Array3D`` images (IDX files, the digits) read as one array, without a PIL image per row;
    None for other columns. Resizing is ``derive.resize_all``'s, the PIL bicubic of the per-image path."""
    feature = ds.features[column]
    if not isinstance(feature, datasets.Array2D | datasets.Array3D) or feature.dtype != "uint8":
        return None
    arr = np.asarray(ds.with_format("numpy")[:][column]).astype(np.uint8)  # (N, H, W) or (N, H, W, C)
    arr = arr[..., None] if arr.ndim == 3 else arr
    if arr.shape[-1] not in (1, 3) or (arr.shape[-1] == 3 and channels == 1):
        return None  # the luma of RGB arrays: PIL's convert("L") in the per-image path
    x = torch.from_numpy(np.ascontiguousarray(arr)).permute(0, 3, 1, 2).contiguous()  # (N, C, H, W)
    x = resize_all(x, size) if size is not None else x
    return x.expand(-1, channels, -1, -1).contiguous()  # grey to RGB repeats the channel, as PIL does


def decode_images(
    ds: datasets.Dataset,
    image_column: str,
    label_column: str | None,
    channels: int,
    size: int | None,
    pad: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode every image of ``ds`` to uint8 ``(N, C, H, W)``; labels are -1 where there is no label column."""
    if image_column not in ds.column_names:
        raise DataSourceError(f"image column '{image_column}' not found; the dataset has columns {ds.column_names}")
    if isinstance(ds.features[image_column], datasets.Image):
        ds = ds.cast_column(image_column, datasets.Image(decode=False))
    labels = _labels(ds, label_column)
    if len(ds) == 0:
        raise DataSourceError("the dataset has no images")
    x = _array_images(ds, image_column, channels, size)
    if x is None:
        mode = {1: "L", 3: "RGB"}[channels]
        images = []
        for i, value in enumerate(ds[image_column]):
            img = _to_pil(value, where=f"at row {i} of column '{image_column}'").convert(mode)
            if size is not None and img.size != (size, size):
                img = img.resize((size, size), Image.BICUBIC)
            arr = np.asarray(img, dtype=np.uint8).reshape(img.size[1], img.size[0], channels)
            images.append(torch.from_numpy(arr.copy()).permute(2, 0, 1))
        x = torch.stack(images)
    if pad:
        x = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    return x, labels


class ImageDataModule(DataModule):
    """Images scaled to [-1, 1] with integer labels, from one of ``SOURCES``.

    ``source`` picks the kind (``digits``: embedded; ``hub``: ``hub_name``, or ``name`` as older configs say;
    ``local``: ``path`` in any format of ``local.py``; ``parquet`` / ``image_folder``: ``path`` in that format).
    A ``path`` given to ``digits`` or ``hub`` is a local copy of the data, read instead (``data=mnist
    data.path=DIR`` with the IDX files as distributed); the hub name still names the data in ``dataset_key``."""

    task, source_modality, modality = "unconditional", None, "image"  # docs/CONTRACT.md
    EMBEDDED = {"digits": "the embedded 8x8 digits (scikit-learn)"}
    LOCAL = f"one of: {local.ACCEPTED}"

    def __init__(
        self,
        source: str = "digits",
        name: str | None = None,
        path: str | None = None,
        hub_name: str | None = None,
        image_column: str = "image",
        label_column: str | None = "auto",
        train_split: str = "train",
        val_split: str | None = None,
        val_fraction: float = 0.15,
        split_seed: int = 0,
        channels: int = 1,
        image_size: int | None = None,
        pad: int = 0,
        batch_size: int = 64,
        eval_batch_size: int = 256,
        num_workers: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if source not in SOURCES:
            raise ValueError(f"data.source must be one of {SOURCES}, got '{source}'")
        if name and hub_name and name != hub_name:
            raise ValueError(f"data.name={name!r} and data.hub_name={hub_name!r} differ: give one (hub_name)")
        if source == "hub" and not (name or hub_name):
            raise ValueError("data.source=hub needs data.name or data.hub_name (a hub dataset such as ylecun/mnist)")
        if source in ("local", "parquet", "image_folder") and not path:
            raise ValueError(f"data.source={source} needs data.path")
        if channels not in (1, 3):
            raise ValueError(f"data.channels must be 1 or 3, got {channels}")
        if val_split is None and not 0.0 < val_fraction < 1.0:
            raise ValueError(f"data.val_fraction must be in (0, 1), got {val_fraction}")
        if batch_size <= 0:
            raise ValueError(f"data.batch_size must be positive, got {batch_size}")
        self.save_hyperparameters(logger=False)  # the run logs the whole config itself
        self.splits: dict[str, ImageTensorDataset] = {}
        self.num_classes = 0

    # ---- loading -------------------------------------------------------------------------------------------
    @property
    def kind(self) -> str:
        """The source read: ``source``, but ``local`` where a path is given to ``digits`` or ``hub``."""
        hp = self.hparams
        return "local" if hp.path and hp.source in ("digits", "hub") else hp.source

    @property
    def source(self) -> Source:
        hp = self.hparams
        if self.kind == "digits":
            return Source("embedded", "digits", "source")
        if self.kind == "hub":
            return Source("hub", hp.get("hub_name") or hp.name, "hub_name")
        return Source("path", hp.path, "path")

    def hub_splits(self) -> set[str]:
        return {self.hparams.train_split, self.hparams.val_split} - {None}

    def _load(self, split: str) -> datasets.Dataset:
        hp = self.hparams
        if self.kind == "digits":
            return load_digits()
        if self.kind == "hub":
            return self.load_hub(split)
        if self.kind == "local":
            return local.load_local(hp.path, split, hp.val_split, hp.image_column)
        if hp.source == "parquet":
            return sources.load_parquet(hp.path)
        return load_image_folder(hp.path)

    def _decode(self, ds: datasets.Dataset) -> ImageTensorDataset:
        hp = self.hparams
        images, labels = decode_images(ds, hp.image_column, hp.label_column, hp.channels, hp.image_size, hp.pad)
        return ImageTensorDataset(images, labels)

    def _load_decoded(self, split: str) -> ImageTensorDataset:
        hp = self.hparams
        if self.kind != "digits":
            return self._decode(self._load(split))
        key = (hp.source, split, hp.image_column, hp.label_column, hp.channels, hp.image_size, hp.pad)
        if key not in _EMBEDDED:
            _EMBEDDED[key] = self._decode(self._load(split))
        return _EMBEDDED[key]

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        hp = self.hparams
        full = self._load_decoded(hp.train_split)
        if hp.val_split is not None:
            self.splits = {"train": full, "val": self._load_decoded(hp.val_split)}
        else:
            order = torch.randperm(len(full), generator=torch.Generator().manual_seed(hp.split_seed))
            n_val = max(1, int(round(hp.val_fraction * len(full))))
            if n_val >= len(full):
                raise DataSourceError(f"only {len(full)} images: too few to hold out a validation split")
            val_idx, train_idx = order[:n_val].sort().values, order[n_val:].sort().values
            self.splits = {
                "train": ImageTensorDataset(full.images[train_idx], full.labels[train_idx]),
                "val": ImageTensorDataset(full.images[val_idx], full.labels[val_idx]),
            }
        labels = self.splits["train"].labels
        self.num_classes = int(labels.max()) + 1 if bool((labels >= 0).all()) else 0

    # ---- what models and metrics need ----------------------------------------------------------------------
    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.splits["train"].images.shape[1:])

    def model_kwargs(self) -> dict:
        c, h, w = self.image_shape
        if h != w:
            raise DataSourceError(f"images are {h}x{w}; models need square images: set data.image_size")
        return {"channels": c, "image_size": h, "num_classes": self.num_classes}

    def data_params(self) -> dict:
        # hub_name and name are one setting: keyed as `name`, so a key (and the cached statistics and classifier
        # it names) is the same whichever a config says, and the same as before hub_name existed.
        params = super().data_params()
        params["name"] = params.get("name") or params.pop("hub_name", None)
        params.pop("hub_name", None)
        return params

    @property
    def dataset_key(self) -> str:
        """Identifies the data and its preprocessing (cache key for metric statistics and extractors)."""
        params = self.data_params()
        label = params["name"] or (Path(params["path"]).name if params["source"] == "local" else params["source"])
        return f"{str(label).replace('/', '_')}-{self.image_shape[1]}px-{digest(params)}"

    # ---- loaders -------------------------------------------------------------------------------------------
    def train_dataloader(self) -> DataLoader:
        return self.train_loader(self.splits["train"])

    def val_dataloader(self) -> DataLoader:
        return self.reference_loader("val", self.hparams.eval_batch_size)

    def reference_loader(self, split: str, batch_size: int) -> DataLoader:
        """Ordered, unpadded loader over a split (metrics' real images, reconstructions for `sample`)."""
        if split not in self.splits:
            raise ValueError(f"unknown split '{split}'; choose from {sorted(self.splits)}")
        return self.eval_loader(self.splits[split], batch_size)
