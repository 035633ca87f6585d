"""Where data comes from, and how a source that cannot be read is reported.

Every data module names its source with one vocabulary of config keys (``gen_lightning/data/base.py``):
``path`` (a local file, folder or glob), ``hub_name`` (a Hugging Face dataset, with ``hub_config``, ``hub_split``,
``hub_kwargs``), or an embedded default that ships with an installed package (``embedded``; images say
``source: digits``, music ``corpus: essen``). Hub datasets, parquet files, CSV files and folders written by
``datasets``' ``save_to_disk`` load here as a ``datasets.Dataset``; which formats a local image path may hold is said
by ``images/local.py``; text files are decoded by ``decoding.py``.

Every problem is a ``DataSourceError`` whose message names the config key, its value and the fix:
``data.path='/x/train.txt' does not exist (...): give ...``.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path

import datasets


class DataSourceError(RuntimeError, ValueError):
    """Data could not be read as configured; the message names the key, the value and how to fix it.

    Both a RuntimeError and a ValueError: the readers it unifies raised one or the other (text files a ValueError,
    image and parallel sources a RuntimeError), and code that caught either still catches it."""


class SourceNotFoundError(DataSourceError, FileNotFoundError):
    """A local path (``data.path``) that does not exist."""


class TextDecodingError(DataSourceError):
    """A text file whose bytes are not valid in the configured ``data.encoding``."""


class EmptySourceError(DataSourceError):
    """A source that holds nothing to learn from (an empty file, a file of blank lines)."""


def missing_path(path: str | Path, expected: str, key: str = "path") -> SourceNotFoundError:
    """The one error for a local path that is not there: ``data.KEY='PATH' does not exist: give EXPECTED``."""
    where = "" if Path(path).expanduser().is_absolute() else f" (relative to {Path.cwd()})"
    return SourceNotFoundError(f"data.{key}={str(path)!r} does not exist{where}: give {expected}")


def local_path(path: str | Path, expected: str, key: str = "path") -> Path:
    """``path`` (``~`` expanded) when it exists; else ``missing_path``'s error."""
    resolved = Path(path).expanduser()
    if not resolved.exists():
        raise missing_path(path, expected, key)
    return resolved


def _quiet() -> None:
    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()


# What the hub error suggests when no local copy is described by the caller.
LOCAL_COPY = (
    "download the dataset's parquet files yourself and use data=parquet data.path=DIR (or data=image_folder for a "
    "folder of images)"
)


def load_hub(
    name: str, split: str, config: str | None = None, *, local_copy: str = LOCAL_COPY, **kwargs
) -> datasets.Dataset:
    """``datasets.load_dataset(name, config, split=split, **kwargs)``: a hub name, or a local dataset directory of
    the same layout. A failure says what to do, ending with ``local_copy`` (how to use the data without the hub)."""
    _quiet()
    where = f"the hub dataset {name!r} (data.hub_name; config {config!r}, split {split!r})"
    try:
        # The config positionally only when given: hub_kwargs may name it too ({name: 3.0.0}, as load_dataset does).
        return datasets.load_dataset(name, *([config] if config is not None else []), split=split, **kwargs)
    except ValueError as err:
        if "split" in str(err).lower():
            raise DataSourceError(f"{where} has no split {split!r}: {err}") from err
        raise DataSourceError(f"could not load {where}: {err}") from err
    except Exception as err:  # connection errors come in many types (requests, httpx, hub, OSError)
        offline = os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("HF_DATASETS_OFFLINE") == "1"
        hint = (
            "HF_HUB_OFFLINE/HF_DATASETS_OFFLINE is set, and the dataset is not in the local cache"
            if offline
            else "check the name and your internet connection"
        )
        raise DataSourceError(
            f"could not load {where}: {type(err).__name__}: {err}. Likely cause: {hint}. To fix: Connect to the "
            f"internet once (the download is cached under {datasets.config.HF_DATASETS_CACHE}; HF_DATASETS_OFFLINE=1 "
            f"then uses the cache), or {local_copy}."
        ) from err


def hub_column(dataset: datasets.Dataset, column: str, name: str, key: str) -> list:
    """The values of ``column``; a missing column is an error naming the columns there are and the key to set."""
    if column not in dataset.column_names:
        raise DataSourceError(
            f"data.{key}={column!r}: the hub dataset {name!r} has no column {column!r}; it has {dataset.column_names}"
        )
    return dataset[column]


def load_parquet(path: str) -> datasets.Dataset:
    """All parquet files at ``path`` (a file, a directory searched recursively, or a glob)."""
    _quiet()
    p, expected = Path(path).expanduser(), "a .parquet file, a folder or a glob of them"
    if p.is_dir():
        files = sorted(str(f) for f in p.rglob("*.parquet"))
    elif any(ch in path for ch in "*?["):
        files = sorted(glob.glob(os.path.expanduser(path), recursive=True))
    else:
        files = [str(local_path(path, f"{expected} (no parquet files found at '{path}')"))]
    if not files:
        raise SourceNotFoundError(f"data.path={path!r} matches no parquet files: give {expected}")
    try:
        return datasets.load_dataset("parquet", data_files=files, split="train")
    except Exception as err:
        raise DataSourceError(f"could not read parquet files at '{path}' (data.path): {err}") from err


def is_saved(path: Path) -> bool:
    """A folder written by ``Dataset.save_to_disk`` (``state.json``) or ``DatasetDict.save_to_disk``."""
    return path.is_dir() and ((path / "state.json").is_file() or (path / "dataset_dict.json").is_file())


def no_splits(path: str | Path, what: str, split: str) -> DataSourceError:
    """The error for a second split asked of a source that holds one: hold out a fraction instead."""
    return DataSourceError(
        f"'{path}' ({what}) holds one split, so the split {split!r} (data.val_split) cannot be read from it: set "
        "data.val_split=null to hold out data.val_fraction of it"
    )


def load_saved(path: Path, split: str, val_split: str | None = None) -> datasets.Dataset:
    """A folder of ``save_to_disk``: a ``DatasetDict``'s ``split``, or a ``Dataset`` (one split, read whole for
    ``split``; an error when a ``val_split`` is asked of it too)."""
    _quiet()
    try:
        saved = datasets.load_from_disk(str(path))
    except Exception as err:
        raise DataSourceError(f"could not read '{path}' with datasets.load_from_disk: {err}") from err
    if isinstance(saved, datasets.Dataset):
        if val_split is not None:
            raise no_splits(path, "a dataset saved by save_to_disk", val_split)
        return saved
    if split not in saved:
        raise DataSourceError(
            f"'{path}' (a DatasetDict saved by save_to_disk) has no split {split!r}; it has {sorted(saved)}: set "
            "data.train_split / data.val_split to them (data.val_split=null holds out data.val_fraction)"
        )
    return saved[split]


def load_csv(path: Path) -> datasets.Dataset:
    """A CSV (``.csv``) or tab-separated (``.tsv``) file with a header row, read by ``datasets``' csv builder."""
    _quiet()
    try:
        kwargs = {"sep": "\t"} if path.suffix.lower() == ".tsv" else {}
        return datasets.load_dataset("csv", data_files=str(path), split="train", **kwargs)
    except Exception as err:
        raise DataSourceError(f"could not read '{path}' as a CSV file with a header row: {err}") from err
