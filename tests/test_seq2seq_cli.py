"""Sequence-to-sequence models through the command line: 2-process DDP equals one process, sample, evaluate."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import lightning as L
import pytest
import torch
from conftest import tiny_overrides
from hydra.utils import instantiate
from omegaconf import OmegaConf

from gen_lightning import cli
from gen_lightning.data.text.docstrings import stdlib_summaries
from gen_lightning.data.text.tokenizers import from_config
from gen_lightning.metrics.text import TextGenerationMetrics
from gen_lightning.run.checkpoint import load_module

PROTOCOL = {"num_items": 24, "batch_size": 8, "metrics": ["bleu", "chrf", "rougeL"]}


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory):
    """A tiny Transformer on the embedded code summaries, 2 processes (gloo), scored by text_generation."""
    run_dir = tmp_path_factory.mktemp("seq2seq") / "ddp"
    overrides = tiny_overrides(
        run_dir,
        *("trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2", "trainer.strategy=ddp"),
        *("trainer.max_steps=12", "trainer.max_epochs=-1", "trainer.val_check_interval=6"),
        "trainer.check_val_every_n_epoch=null",
        "metrics=text_generation",
        *(f"metrics.{k}={v}" for k, v in PROTOCOL.items()),
        model="transformer_seq2seq",
    )
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "gen_lightning.cli", "fit", *[o for o in overrides if o != "metrics=none"]]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return run_dir


def test_two_processes_give_the_metrics_of_one(ddp_run):
    summary = json.loads((ddp_run / "metrics.json").read_text())
    assert summary["status"] == "completed" and summary["global_step"] == 12
    assert summary["protocol"]["world_size"] == 2 and summary["protocol"]["pairs"] == 24
    assert "nrefs:1|case:mixed|eff:no|tok:13a" in summary["protocol"]["bleu_signature"]
    # The checkpoint carries the trained subword tokenizer as a plain hyperparameter (weights_only loads it).
    hparams = torch.load(ddp_run / "checkpoints" / "last.ckpt", weights_only=True)["hyper_parameters"]
    tokenizer = from_config(hparams["tokenizer"])
    assert hparams["tokenizer"]["kind"] == "subword" and tokenizer.decode(tokenizer.encode("return x")) == "return x"
    module = load_module(ddp_run / "checkpoints" / "last.ckpt")
    dm = instantiate(OmegaConf.load(ddp_run / "config.yaml").data)
    dm.setup("fit")
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False)
    single = trainer.validate(module, datamodule=dm, verbose=False)[0]
    # val/loss is a token-weighted mean over the whole validation split: equal only if each pair counted once.
    assert single["val/loss"] == pytest.approx(summary["final"]["val/loss"], rel=1e-5)
    alone = TextGenerationMetrics(**PROTOCOL).evaluate(module, dm)["metrics"]
    for key in ("val/bleu", "val/chrf", "val/rougeL"):
        assert alone[key] == pytest.approx(summary["final"][key], abs=1e-9), key


def test_sample_a_source_and_a_file_and_evaluate_the_test_split(ddp_run, tmp_path, capsys):
    ckpt = ddp_run / "checkpoints" / "last.ckpt"
    cli.main(["sample", f"ckpt={ckpt}", "source=def add(a, b):\n    return a + b", "beam=3"])
    printed = capsys.readouterr().out.strip().splitlines()
    assert printed and isinstance(printed[0], str)
    sources = tmp_path / "functions.txt"
    sources.write_text("def one():\n    return 1\ndef two(x):\n    return 2 * x\n", encoding="utf-8")
    out = tmp_path / "summaries.txt"
    cli.main(["sample", f"ckpt={ckpt}", f"input={sources}", f"out={out}", "beam=2"])
    assert len(out.read_text(encoding="utf-8").splitlines()) == 4  # one output a line of the input
    with pytest.raises(SystemExit, match=r"takes the options .*beam.*not \['beams'\]"):
        cli.main(["sample", f"ckpt={ckpt}", "source=def f(): pass", "beams=3"])
    cli.main(["evaluate", f"ckpt={ckpt}", "split=test", "metrics.num_items=null"])
    hypotheses = (ckpt.parent / "last.test.outputs.txt").read_text(encoding="utf-8").splitlines()
    result = json.loads((ckpt.parent / "last.test.eval.json").read_text())
    assert len(hypotheses) == result["protocol"]["pairs"] == len(stdlib_summaries()["test"][0])  # the whole split
