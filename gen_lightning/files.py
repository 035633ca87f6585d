"""Files written whole or not at all: a temporary name in the target's own folder, flushed to disk, then renamed.

``os.replace`` within one folder is atomic on POSIX file systems, so a reader (or a resume after kill -9 or a full
disk) sees the previous version or the new one, never half of either; a rename across file systems (what a
temporary file in ``$TMPDIR`` would need) is a copy that truncates the target first, so the temporary file always
lives beside its target. A failed write removes its temporary file and leaves the target as it was.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

TMP_SUFFIX = ".tmp"


def temporary_name(path: Path) -> Path:
    """``<name>.<pid>.tmp`` beside ``path``: concurrent writers never share one."""
    return path.with_name(f"{path.name}.{os.getpid()}{TMP_SUFFIX}")


@contextlib.contextmanager
def replacing(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` to write; on success it is synced and renamed onto ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(path)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    _sync_folder(path.parent)


def _sync_folder(folder: Path) -> None:
    """Make the rename itself durable (a directory fsync; not every file system allows it)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def file_sha256(path: str | Path) -> str:
    """The SHA-256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_with(path: str | Path, writer: Callable[[Path], object]) -> Path:
    """``writer(tmp)`` writes the content; the result replaces ``path`` atomically."""
    with replacing(path) as tmp:
        writer(tmp)
    return Path(path)


def write_text(path: str | Path, text: str) -> Path:
    return write_with(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


TEXT_SEPARATOR = "\n\n---\n\n"  # between two text samples in one file: a line "---" between blank lines


def write_texts(path: str | Path, texts: list[str]) -> Path:
    """Text samples to one UTF-8 file, ``TEXT_SEPARATOR`` between them (``read_text().split(TEXT_SEPARATOR)``)."""
    return write_text(path, TEXT_SEPARATOR.join(texts))


def write_json(path: str | Path, data: dict) -> Path:
    return write_text(path, json.dumps(data, indent=2, sort_keys=True, default=str))


def save_torch(obj: object, path: str | Path) -> Path:
    """``torch.save`` through a temporary file beside ``path`` (``torch_save``)."""
    return write_with(path, lambda tmp: torch_save(obj, tmp))


def torch_save(obj: object, path: Path) -> None:
    """``torch.save`` to ``path`` whose failed write is its ``OSError`` (a full disk, a file-size limit: one line
    for the user). Given a path, torch's own writer drops the errno and raises "unexpected pos"; through a Python
    file the ``OSError`` is that error's context, raised here as itself."""
    import torch

    with open(path, "wb") as f:
        try:
            torch.save(obj, f)
        except RuntimeError as err:
            if isinstance(err.__context__, OSError):
                raise err.__context__ from None
            raise


def append_jsonl(path: str | Path, entry: dict) -> None:
    """Append one JSON line (a log that only grows: resumes, trials, evaluations), flushed to disk."""
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(entry, default=str) + "\n")
        f.flush()
        os.fsync(f.fileno())


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Delete the temporary files that writers killed mid-write left in ``folder`` (checked at a resume)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    stale = [p for p in folder.iterdir() if p.is_file() and p.name.endswith(TMP_SUFFIX)]
    for p in stale:
        p.unlink(missing_ok=True)
    return stale
