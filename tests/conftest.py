"""Shared fixtures: an offline environment, the real data beside the project, tiny run configs (tests/presets/)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import yaml

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
def _isolated_caches(tmp_path_factory):
    """The session's own caches. A MonkeyPatch of its own: a test's ``monkeypatch.undo()`` must not send the rest of
    the test to the user's real cache (a classifier trained there by another torch once made SRGAN's resumed run use
    another perceptual loss than the run it continued)."""
    cache = tmp_path_factory.getbasetemp() / "cache"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GEN_LIGHTNING_CACHE", str(cache / "gen_lightning"))
        patch.setenv("HF_DATASETS_CACHE", str(cache / "hf_datasets"))
        yield


# What each data set of SHARED_DATA is and where to get it, for the reason of a test skipped without it.
DATA_SOURCES = {
    "mnist10k": "the MNIST test set as IDX files (t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz; e.g. from "
    "https://ossci-datasets.s3.amazonaws.com/mnist/, torchvision's mirror)",
    "tinyshakespeare": "tiny Shakespeare, input.txt of karpathy/char-rnn (data/tinyshakespeare/input.txt)",
    "image_coco": "the Image COCO captions of the text-GAN benchmarks, train.txt and test.txt (geek-ai/Texygen, "
    "data/image_coco.txt and data/testdata/test_coco.txt)",
}


def shared_data(folder: str, *files: str) -> Path:
    """``SHARED_DATA/folder`` when it holds ``files``; otherwise the test is skipped with a reason that names what
    is missing, where it was looked for and how to get it (``pytest -rs`` shows the reasons in the summary)."""
    path = SHARED_DATA / folder
    missing = [name for name in files if not (path / name).is_file()]
    if missing:
        pytest.skip(
            f"needs real data: {', '.join(missing)} not found in {path}. Put {DATA_SOURCES.get(folder, folder)} "
            f"there (../shared/data/{folder}/ beside the project), or set GEN_LIGHTNING_TEST_DATA to a folder holding "
            f"{folder}/"
        )
    return path


@pytest.fixture
def mnist_dir() -> Path:
    return shared_data("mnist10k", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


@pytest.fixture
def shakespeare_path() -> Path:
    return shared_data("tinyshakespeare", "input.txt") / "input.txt"


# Tiny presets: tests/presets/<model>.yaml, a YAML list of overrides that shrink conf/model/<model>.yaml (and pick
# small data where the default does not fit) so that a run takes seconds. Every model config has one
# (tests/test_contract.py checks it); a model that is already tiny has an empty list, `[]`.
PRESETS = Path(__file__).resolve().parent / "presets"


def preset(model: str) -> list[str]:
    """The overrides of ``tests/presets/<model>.yaml``."""
    path = PRESETS / f"{model}.yaml"
    if not path.is_file():
        raise FileNotFoundError(
            f"no tiny preset for model={model}: add {path.relative_to(PRESETS.parents[1])}, a YAML list of "
            "overrides that make it train in seconds (an empty list `[]` keeps the model's own sizes)"
        )
    overrides = yaml.safe_load(path.read_text())
    if not isinstance(overrides, list) or not all(isinstance(o, str) and "=" in o for o in overrides):
        raise ValueError(f"{path} must be a YAML list of key=value overrides, got {overrides!r}")
    return overrides


def tiny_overrides(run_dir: Path, *extra: str, model: str = "vae") -> list[str]:
    """A fast run: the model's tiny preset (the VAE on the embedded digits by default), no metrics, no progress
    bar; ``extra`` overrides come last."""
    return [
        f"run_dir={run_dir}",
        f"model={model}",
        "logger=none",
        "metrics=none",
        *preset(model),
        "trainer.enable_progress_bar=false",
        "trainer.log_every_n_steps=1",
        *extra,
    ]
