"""Writers of generated texts by format, for ``gen-lightning sample ... format=NAME``.

A registry by dotted path: a family adds a format with one line here (its writer stays in its own folder and is
imported only when asked for), and ``sample.py`` has no branch per format. A writer takes the generated texts
and the output path and returns the files it wrote.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path

TEXT_WRITERS = {
    "txt": ("gen_lightning.commands.outputs.write_txt", ".txt"),  # every sample, separated by '---' lines
    "abc": ("gen_lightning.music.render.write_abc_files", ".abc"),  # each sample's first tune, one file each
    "midi": ("gen_lightning.music.render.write_midi_files", ".mid"),  # the same tunes rendered by music21
}


def write_txt(texts: list[str], target: Path) -> list[Path]:
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("\n\n---\n\n".join(texts), encoding="utf-8")
    return [target]


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
