"""Shared by the benchmark scripts that drive ``gen-lightning`` as a user does (one subprocess per command).

Every command runs with this worktree first on ``PYTHONPATH`` (its code wins over an installed copy), W&B and
the Hugging Face hub offline, and ``threads`` torch threads: on a shared 2-core machine two threads per process
run 4-10x slower than one once the load average passes the core count (measured: 1.1-3.1 s against 0.26-0.31 s
per DDIM step of 250 8x8 images at load ~5.7).
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MNIST = ROOT.parent / "shared" / "data" / "mnist10k"


def load_average() -> str:
    """``uptime``'s 1/5/15-minute load averages, e.g. ``4.21/4.30/4.02``."""
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


def command(*args: str) -> list[str]:
    """``gen-lightning ARGS`` through the current interpreter."""
    return [sys.executable, "-m", "gen_lightning.cli", *args]


def shown(cmd: list[str], threads: int) -> str:
    """The command as a user types it from the project root (to reproduce one row)."""
    return f"OMP_NUM_THREADS={threads} PYTHONPATH=. gen-lightning " + shlex.join(cmd[3:])


def run(cmd: list[str], threads: int | None, log: Path) -> float:
    """Run ``cmd`` from the project root, output to ``log``; returns its wall-clock seconds, raises on failure.
    ``threads``: OMP/MKL_NUM_THREADS; None leaves them unset, as on a new user's machine (the project chooses)."""
    knobs = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
    pinned = {} if threads is None else dict.fromkeys(knobs, str(threads))
    env = {
        **{k: v for k, v in os.environ.items() if k not in knobs},
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        **pinned,
        "WANDB_MODE": "offline",
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "PYTHONUNBUFFERED": "1",
    }
    log.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with log.open("w") as out:
        proc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        tail = log.read_text().splitlines()[-20:]
        raise RuntimeError(f"{shlex.join(cmd)} failed ({proc.returncode}); last lines of {log}:\n" + "\n".join(tail))
    return seconds


def mnist_parquet(out_dir: Path) -> Path | None:
    """The 10,000 MNIST test images as one parquet file under ``out_dir`` (written once), or None if the
    IDX files are not beside the project."""
    if not (MNIST / "t10k-images-idx3-ubyte.gz").is_file():
        return None
    target = out_dir / "mnist" / "train-00000-of-00001.parquet"
    if not target.is_file():
        sys.path.insert(0, str(ROOT / "tests"))  # not `tests.helpers`: site-packages may hold a `tests`
        from helpers import write_mnist_parquet

        write_mnist_parquet(MNIST, out_dir, n=10_000)
    return target
