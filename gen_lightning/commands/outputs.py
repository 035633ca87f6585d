"""Writers of generated texts by format, for ``gen-lightning sample ... format=NAME``.

A registry by dotted path: a family adds a format with one line here (its writer stays in its own folder and is
imported only when asked for), and ``sample.py`` has no branch per format. A writer takes the generated texts
and the output path and returns the files it wrote.

A format of one file per sample (``abc``, ``midi``) writes through ``write_each``: one sample that cannot be
written (a weakly trained model's tune that music21 cannot render) does not stop the others. It is named, with
the file kept in its place (the tune's ABC), and only a command that wrote no sample at all fails.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from gen_lightning.files import write_texts

TEXT_WRITERS = {
    "txt": ("gen_lightning.commands.outputs.write_txt", ".txt"),  # every sample, separated by '---' lines
    "abc": ("gen_lightning.music.render.write_abc_files", ".abc"),  # each sample's first tune, one file each
    "midi": ("gen_lightning.music.render.write_midi_files", ".mid"),  # the same tunes rendered by music21
}


def write_txt(texts: list[str], target: Path) -> list[Path]:
    return [write_texts(target, texts)]  # every sample, files.TEXT_SEPARATOR between them


def text_writer(fmt: str) -> tuple[Callable[[list[str], Path], list[Path]], str]:
    """The writer of ``fmt`` and its file suffix; an unknown format is a ValueError naming the known ones."""
    if fmt not in TEXT_WRITERS:
        raise ValueError(f"unknown format={fmt!r} for text samples; choose from {', '.join(TEXT_WRITERS)}")
    path, suffix = TEXT_WRITERS[fmt]
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name), suffix


def numbered(target: Path, i: int, count: int) -> Path:
    """``target`` itself for a single output, else ``<stem>_<i><suffix>``."""
    return target if count == 1 else target.with_name(f"{target.stem}_{i:02d}{target.suffix}")


def write_each(
    items: Sequence,
    target: Path,
    write_one: Callable[[object, Path], Path],
    what: str,
    keep: Callable[[object, Path], Path] | None = None,
) -> list[Path]:
    """Write ``items[i]`` to ``numbered(target, i)`` with ``write_one``, which raises a ValueError for an item it
    cannot write; such an item is named on stderr (and ``keep`` writes what it can of it: its source). Returns the
    files written; a ValueError when no item could be written."""
    written, failed = [], []
    for i, item in enumerate(items):
        path = numbered(target, i, len(items))
        try:
            written.append(write_one(item, path))
        except ValueError as err:
            kept = keep(item, path) if keep is not None else None
            reason = str(err).splitlines()[0].rstrip(":")
            failed.append(f"sample {i}: no {path.name} ({reason})" + (f"; kept as {kept.name}" if kept else ""))
    if failed and written:
        print(f"wrote {len(written)} of {len(items)} samples as {what}; not written:", file=sys.stderr)
        print("\n".join(f"  {line}" for line in failed), file=sys.stderr)
    if not written:
        kept = " (each kept as its source beside it)" if keep is not None else ""
        raise ValueError(f"none of the {len(items)} samples could be written as {what}{kept}; {failed[0]}")
    return written
