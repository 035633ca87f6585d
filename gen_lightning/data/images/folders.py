"""Local and embedded image sources: a folder of images, paired ``A``/``B`` folders, and the embedded digits.

Each returns a Hugging Face ``datasets.Dataset`` (as the hub and parquet sources of ``data/sources.py`` do), so every
source goes through one decoding path (``module.py``'s ``decode_images``). Files are listed here rather than by
``datasets``' imagefolder builder so that a folder with no images fails with a message naming it (decoding happens
later, per file, and a file that cannot be decoded is named then).
"""

from __future__ import annotations

import zipfile
from pathlib import Path, PurePosixPath

import datasets

from gen_lightning.data.sources import DataSourceError, _quiet, local_path

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}


def _images(folder: Path) -> list[Path]:
    return sorted(f for f in folder.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)


def _table(cells: list[dict], parents: list[str | None]) -> datasets.Dataset:
    """Image cells with labels from their folders (``parents``: the immediate sub-folder of each, None at the top):
    labelled only when every image is in a sub-folder, as in the imagefolder builder; classes in sorted order."""
    features = {"image": datasets.Image(decode=False)}
    rows: dict[str, list] = {"image": cells}
    if parents and all(parents):
        classes = sorted(set(parents))
        features["label"] = datasets.ClassLabel(names=classes)
        rows["label"] = [classes.index(p) for p in parents]
    return datasets.Dataset.from_dict(rows, features=datasets.Features(features))


def load_image_folder(path: str) -> datasets.Dataset:
    """Images in ``path``; immediate sub-folders are class names (labels), as in the imagefolder builder."""
    _quiet()
    root = local_path(path, "a folder of images (sub-folders name the classes)")
    if not root.is_dir():
        raise DataSourceError(f"data.path={path!r} is a file: give a folder of images (sub-folders name the classes)")
    files = _images(root)
    if not files:
        raise DataSourceError(
            f"image folder '{path}' (data.path) contains no images (looked for {', '.join(sorted(IMAGE_SUFFIXES))})"
        )
    cells = [{"path": str(f), "bytes": None} for f in files]
    return _table(cells, [f.parent.name if f.parent != root else None for f in files])


def load_image_zip(path: Path) -> datasets.Dataset:
    """The images of a zip archive, labelled by their folders as in an image folder; one folder that holds
    everything (``zip -r imgs.zip imgs/``) is the archive's root, not a class.

    Read with ``zipfile`` rather than ``datasets``' imagefolder: in datasets 5.2 that builder labels an archive's
    images by the folder the archive sits in (``_generate_examples`` takes ``dirname`` of the archive's path), and
    it extracts to a cache keyed by the archive's path alone, so a changed archive would be read stale."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = sorted(n for n in archive.namelist() if PurePosixPath(n).suffix.lower() in IMAGE_SUFFIXES)
            names = [n for n in names if not n.startswith("__MACOSX/")]  # macOS resource forks beside the images
            cells = [{"path": f"{path}/{n}", "bytes": archive.read(n)} for n in names]
    except (zipfile.BadZipFile, OSError) as err:
        raise DataSourceError(f"could not read '{path}' as a zip archive ({err}): give a zip of images") from err
    if not names:
        raise DataSourceError(
            f"the zip archive '{path}' holds no images (looked for {', '.join(sorted(IMAGE_SUFFIXES))})"
        )
    parts = [PurePosixPath(n).parts for n in names]
    while len({p[0] for p in parts}) == 1 and all(len(p) > 1 for p in parts):  # a folder around everything
        parts = [p[1:] for p in parts]
    return _table(cells, [p[-2] if len(p) > 1 else None for p in parts])


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


def _images_by_stem(folder: Path) -> dict[str, Path]:
    return {str(f.relative_to(folder).with_suffix("")): f for f in _images(folder)}


def load_paired_folders(path: str | Path) -> datasets.Dataset:
    """Images ``path/A/NAME.*`` paired with ``path/B/NAME.*`` (same relative name, any image suffix)."""
    root = local_path(path, "a folder holding A/ (inputs) and B/ (targets) with matching file names")
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
