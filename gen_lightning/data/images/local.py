"""The formats a local image path (``data.path``) may hold, and the one reader that tells them apart.

``FORMATS`` is the list; ``image_format`` finds a path's format from what is there (not from a config key), and
``load_local`` reads it as a ``datasets.Dataset`` with an ``image`` column (or the columns the file names) and,
where the data has them, integer or text labels. A path of none of them is one error naming the path, every format
accepted and the fix. Formats with splits (IDX files, a saved ``DatasetDict``) are read split by split; the others
hold one split, from which a data module holds out ``val_fraction``.
"""

from __future__ import annotations

from pathlib import Path

import datasets

from gen_lightning.data import sources
from gen_lightning.data.images.cifar import is_cifar, load_cifar
from gen_lightning.data.images.folders import IMAGE_SUFFIXES, load_image_folder, load_image_zip
from gen_lightning.data.images.idx import idx_files, load_idx
from gen_lightning.data.sources import DataSourceError

FORMATS = {
    "idx": "a folder of MNIST-style IDX files as distributed (train-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte, ...)",
    "cifar": "an extracted CIFAR-10/100 folder as distributed (cifar-10-batches-py or -bin: data_batch_1, test_batch)",
    "saved": "a folder written by datasets' save_to_disk (a Dataset, or a DatasetDict of splits)",
    "parquet": "parquet files (a file, a folder of them, or a glob)",
    "csv": "a .csv or .tsv file with a column of image paths (relative to the file) and a label column",
    "zip": "a .zip of images (sub-folders name the classes)",
    "folder": "a folder of images (sub-folders name the classes)",
}
ACCEPTED = "; ".join(FORMATS.values())
SPLITS = ("idx", "cifar", "saved")  # the formats that hold named splits
FIXED = ("idx", "cifar", "zip", "folder")  # the formats whose image column is "image" (renamed to the one asked)


def image_format(path: str, key: str = "path") -> str:
    """The key of ``FORMATS`` that ``path`` holds; else an error naming the path and the formats accepted."""
    if any(ch in path for ch in "*?["):
        return "parquet"
    root = sources.local_path(path, f"one of: {ACCEPTED}", key)
    if root.is_dir():
        if idx_files(root):
            return "idx"
        if is_cifar(root):
            return "cifar"
        if sources.is_saved(root):
            return "saved"
        if next(root.rglob("*.parquet"), None) is not None:
            return "parquet"
        if any(f.suffix.lower() in IMAGE_SUFFIXES for f in root.rglob("*")):
            return "folder"
    else:
        suffix = root.suffix.lower()
        found = {".zip": "zip", ".csv": "csv", ".tsv": "csv", ".parquet": "parquet"}.get(suffix)
        if found:
            return found
    what = "a folder" if root.is_dir() else f"a file of suffix {root.suffix or '(none)'!r}"
    raise DataSourceError(
        f"data.{key}={path!r} is {what} in none of the image formats: give one of: {ACCEPTED}. Other data: save it "
        "with datasets (Dataset.save_to_disk(DIR)) and give that folder"
    )


def load_local(
    path: str, split: str, val_split: str | None = None, image_column: str = "image", key: str = "path"
) -> datasets.Dataset:
    """``split`` of the data at ``path``. A format of one split reads all of it for ``split``, and refuses when a
    ``val_split`` is also asked of it (the module holds out a fraction instead). Formats whose columns are fixed
    name their images ``image_column`` (``data=cifar10`` reads ``img``, as the hub's copy calls it)."""
    kind = image_format(path, key)
    table = _load(kind, path, split, val_split)
    if kind in FIXED and image_column != "image" and image_column not in table.column_names:
        table = table.rename_column("image", image_column)
    return table


def _load(kind: str, path: str, split: str, val_split: str | None) -> datasets.Dataset:
    root = Path(path).expanduser()
    if kind == "idx":
        return load_idx(root, split)
    if kind == "cifar":
        return load_cifar(root, split)
    if kind == "saved":
        return sources.load_saved(root, split, val_split)
    if val_split is not None:
        raise sources.no_splits(path, FORMATS[kind], val_split)
    if kind == "parquet":
        return sources.load_parquet(path)
    if kind == "csv":
        return image_paths(sources.load_csv(root), root.parent)
    if kind == "zip":
        return load_image_zip(root)
    return load_image_folder(path)


def image_paths(table: datasets.Dataset, folder: Path) -> datasets.Dataset:
    """A table whose text columns of image file names (every value ends in an image suffix) become image columns,
    each name relative to ``folder`` (the CSV's) unless absolute."""
    rows, features = table.to_dict(), dict(table.features)
    for column, feature in table.features.items():
        values = rows[column]
        text = isinstance(feature, datasets.Value) and feature.dtype in ("string", "large_string")
        if text and values and all(v and Path(v).suffix.lower() in IMAGE_SUFFIXES for v in values):
            rows[column] = [{"path": str(folder / Path(v).expanduser()), "bytes": None} for v in values]
            features[column] = datasets.Image(decode=False)
    return datasets.Dataset.from_dict(rows, features=datasets.Features(features))
