"""MNIST-style IDX files, as distributed (LeCun, Cortes and Burges; Fashion-MNIST and EMNIST use the same format).

An IDX file is a 4-byte magic number ``00 00 TYPE NDIM`` (TYPE 0x08 for unsigned bytes), NDIM big-endian uint32
sizes, then the values in row-major order: ``train-images-idx3-ubyte`` holds ``(60000, 28, 28)`` uint8 images,
``train-labels-idx1-ubyte`` ``(60000,)`` uint8 labels. Files may be gzip-compressed (``.gz``, recognised by their
content, whatever the name). A folder of them is read split by split: ``train`` from ``train-*``, ``test`` from
``t10k-*`` (also ``test-*``, and Kaggle's ``train-images.idx3-ubyte`` spelling). Every defect is one
``DataSourceError`` naming the file and what is wrong with it (truncated, wrong magic number, counts that differ).
"""

from __future__ import annotations

import gzip
import re
import zlib
from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa
from datasets.features.features import Array2DExtensionType, Array3DExtensionType

from gen_lightning.data.sources import DataSourceError, _quiet

# TYPE byte of the magic number -> big-endian numpy dtype (the IDX format's table).
DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
# [PREFIX-](train|t10k|test)-(images|labels)(-|.)idx(1|3)-ubyte[.gz]: the names the data sets are distributed under.
NAME = re.compile(r"^(?:.*-)?(train|t10k|test)-(images|labels)[-.]idx([13])-ubyte(\.gz)?$")
SPLITS = {"train": "train", "t10k": "test", "test": "test"}  # file prefix -> split (as the hub's ylecun/mnist)
FIX = "the file is damaged or incomplete: download it again"


def _bytes(path: Path) -> bytes:
    data = path.read_bytes()
    if data[:2] != b"\x1f\x8b":  # not gzip
        return data
    try:
        return gzip.decompress(data)
    except (EOFError, OSError, zlib.error) as err:
        raise DataSourceError(f"IDX file '{path}' is a damaged gzip file ({err}): {FIX}") from err


def read_idx(path: str | Path) -> np.ndarray:
    """The array of an IDX file (gzip or not), checked: magic number, header, and exactly the bytes it declares."""
    path = Path(path)
    data = _bytes(path)
    if len(data) < 4:
        raise DataSourceError(f"IDX file '{path}' is truncated: {len(data)} bytes, shorter than its magic number")
    zero, dtype_code, ndim = data[:2], data[2], data[3]
    if zero != b"\x00\x00" or dtype_code not in DTYPES or ndim == 0:
        raise DataSourceError(
            f"'{path}' is not an IDX file: its magic number is 0x{data[:4].hex()}, where IDX files begin 00 00 TYPE "
            f"NDIM (0x00000803 for images, 0x00000801 for labels; TYPE one of "
            f"{', '.join(f'0x{t:02x}' for t in DTYPES)}): give the files as distributed"
        )
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataSourceError(
            f"IDX file '{path}' is truncated: {len(data)} bytes, shorter than its {header}-byte header"
        )
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(DTYPES[dtype_code])
    expected = int(np.prod(shape)) * dtype.itemsize
    got = len(data) - header
    if got != expected:
        what = "truncated" if got < expected else "longer than its header says"
        raise DataSourceError(
            f"IDX file '{path}' is {what}: its header declares {' x '.join(map(str, shape))} values of {dtype.name} "
            f"({expected} bytes) but it holds {got} bytes after the header: {FIX}"
        )
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def idx_files(folder: Path) -> dict[str, dict[str, Path]]:
    """The IDX files in ``folder`` by split and kind: ``{"test": {"images": PATH, "labels": PATH}}``."""
    found: dict[str, dict[str, Path]] = {}
    for file in sorted(folder.iterdir()):
        match = NAME.match(file.name)
        if match and file.is_file():
            prefix, kind, dims, _ = match.groups()
            if (kind == "images") == (dims == "3"):
                split = found.setdefault(SPLITS[prefix], {})
                if kind in split:
                    raise DataSourceError(
                        f"'{folder}' holds two IDX {kind} files of the {SPLITS[prefix]} split ({split[kind].name}, "
                        f"{file.name}): keep one"
                    )
                split[kind] = file
    return found


def load_idx(folder: Path, split: str) -> datasets.Dataset:
    """The images (``Array2D`` uint8, ``image``) and labels (``ClassLabel``, ``label``) of ``split`` in ``folder``."""
    _quiet()
    found = idx_files(folder)
    split_name = SPLITS.get(split, split)
    if split_name not in found:
        have = ", ".join(f"{s} ({', '.join(p.name for p in f.values())})" for s, f in sorted(found.items()))
        fix = f"data.train_split={sorted(found)[0]}" if found else "data.train_split"
        raise DataSourceError(
            f"'{folder}' holds IDX files of the split(s) {have}, not of the split {split!r} (train-* is 'train', "
            f"t10k-* is 'test'): set {fix}, and data.val_split=null to hold out data.val_fraction of it"
        )
    files = found[split_name]
    if "images" not in files:
        raise DataSourceError(f"'{folder}' holds {files['labels'].name} but no images file of the split {split!r}")
    images = read_idx(files["images"])
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DataSourceError(f"IDX file '{files['images']}' holds {images.dtype} {images.shape}, not uint8 images")
    columns = [array_column(images)]
    features = {"image": datasets.Array2D(shape=images.shape[1:], dtype="uint8")}
    if "labels" in files:
        labels = read_idx(files["labels"])
        if labels.ndim != 1 or len(labels) != len(images):
            raise DataSourceError(
                f"IDX files of different counts: '{files['images']}' holds {len(images)} images, "
                f"'{files['labels']}' {' x '.join(map(str, labels.shape))} labels; they must match one to one"
            )
        columns.append(pa.array(labels.astype(np.int64)))
        features["label"] = datasets.ClassLabel(num_classes=int(labels.max()) + 1)
    schema = datasets.Features(features).arrow_schema
    return datasets.Dataset(pa.Table.from_arrays(columns, schema=schema))


def array_column(images: np.ndarray) -> pa.ExtensionArray:
    """uint8 ``(N, H, W)`` or ``(N, H, W, C)`` as the arrow storage of ``datasets.Array2D`` / ``Array3D`` (nested
    lists), built from the buffer: ``Dataset.from_dict`` walks the images row by row (2.5 s for 10,000 MNIST images,
    0.3 s this way)."""
    storage = pa.array(np.ascontiguousarray(images).reshape(-1))
    count = images.size
    for side in reversed(images.shape[1:]):  # innermost lists first: W (or C), then H (or W), ...
        count //= side
        storage = pa.ListArray.from_arrays(pa.array(np.arange(0, count * side + 1, side, dtype=np.int32)), storage)
    kind = {3: Array2DExtensionType, 4: Array3DExtensionType}[images.ndim]
    return pa.ExtensionArray.from_storage(kind(images.shape[1:], "uint8"), storage)
