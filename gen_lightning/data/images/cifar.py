"""CIFAR-10 / CIFAR-100 as distributed (Krizhevsky 2009): the extracted ``cifar-10-batches-py`` (or ``-bin``) folder.

- the Python version: pickled dicts, ``data`` uint8 ``(10000, 3072)`` (1024 red, 1024 green, 1024 blue values of a
  32x32 image, row-major) and ``labels`` (CIFAR-100: ``fine_labels``), in ``data_batch_1`` .. ``data_batch_5`` and
  ``test_batch`` (CIFAR-100: ``train`` and ``test``). Read with an unpickler that builds numpy arrays, lists and
  dicts only: a pickle that names anything else is refused, so a file cannot run code.
- the binary version: records of 1 label byte + 3072 pixel bytes in ``data_batch_N.bin`` / ``test_batch.bin``
  (CIFAR-100 ``train.bin`` / ``test.bin``: a coarse and a fine label byte, the fine one is read).

Splits as on the hub (``uoft-cs/cifar10``): ``train`` and ``test``.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa

from gen_lightning.data.images.idx import array_column
from gen_lightning.data.sources import DataSourceError, _quiet

# split -> the files of each layout (python 10, python 100, binary 10, binary 100)
LAYOUTS = {
    "train": ([f"data_batch_{i}" for i in range(1, 6)], ["train"], [f"data_batch_{i}.bin" for i in range(1, 6)],
              ["train.bin"]),
    "test": (["test_batch"], ["test"], ["test_batch.bin"], ["test.bin"]),
}  # fmt: skip
PIXELS = 3 * 32 * 32
# The globals a CIFAR pickle (Python 2 or 3, numpy 1 or 2) names to rebuild its arrays; nothing else is allowed.
ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
}


class _ArraysOnly(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in ALLOWED:
            raise pickle.UnpicklingError(f"it names {module}.{name}, which a CIFAR batch does not hold")
        return super().find_class(module, name)


def is_cifar(folder: Path) -> bool:
    """CIFAR-10's batch files, or CIFAR-100's ``train``/``test`` beside its label names (bare names need company)."""
    ten = ("data_batch_1", "test_batch", "data_batch_1.bin", "test_batch.bin")
    hundred = ("meta", "fine_label_names.txt")
    return any((folder / n).is_file() for n in ten) or (
        any((folder / n).is_file() for n in hundred) and any((folder / n).is_file() for n in ("train", "train.bin"))
    )


def _python_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with path.open("rb") as f:
            batch = _ArraysOnly(f, encoding="bytes").load()
        data = np.asarray(batch[b"data"], dtype=np.uint8)
        labels = np.asarray(batch.get(b"labels", batch.get(b"fine_labels")), dtype=np.int64)
    except (pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError, AttributeError) as err:
        raise DataSourceError(f"'{path}' is not a CIFAR batch of the Python version ({err}): download it again") from (
            err
        )
    return data, labels


def _binary_batch(path: Path, label_bytes: int) -> tuple[np.ndarray, np.ndarray]:
    raw = np.frombuffer(path.read_bytes(), dtype=np.uint8)
    record = label_bytes + PIXELS
    if raw.size % record:
        raise DataSourceError(
            f"CIFAR binary file '{path}' is truncated: {raw.size} bytes, not a whole number of {record}-byte records: "
            "the file is damaged or incomplete: download it again"
        )
    rows = raw.reshape(-1, record)
    return rows[:, label_bytes:], rows[:, label_bytes - 1].astype(np.int64)  # the fine label is the last label byte


def load_cifar(folder: Path, split: str) -> datasets.Dataset:
    """``split`` (``train``/``test``) of an extracted CIFAR folder: ``image`` (``Array3D`` uint8 32x32x3), ``label``."""
    _quiet()
    if split not in LAYOUTS:
        raise DataSourceError(f"CIFAR folder '{folder}' has the splits train and test, not {split!r}")
    found = [i for i, files in enumerate(LAYOUTS[split]) if all((folder / name).is_file() for name in files)]
    if not found:
        wanted = " or ".join(", ".join(files) for files in LAYOUTS[split])
        raise DataSourceError(f"CIFAR folder '{folder}' lacks the files of the {split} split ({wanted})")
    layout = found[0]
    paths = [folder / name for name in LAYOUTS[split][layout]]
    parts = [_python_batch(p) if layout < 2 else _binary_batch(p, 1 if layout == 2 else 2) for p in paths]
    data, labels = np.concatenate([d for d, _ in parts]), np.concatenate([y for _, y in parts])
    if data.ndim != 2 or data.shape[1] != PIXELS or len(labels) != len(data):
        raise DataSourceError(f"CIFAR folder '{folder}': {data.shape} pixels and {len(labels)} labels, not N x 3072")
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)  # (N, H, W, C), as Array3D holds an image
    image = datasets.Array3D(shape=(32, 32, 3), dtype="uint8")
    features = datasets.Features({"image": image, "label": datasets.ClassLabel(int(labels.max()) + 1)})
    table = pa.Table.from_arrays([array_column(images), pa.array(labels)], schema=features.arrow_schema)
    return datasets.Dataset(table)
