"""Labelled texts from files, folders, tables or the Hugging Face hub, and their stratified splits.

Layouts of ``path`` (``format: auto`` picks by what is there):
- ``files``: a folder with one file per class, one text a line; the label is the file name without its
  extension, or the extension itself when every file shares one stem (``rt-polarity.pos`` / ``rt-polarity.neg``
  -> ``pos`` / ``neg``);
- ``folders``: a folder with one sub-folder per class (its name is the label), one text per file (IMDB's layout);
- ``table``: a CSV / TSV file or a JSON-lines file with a text column and a label column;
- ``saved``: a folder written by ``datasets``' ``save_to_disk`` (a ``Dataset``, or a ``DatasetDict``'s ``train``
  split), read with ``load_from_disk``: a hub dataset saved where the hub cannot be reached.
Files are decoded with ``encoding`` by ``data/decoding.py`` (real corpora are not all UTF-8: MR is Latin-1); a file
that does not decode is an error naming it, the line and the fix. Every problem is a ``DataSourceError``. Splits are
stratified: each class is shuffled with a fixed seed and dealt out, so every split (and every cross-validation fold)
holds the classes in the data's proportions.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import torch

from gen_lightning.data.decoding import read_text
from gen_lightning.data.sources import DataSourceError, EmptySourceError, hub_column, is_saved, load_saved, local_path

TABLE_SUFFIXES = {".csv", ".tsv", ".jsonl", ".json"}
FORMATS = ("auto", "files", "folders", "table", "saved")


LabelledTextError = DataSourceError  # the name this module's errors had (a ValueError; DataSourceError is one)
LOCAL = (
    "class files (one text a line), class folders (one text a file), a CSV / JSON-lines table, or a datasets "
    "save_to_disk folder"
)


def _visible(paths) -> list[Path]:
    return sorted(p for p in paths if not p.name.startswith("."))


def _file_labels(files: list[Path]) -> list[str]:
    stems = {f.name.split(".", 1)[0] for f in files}
    if len(stems) == 1 and all("." in f.name for f in files):
        return [f.name.split(".", 1)[1] for f in files]
    return [f.name.split(".", 1)[0] for f in files]


def read_class_files(folder: Path, encoding: str) -> tuple[list[str], list[str]]:
    files = [f for f in _visible(folder.iterdir()) if f.is_file()]
    texts, labels = [], []
    for file, label in zip(files, _file_labels(files)):
        # Split at newlines only: str.splitlines also breaks at U+0085, which Latin-1's byte 0x85 decodes to.
        lines = [line.strip() for line in read_text(file, encoding, what="class file").split("\n")]
        lines = [line for line in lines if line]
        texts += lines
        labels += [label] * len(lines)
    return texts, labels


def read_class_folders(folder: Path, encoding: str) -> tuple[list[str], list[str]]:
    texts, labels = [], []
    for sub in (d for d in _visible(folder.iterdir()) if d.is_dir()):
        files = [f for f in _visible(sub.rglob("*")) if f.is_file()]
        if not files:
            raise EmptySourceError(f"class folder {sub} holds no files: each class folder needs one text a file")
        for file in files:
            texts.append(read_text(file, encoding).strip())
            labels.append(sub.name)
    return texts, labels


def read_table(file: Path, text_column: str, label_column: str, encoding: str) -> tuple[list[str], list[str]]:
    content = read_text(file, encoding, what="table")
    if file.suffix.lower() in (".jsonl", ".json"):
        try:
            rows = [json.loads(line) for line in content.splitlines() if line.strip()]
        except json.JSONDecodeError as err:
            raise DataSourceError(f"{file} is not JSON lines (line {err.lineno}: {err.msg})") from err
    else:
        rows = list(csv.DictReader(content.splitlines(), delimiter="\t" if file.suffix.lower() == ".tsv" else ","))
    if not rows:
        raise DataSourceError(f"table {file} has no rows")
    missing = [c for c in (text_column, label_column) if c not in rows[0]]
    if missing:
        raise DataSourceError(
            f"table {file} has no column(s) {missing}; it has {sorted(rows[0])}: set data.text_column / "
            "data.label_column"
        )
    return [str(r[text_column]) for r in rows], [str(r[label_column]) for r in rows]


def read_path(path: str | Path, fmt: str, text_column: str, label_column: str, encoding: str):
    """(texts, labels) of a local source in one of the layouts above."""
    if fmt not in FORMATS:
        raise DataSourceError(f"data.format must be one of {FORMATS}, got {fmt!r}")
    root = local_path(path, LOCAL)
    if fmt == "auto" and is_saved(root):
        fmt = "saved"
    if fmt == "auto":
        fmt = "table" if root.is_file() else "folders" if any(p.is_dir() for p in _visible(root.iterdir())) else "files"
    if fmt == "saved":
        return hub_examples(load_saved(root, "train"), str(root), text_column, label_column)
    if fmt == "table":
        if root.suffix.lower() not in TABLE_SUFFIXES:
            raise DataSourceError(
                f"{root}: a table must be {sorted(TABLE_SUFFIXES)}; a folder of class files works too"
            )
        return read_table(root, text_column, label_column, encoding)
    if not root.is_dir():
        raise DataSourceError(f"data.format={fmt} needs a folder, got the file {root}")
    return read_class_folders(root, encoding) if fmt == "folders" else read_class_files(root, encoding)


def hub_examples(dataset, name: str, text_column: str, label_column: str) -> tuple[list[str], list[str]]:
    """(texts, labels) of a Hugging Face dataset split; label ids become their ClassLabel names when it has them."""
    texts = list(hub_column(dataset, text_column, name, "text_column"))
    ids = hub_column(dataset, label_column, name, "label_column")
    names = getattr(dataset.features[label_column], "names", None)
    return texts, [names[i] if names and i >= 0 else str(i) for i in ids]


def check_classes(labels: list[str], where: str) -> list[str]:
    """The sorted class names; at least two classes are needed."""
    classes = sorted(set(labels))
    if len(classes) < 2:
        found = f"only the class {classes[0]!r}" if classes else "no labelled texts"
        raise DataSourceError(f"{where} has {found}: a classifier needs texts of at least two classes")
    return classes


def _shuffled_by_class(indices: list[int], labels: list[int], seed: int) -> dict[int, list[int]]:
    g = torch.Generator().manual_seed(seed)
    by_class: dict[int, list[int]] = {}
    for i in indices:
        by_class.setdefault(labels[i], []).append(i)
    return {
        c: [members[j] for j in torch.randperm(len(members), generator=g).tolist()]
        for c, members in sorted(by_class.items())
    }


def stratified_folds(labels: list[int], num_folds: int, seed: int) -> list[int]:
    """The fold (0..num_folds-1) of every example: each class shuffled, then dealt round-robin into the folds."""
    fold = [0] * len(labels)
    offset = 0
    for c, members in _shuffled_by_class(list(range(len(labels))), labels, seed).items():
        if len(members) < num_folds:
            raise DataSourceError(f"class {c} has {len(members)} texts, fewer than data.num_folds={num_folds}")
        for j, i in enumerate(members):
            fold[i] = (j + offset) % num_folds  # offset: small classes do not all start in fold 0
        offset += len(members)
    return fold


def shuffled(indices: list[int], seed: int) -> list[int]:
    """``indices`` in a random order fixed by ``seed``: a split's first batches then hold every class."""
    return [indices[j] for j in torch.randperm(len(indices), generator=torch.Generator().manual_seed(seed)).tolist()]


def stratified_split(indices: list[int], labels: list[int], fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """(rest, held out), each shuffled: ``round(fraction * n_c)`` texts of every class c held out."""
    rest, held = [], []
    for members in _shuffled_by_class(indices, labels, seed).values():
        n = round(fraction * len(members))
        held += members[:n]
        rest += members[n:]
    return shuffled(sorted(rest), seed), shuffled(sorted(held), seed)
