"""One CUDA GPU: exact resume under deterministic CUDA, bf16 mixed precision, metrics on the GPU.

Skipped without CUDA (CI has no GPU); run on a GPU machine with ``pytest tests/test_gpu.py``.
"""

from __future__ import annotations

import json

import pytest
import torch
from conftest import tiny_overrides
from test_resume import FAMILIES, assert_same_weights, run

from gen_lightning.config import compose
from gen_lightning.run import train

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

# trainer=gpu is bf16-mixed; deterministic=true makes CUDA kernels (and cuBLAS, via the workspace setting that
# fit() adds) reproducible, which exact resume needs.
GPU = ["trainer=gpu", "trainer.deterministic=true"]


@pytest.mark.parametrize("model", ["vae", "ddpm", "dcgan", "gpt"])
def test_cuda_run_resumes_exactly(tmp_path, monkeypatch, model):
    extra = [*GPU, *FAMILIES.get(model, [])]
    full = run(tmp_path / "full", "checkpoint.every_n_train_steps=1000", *extra, model=model)
    again = run(tmp_path / "again", "checkpoint.every_n_train_steps=1000", *extra, model=model)
    last = {name: tmp_path / name / "checkpoints" / "last.ckpt" for name in ("full", "again", "cut")}
    assert_same_weights(last["full"], last["again"])  # deterministic CUDA: two runs, the same weights
    with pytest.raises(RuntimeError, match="simulated crash"):
        cut = ["checkpoint.every_n_train_steps=7", *extra]
        run(tmp_path / "cut", *cut, crash_at=14, monkeypatch=monkeypatch, model=model)
    monkeypatch.undo()
    resumed = run(tmp_path / "cut", "resume=true", model=model)
    assert resumed["global_step"] == full["global_step"] == again["global_step"]
    assert_same_weights(last["full"], last["cut"])
    assert [r["step"] for r in resumed["history"]] == [r["step"] for r in full["history"]]


def _gpt_val_loss(run_dir, shakespeare_path, *extra: str) -> dict:
    cfg = compose(
        tiny_overrides(
            run_dir,
            "data=text",
            f"data.path={shakespeare_path}",
            "data.block_size=64",
            "data.batch_size=32",
            "data.train_stride=1",
            "model.hidden_dim=128",
            "model.num_layers=2",
            "model.num_heads=4",
            "trainer.max_steps=400",
            "trainer.max_epochs=-1",
            "trainer.val_check_interval=200",
            "trainer.check_val_every_n_epoch=null",
            "trainer.limit_val_batches=50",
            *extra,
            model="gpt",
        )
    )
    return train.fit(cfg)["final"]


def test_bf16_mixed_trains_like_fp32(tmp_path, shakespeare_path):
    fp32 = _gpt_val_loss(tmp_path / "fp32", shakespeare_path, *GPU, "trainer.precision=32-true")
    bf16 = _gpt_val_loss(tmp_path / "bf16", shakespeare_path, *GPU, "trainer.precision=bf16-mixed")
    print(f"gpt 400 steps: val/loss fp32 {fp32['val/loss']:.4f}, bf16-mixed {bf16['val/loss']:.4f}")
    assert fp32["val/loss"] < 2.6 and bf16["val/loss"] < 2.6  # from ln(65) = 4.17 at the start
    assert abs(fp32["val/loss"] - bf16["val/loss"]) < 0.05


def test_image_metrics_on_cuda_repeat_and_agree_with_cpu(tmp_path):
    """The classifier-extractor metrics of one checkpoint: identical twice on CUDA, close to the CPU numbers
    (CUDA draws other samples from the same seeds, so only sampling noise separates them)."""
    from gen_lightning.commands.evaluate import evaluate_command

    steps = ["trainer.max_steps=500", "trainer.max_epochs=-1", "model.hidden_dim=256"]
    cfg = compose(tiny_overrides(tmp_path / "vae", *steps))
    train.fit(cfg)
    ckpt = tmp_path / "vae" / "checkpoints" / "last.ckpt"
    args = [f"ckpt={ckpt}", "metrics=classifier", "metrics.num_samples=1000"]
    cpu = evaluate_command([*args, "device=cpu"])["metrics"]
    gpu1 = evaluate_command([*args, "device=cuda"])["metrics"]
    gpu2 = evaluate_command([*args, "device=cuda"])["metrics"]
    print(json.dumps({"cpu": cpu, "cuda": gpu1}, indent=1))
    assert gpu1 == gpu2
    assert abs(gpu1["val/fid_clf"] - cpu["val/fid_clf"]) < 0.15 * cpu["val/fid_clf"]
    assert abs(gpu1["val/is_clf"] - cpu["val/is_clf"]) < 0.15 * cpu["val/is_clf"]
