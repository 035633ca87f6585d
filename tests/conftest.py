"""Shared fixtures: an offline environment, the real data beside the project, tiny run configs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

# One thread per process: the models are tiny, and several test processes (DDP) share 2 cores.
os.environ.setdefault("OMP_NUM_THREADS", "1")
torch.set_num_threads(1)

# Tests never touch the network: W&B offline, Hugging Face hub offline.
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(autouse=True)
def _isolated_caches(tmp_path_factory, monkeypatch):
    cache = tmp_path_factory.getbasetemp() / "cache"
    monkeypatch.setenv("GEN_LIGHTNING_CACHE", str(cache / "gen_lightning"))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(cache / "hf_datasets"))


@pytest.fixture
def mnist_dir() -> Path:
    path = SHARED_DATA / "mnist10k"
    if not (path / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"real MNIST images not found at {path}")
    return path


@pytest.fixture
def shakespeare_path() -> Path:
    path = SHARED_DATA / "tinyshakespeare" / "input.txt"
    if not path.is_file():
        pytest.skip(f"tiny Shakespeare not found at {path}")
    return path


def tiny_overrides(run_dir: Path, *extra: str) -> list[str]:
    """A fast run: the embedded digits, a small VAE, no metrics, no progress bar."""
    return [
        f"run_dir={run_dir}",
        "logger=none",
        "metrics=none",
        "model.hidden_dim=32",
        "model.iw_samples=4",
        "trainer.enable_progress_bar=false",
        "trainer.log_every_n_steps=1",
        *extra,
    ]
