"""Where pairs of texts (a source and its target) come from: aligned line files, TSV, JSONL, or the hub.

A local folder holds one set of files per split, named as WMT and Multi30k ship them:

- aligned line files ``SPLIT.SRC`` and ``SPLIT.TGT`` (e.g. ``train.de`` / ``train.en``), line i of one the
  translation of line i of the other;
- or ``SPLIT.tsv``: ``source<TAB>target`` per line;
- or ``SPLIT.jsonl``: one JSON object per line, the texts under named fields (``source_field`` / ``target_field``,
  dotted for nested ones: ``translation.de``).

Each may be gzip-compressed (``.gz``). A Hugging Face dataset is read by name with the same field names
(``wmt16`` de-en: ``translation.de`` / ``translation.en``; ``xsum``: ``document`` / ``summary``). Every problem is
an error naming the file, the line and the fix: files of different lengths (misaligned), an empty text, bytes
that are not UTF-8, a TSV line without exactly one tab, a JSON line without the field.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from gen_lightning.data.sources import DataSourceError, load_hub

Pairs = tuple[list[str], list[str]]  # sources, targets (aligned)


def _open_text(path: Path) -> str:
    data = path.read_bytes()
    if path.suffix == ".gz":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as err:
            raise DataSourceError(f"{path} is not a readable gzip file ({err}); decompress or re-create it") from err
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise DataSourceError(
            f"{path} is not UTF-8 text: line {line}, byte {err.start} ({err.reason}). Re-encode it as UTF-8, "
            f"e.g. iconv -f latin1 -t utf-8 {path.name}"
        ) from err


def read_lines(path: Path) -> list[str]:
    """The lines of a text file (``\\n``, optionally ``\\r\\n``), without the final newline's empty line."""
    text = _open_text(path)
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


def _aligned(src: Path, tgt: Path) -> Pairs:
    sources, targets = read_lines(src), read_lines(tgt)
    if len(sources) != len(targets):
        raise DataSourceError(
            f"misaligned parallel files: {src} has {len(sources)} lines, {tgt} has {len(targets)}; line i of one "
            "must be the translation of line i of the other"
        )
    _check_texts(sources, str(src), "source")
    _check_texts(targets, str(tgt), "target")
    return sources, targets


def _tsv(path: Path) -> Pairs:
    sources, targets = [], []
    for i, line in enumerate(read_lines(path)):
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


def _jsonl(path: Path, source_field: str, target_field: str) -> Pairs:
    sources, targets = [], []
    for i, line in enumerate(read_lines(path)):
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


def read_folder_split(folder: str | Path, split: str, source: str, target: str, source_field: str, target_field: str):
    """The pairs of one split of a folder: aligned line files, else a TSV, else a JSONL file."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise DataSourceError(f"data.path={folder} is not a folder of SPLIT.{source}/SPLIT.{target} files")
    src, tgt = _find(folder, f"{split}.{source}"), _find(folder, f"{split}.{target}")
    if src and tgt:
        return _aligned(src, tgt)
    if src or tgt:
        raise DataSourceError(
            f"{folder}: found {(src or tgt).name} but not its other side ({split}.{target if src else source})"
        )
    if tsv := _find(folder, f"{split}.tsv"):
        return _tsv(tsv)
    if jsonl := _find(folder, f"{split}.jsonl"):
        return _jsonl(jsonl, source_field, target_field)
    present = sorted(p.name for p in folder.iterdir() if p.is_file())
    raise DataSourceError(
        f"{folder} has no files for split '{split}': looked for {split}.{source} + {split}.{target}, {split}.tsv "
        f"and {split}.jsonl (each optionally .gz); found {present}. Name the file stem of each split with "
        "data.splits (e.g. data.splits.test=test_2016_flickr)"
    )


def read_hub_split(name: str, split: str, source_field: str, target_field: str, **kwargs) -> Pairs:
    """The pairs of one split of a Hugging Face dataset (offline: an error saying how to get the data)."""
    dataset = load_hub(name, split, **kwargs).flatten()  # nested fields become dotted columns: translation.de
    for name_ in (source_field, target_field):
        if name_ not in dataset.column_names:
            raise DataSourceError(
                f"hub dataset '{name}' [{split}] has no field {name_!r}; its fields are {dataset.column_names} "
                "(set data.source_field / data.target_field)"
            )
    sources, targets = [str(t) for t in dataset[source_field]], [str(t) for t in dataset[target_field]]
    keep = [i for i in range(len(sources)) if sources[i].strip() and targets[i].strip()]  # hub sets have a few
    return [sources[i] for i in keep], [targets[i] for i in keep]
