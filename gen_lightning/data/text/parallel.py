"""Where pairs of texts (a source and its target) come from: aligned line files, TSV, JSONL, or the hub.

A local folder holds one set of files per split, named as WMT and Multi30k ship them:

- aligned line files ``SPLIT.SRC`` and ``SPLIT.TGT`` (e.g. ``train.de`` / ``train.en``), line i of one the
  translation of line i of the other;
- or ``SPLIT.tsv``: ``source<TAB>target`` per line;
- or ``SPLIT.jsonl``: one JSON object per line, the texts under named fields (``source_field`` / ``target_field``,
  dotted for nested ones: ``translation.de``).

Each may be gzip-compressed (``.gz``); files are decoded with ``data.encoding`` by ``data/decoding.py``. A Hugging
Face dataset is read by name with the same field names (``wmt16`` de-en: ``translation.de`` / ``translation.en``;
``xsum``: ``document`` / ``summary``). Every problem is a ``DataSourceError`` naming the file, the line and the fix:
files of different lengths (misaligned), an empty text, bytes that do not decode, a TSV line without exactly one
tab, a JSON line without the field.
"""

from __future__ import annotations

import json
from pathlib import Path

from gen_lightning.data.decoding import read_text
from gen_lightning.data.sources import DataSourceError, hub_column, local_path

Pairs = tuple[list[str], list[str]]  # sources, targets (aligned)
LOCAL = "a folder of SPLIT.SRC / SPLIT.TGT line files, SPLIT.tsv or SPLIT.jsonl files (each optionally .gz)"


def read_lines(path: Path, encoding: str = "utf-8") -> list[str]:
    """The lines of a text file (``\\n``, optionally ``\\r\\n``), without the final newline's empty line."""
    text = read_text(path, encoding, what="parallel text file")
    if text.endswith("\n"):
        text = text[:-1]
    # Not str.splitlines(): it also splits at U+2028, U+0085 and form feeds, which would misalign a corpus.
    return [line.removesuffix("\r") for line in text.split("\n")] if text else []


def _check_texts(texts: list[str], where: str, what: str) -> None:
    for i, text in enumerate(texts):
        if not text.strip():
            raise DataSourceError(
                f"{where}: the {what} on line {i + 1} is empty; every pair needs a non-empty source and target "
                "(remove the line from both files of the pair)"
            )


def _find(folder: Path, stem: str) -> Path | None:
    for name in (stem, f"{stem}.gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def _aligned(src: Path, tgt: Path, encoding: str) -> Pairs:
    sources, targets = read_lines(src, encoding), read_lines(tgt, encoding)
    if len(sources) != len(targets):
        raise DataSourceError(
            f"misaligned parallel files: {src} has {len(sources)} lines, {tgt} has {len(targets)}; line i of one "
            "must be the translation of line i of the other"
        )
    _check_texts(sources, str(src), "source")
    _check_texts(targets, str(tgt), "target")
    return sources, targets


def _tsv(path: Path, encoding: str) -> Pairs:
    sources, targets = [], []
    for i, line in enumerate(read_lines(path, encoding)):
        cells = line.split("\t")
        if len(cells) != 2:
            raise DataSourceError(f"{path} line {i + 1}: expected 'source<TAB>target', found {len(cells)} columns")
        sources.append(cells[0])
        targets.append(cells[1])
    _check_texts(sources, str(path), "source")
    _check_texts(targets, str(path), "target")
    return sources, targets


def field(row: dict, name: str, where: str):
    """``row[name]``, with dots reaching into nested objects (``translation.de``)."""
    value = row
    for part in name.split("."):
        if not isinstance(value, dict) or part not in value:
            keys = sorted(value) if isinstance(value, dict) else type(value).__name__
            raise DataSourceError(f"{where}: no field {name!r} (found {keys}); set data.source_field/target_field")
        value = value[part]
    return value


def _jsonl(path: Path, source_field: str, target_field: str, encoding: str) -> Pairs:
    sources, targets = [], []
    for i, line in enumerate(read_lines(path, encoding)):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataSourceError(f"{path} line {i + 1} is not JSON: {err}") from err
        sources.append(str(field(row, source_field, f"{path} line {i + 1}")))
        targets.append(str(field(row, target_field, f"{path} line {i + 1}")))
    _check_texts(sources, str(path), "source")
    _check_texts(targets, str(path), "target")
    return sources, targets


def read_folder_split(
    folder: str | Path,
    split: str,
    source: str,
    target: str,
    source_field: str,
    target_field: str,
    encoding: str = "utf-8",
) -> Pairs:
    """The pairs of one split of a folder: aligned line files, else a TSV, else a JSONL file."""
    folder = local_path(folder, LOCAL)
    if not folder.is_dir():
        raise DataSourceError(f"data.path={str(folder)!r} is a file: give {LOCAL}")
    src, tgt = _find(folder, f"{split}.{source}"), _find(folder, f"{split}.{target}")
    if src and tgt:
        return _aligned(src, tgt, encoding)
    if src or tgt:
        raise DataSourceError(
            f"{folder}: found {(src or tgt).name} but not its other side ({split}.{target if src else source})"
        )
    if tsv := _find(folder, f"{split}.tsv"):
        return _tsv(tsv, encoding)
    if jsonl := _find(folder, f"{split}.jsonl"):
        return _jsonl(jsonl, source_field, target_field, encoding)
    present = sorted(p.name for p in folder.iterdir() if p.is_file())
    raise DataSourceError(
        f"{folder} has no files for split '{split}': looked for {split}.{source} + {split}.{target}, {split}.tsv "
        f"and {split}.jsonl (each optionally .gz); found {present}. Name the file stem of each split with "
        "data.splits (e.g. data.splits.test=test_2016_flickr)"
    )


def hub_pairs(dataset, name: str, source_field: str, target_field: str) -> Pairs:
    """The pairs of a split of a Hugging Face dataset (nested fields dotted: ``translation.de``)."""
    dataset = dataset.flatten()  # nested fields become dotted columns: translation.de
    sources = [str(t) for t in hub_column(dataset, source_field, name, "source_field")]
    targets = [str(t) for t in hub_column(dataset, target_field, name, "target_field")]
    keep = [i for i in range(len(sources)) if sources[i].strip() and targets[i].strip()]  # hub sets have a few
    return [sources[i] for i in keep], [targets[i] for i in keep]
