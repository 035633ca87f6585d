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

# The real data beside the project root (../shared/data), or where GEN_LIGHTNING_TEST_DATA points.
SHARED_DATA = Path(os.environ.get("GEN_LIGHTNING_TEST_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")


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


TEXT_DATA = ["data=text_embedded", "data.block_size=16", "data.batch_size=8", "data.train_stride=2000"]
# The embedded Essen regions (music21), texts cut to 48 characters.
CLASSIFICATION_DATA = ["data=text_classification", "data.max_length=48", "data.batch_size=8"]

# Per model: smaller networks than the presets (and small text windows), so that every test run takes seconds.
SHRINK = {
    "vae": ["model.hidden_dim=32", "model.iw_samples=4"],
    "conv_vae": ["model.hidden_dim=8", "model.iw_samples=4"],
    "ddpm": [
        "model.hidden_dim=16",
        "model.channel_mult=[1,2]",
        "model.num_res_blocks=1",
        "model.attention_resolutions=[4]",
        "model.num_timesteps=100",
        "model.sample_steps=4",
        "model.sample_time_batch=0",
    ],
    "dcgan": ["model.hidden_dim=16"],
    "wgan_gp": ["model.hidden_dim=16"],
    "sngan": ["model.hidden_dim=16"],
    "lstm": [*TEXT_DATA, "model.hidden_dim=32"],
    "gru": [*TEXT_DATA, "model.hidden_dim=32"],
    "gpt": [*TEXT_DATA, "model.hidden_dim=32", "model.num_layers=1", "model.num_heads=2"],
    "bert": [*TEXT_DATA, "model.hidden_dim=32", "model.num_layers=1", "model.num_heads=2"],
    **{
        f"{body}_classifier": [*CLASSIFICATION_DATA, "model.hidden_dim=32", "model.num_layers=1", "model.num_heads=2"]
        for body in ("bert", "gpt", "lstm", "gru")
    },
}


def tiny_overrides(run_dir: Path, *extra: str, model: str = "vae") -> list[str]:
    """A fast run: a shrunken model (the VAE on the embedded digits by default), no metrics, no progress bar."""
    return [
        f"run_dir={run_dir}",
        f"model={model}",
        "logger=none",
        "metrics=none",
        *SHRINK.get(model, []),
        "trainer.enable_progress_bar=false",
        "trainer.log_every_n_steps=1",
        *extra,
    ]
