"""Exact resume: an interrupted and resumed run equals the uninterrupted one, weights and metrics."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import lightning as L
import pytest
import torch
from conftest import tiny_overrides
from helpers import module_weights

from gen_lightning.config import compose
from gen_lightning.run import checkpoint as ckpt_io
from gen_lightning.run import train
from gen_lightning.run.resume_policy import resolve_for_resume
from gen_lightning.run_dir import RunDirError

# digits: 1,527 training images / batch 64 = 23 steps per epoch; 30 steps cross an epoch and a validation.
TOTAL = 30


class Crash(L.Callback):
    """Dies like a killed process one step after the checkpoint of step ``at`` was written."""

    def __init__(self, at: int) -> None:
        self.at = at

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step > self.at:
            raise RuntimeError("simulated crash")


def run(run_dir, *extra, crash_at=None, monkeypatch=None, model="vae"):
    cfg = compose(tiny_overrides(run_dir, f"trainer.max_steps={TOTAL}", "trainer.max_epochs=-1", *extra, model=model))
    if cfg.resume:
        cfg, _ = resolve_for_resume(cfg, [])
    if crash_at is not None:
        original = train.build_callbacks
        monkeypatch.setattr(train, "build_callbacks", lambda *a: [Crash(crash_at), *original(*a)])
    return train.fit(cfg)


def assert_same_weights(a, b):
    wa, wb = module_weights(a), module_weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), f"weights differ after resume: {k}"


@pytest.mark.parametrize("interrupt_at", [12, 23], ids=["mid-epoch", "epoch-end"])
def test_resumed_run_equals_uninterrupted_run(tmp_path, monkeypatch, interrupt_at):
    full = run(tmp_path / "full", "checkpoint.every_n_train_steps=1000")

    with pytest.raises(RuntimeError, match="simulated crash"):
        run(
            tmp_path / "cut",
            f"checkpoint.every_n_train_steps={interrupt_at}",
            crash_at=interrupt_at,
            monkeypatch=monkeypatch,
        )
    monkeypatch.undo()
    cut_status = json.loads((tmp_path / "cut" / "metrics.json").read_text())
    assert cut_status["status"] == "failed" and "simulated crash" in cut_status["error"]
    resumed = run(tmp_path / "cut", "resume=true")

    assert resumed["global_step"] == full["global_step"] == TOTAL
    assert_same_weights(tmp_path / "full" / "checkpoints" / "last.ckpt", tmp_path / "cut" / "checkpoints" / "last.ckpt")
    # Same validation numbers at the same steps, the pre-interruption history carried over by the checkpoint.
    assert [r["step"] for r in resumed["history"]] == [r["step"] for r in full["history"]]
    for a, b in zip(resumed["history"], full["history"]):
        assert a["val/elbo"] == b["val/elbo"]
    assert resumed["final"] == full["final"]


class CrashInValidation(L.Callback):
    """Dies like a killed process inside the first validation at or after step ``at``."""

    def __init__(self, at: int) -> None:
        self.at = at

    def on_validation_start(self, trainer, pl_module):
        if trainer.global_step >= self.at:
            raise RuntimeError("simulated crash")


def test_a_crash_in_the_final_validation_resumes_into_it(tmp_path, monkeypatch):
    """The final validation (step 30, inside the second epoch) is not skipped by a resume: last.ckpt is never
    written by the batch just before it, so the run resumes from the epoch-end validation at step 23."""
    full = run(tmp_path / "full", "checkpoint.every_n_train_steps=1000")
    assert [r["step"] for r in full["history"]] == [23, TOTAL]
    original = train.build_callbacks
    monkeypatch.setattr(train, "build_callbacks", lambda *a: [CrashInValidation(TOTAL), *original(*a)])
    with pytest.raises(RuntimeError, match="simulated crash"):
        run(tmp_path / "cut", "checkpoint.every_n_train_steps=30")  # a periodic save would fall on step 30
    monkeypatch.undo()
    resumed = run(tmp_path / "cut", "resume=true")
    assert [r["step"] for r in resumed["history"]] == [23, TOTAL]
    assert resumed["final"] == full["final"]
    assert_same_weights(tmp_path / "full" / "checkpoints" / "last.ckpt", tmp_path / "cut" / "checkpoints" / "last.ckpt")


# One model of every other family: text runs validate every 10 steps (26 steps per epoch with the shrunk text).
TEXT_VAL = ["trainer.val_check_interval=10", "trainer.check_val_every_n_epoch=null", "trainer.limit_val_batches=2"]
# Image-to-image models validate every 5 batches (digits pairs, 2 optimizer steps per batch for the GANs).
IMG2IMG_VAL = ["trainer.val_check_interval=5", "trainer.check_val_every_n_epoch=null", "trainer.limit_val_batches=2"]
FAMILIES = {"ddpm": [], "dcgan": [], "wgan_gp": [], "gpt": TEXT_VAL, "lstm": TEXT_VAL, "bert": TEXT_VAL,
            "srgan": IMG2IMG_VAL, "pix2pix": IMG2IMG_VAL, "cyclegan": IMG2IMG_VAL}  # fmt: skip
# Sequence-to-sequence models on length-bucketed batches (520 per epoch): the batch sampler skips on resume.
FAMILIES |= {"transformer_seq2seq": TEXT_VAL, "rnn_seq2seq": TEXT_VAL}
FAMILIES |= {"seqgan": TEXT_VAL, "relgan": TEXT_VAL}  # text GANs: across the pre-training/adversarial switch


SLOW_RESUME = ("pix2pix",)  # its steps are SRGAN's and CycleGAN's, which stay in the fast suite


@pytest.mark.parametrize(
    "model", [pytest.param(m, marks=pytest.mark.slow) if m in SLOW_RESUME else m for m in sorted(FAMILIES)]
)
def test_every_family_resumes_exactly(tmp_path, monkeypatch, model):
    extra = FAMILIES[model]
    full = run(tmp_path / "full", "checkpoint.every_n_train_steps=1000", *extra, model=model)
    with pytest.raises(RuntimeError, match="simulated crash"):
        run(
            tmp_path / "cut",
            "checkpoint.every_n_train_steps=7",
            *extra,
            crash_at=14,
            monkeypatch=monkeypatch,
            model=model,
        )
    monkeypatch.undo()
    resumed = run(tmp_path / "cut", "resume=true", model=model)
    assert resumed["global_step"] == full["global_step"]
    assert_same_weights(tmp_path / "full" / "checkpoints" / "last.ckpt", tmp_path / "cut" / "checkpoints" / "last.ckpt")
    assert resumed["history"] == [{**r, "time_s": a["time_s"]} for r, a in zip(full["history"], resumed["history"])]


def test_resume_refuses_a_used_run_dir_without_resume(tmp_path):
    run(tmp_path / "r")
    before = (tmp_path / "r" / "checkpoints" / "last.ckpt").read_bytes()
    with pytest.raises(RunDirError, match="already holds a run"):
        run(tmp_path / "r")
    assert (tmp_path / "r" / "checkpoints" / "last.ckpt").read_bytes() == before  # nothing overwritten


def test_resume_without_a_run_fails_clearly(tmp_path):
    with pytest.raises(RunDirError, match="nothing to resume|does not exist"):
        run(tmp_path / "empty", "resume=true")


def test_corrupt_and_truncated_checkpoints_are_named(tmp_path):
    run(tmp_path / "r")
    last = tmp_path / "r" / "checkpoints" / "last.ckpt"
    data = last.read_bytes()
    last.write_bytes(data[: len(data) // 2])
    with pytest.raises(ckpt_io.CheckpointError, match=r"last\.ckpt.*corrupt or truncated"):
        ckpt_io.load_module(last)
    (tmp_path / "r" / "checkpoints" / "best.ckpt").unlink()  # with it, the resume falls back to it (test_trust.py)
    with pytest.raises(ckpt_io.CheckpointError, match="corrupt or truncated"):
        run(tmp_path / "r", "resume=true")
    last.write_bytes(b"not a checkpoint at all")
    with pytest.raises(ckpt_io.CheckpointError, match=str(last.name)):
        ckpt_io.load_module(last)


def test_checkpoint_of_another_model_is_refused(tmp_path):
    run(tmp_path / "mlp")
    conv = compose(tiny_overrides(tmp_path / "conv", "model=conv_vae"))
    from hydra.utils import instantiate

    dm = instantiate(conv.data)
    dm.setup("fit")
    module = instantiate(conv.model, **dm.model_kwargs())
    with pytest.raises(ckpt_io.CheckpointError, match=r"last\.ckpt.*does not match"):
        path = tmp_path / "mlp" / "checkpoints" / "last.ckpt"
        ckpt_io.check_compatible(ckpt_io.read(path), module, path)


def test_killed_while_saving_never_leaves_a_broken_last_ckpt(tmp_path):
    """SIGKILL a run that checkpoints every step, at several moments; last.ckpt must always load."""
    run_dir = tmp_path / "killed"
    cmd = [
        sys.executable,
        "-m",
        "gen_lightning.cli",
        "fit",
        *tiny_overrides(
            run_dir,
            "trainer.max_steps=100000",
            "trainer.max_epochs=-1",
            "checkpoint.every_n_train_steps=1",
            "model.hidden_dim=512",
            "model.num_layers=4",
        ),
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    last = run_dir / "checkpoints" / "last.ckpt"
    for attempt in range(2):
        proc = subprocess.Popen(
            cmd if attempt == 0 else [*cmd, "resume=true"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.time() + 120
        start_mtime = last.stat().st_mtime_ns if last.exists() else 0
        while time.time() < deadline and not (last.exists() and last.stat().st_mtime_ns != start_mtime):
            time.sleep(0.05)
        time.sleep(0.3 + 0.37 * attempt)  # land somewhere inside the save loop
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert last.exists()
        ckpt_io.load_module(last)  # raises CheckpointError if the file were partial
