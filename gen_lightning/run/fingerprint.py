"""The local data files a run reads, by size and content hash, so that a resume cannot continue on other data.

A text rewritten in place (the same characters in another order) keeps its vocabulary, so the model and the
checkpoint still fit, and the run would continue on another data stream without a word. At the start of a run the
files under every ``path`` of its data config (``data.path``, ``data.images.path``, ...) are recorded in
``RUN_DIR/data_fingerprint.json``: relative name, size and sha256 (files larger than ``WHOLE`` bytes: their size,
their first and last MiB). A resume recomputes it and refuses, naming the files, when anything differs
(``verified``). Data that comes from an installed package or a hub has no local files here and is not fingerprinted.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

WHOLE = 256 * 2**20  # hash files up to this size whole; larger ones by size, head and tail
EDGE = 2**20


def local_paths(data_cfg: DictConfig) -> list[Path]:
    """Every existing file or folder named by a ``path`` key anywhere in the data config."""

    def walk(node) -> Iterable[Path]:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "path" and isinstance(value, str) and Path(value).exists():
                    yield Path(value)
                else:
                    yield from walk(value)

    return sorted(set(walk(OmegaConf.to_container(data_cfg, resolve=True))))


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    size = path.stat().st_size
    with open(path, "rb") as f:
        if size <= WHOLE:
            for block in iter(lambda: f.read(EDGE), b""):
                h.update(block)
        else:
            h.update(f.read(EDGE))
            f.seek(size - EDGE)
            h.update(f.read(EDGE))
    return h.hexdigest()


def fingerprint(data_cfg: DictConfig) -> dict[str, dict]:
    """``{file: {"size": ..., "sha256": ...}}`` for every file under the data config's local paths."""
    out = {}
    for root in local_paths(data_cfg):
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for f in files:
            if any(part.startswith(".") for part in f.relative_to(root.parent).parts):
                continue  # hidden files (caches, .DS_Store) are not data
            out[str(f)] = {"size": f.stat().st_size, "sha256": file_digest(f)}
    return out


def verified(data_cfg: DictConfig, recorded: Path | None = None) -> dict[str, dict]:
    """The fingerprint of the data now; with ``recorded`` (a resume's ``data_fingerprint.json``), a resume whose
    local data differ from those the run started with is refused (see the file docstring)."""
    now = fingerprint(data_cfg)
    if recorded is None or not recorded.is_file():
        return now  # a new run, or one made before fingerprints were recorded
    before = json.loads(recorded.read_text(encoding="utf-8"))
    changed = sorted(f for f in before.keys() & now.keys() if before[f] != now[f])
    gone, new = sorted(before.keys() - now.keys()), sorted(now.keys() - before.keys())
    if changed or gone or new:
        parts = [(label, names) for label, names in (("changed", changed), ("missing", gone), ("new", new)) if names]
        detail = "; ".join(
            f"{label}: {', '.join(names[:5])}{' ...' if len(names) > 5 else ''}" for label, names in parts
        )
        raise ValueError(
            f"the training data differ from those this run started with ({detail}; {recorded.name} has the sizes "
            "and hashes it recorded): resuming would continue on other data. Restore the data, or start a new "
            "run_dir (init_from=CHECKPOINT keeps the weights)"
        )
    return now
