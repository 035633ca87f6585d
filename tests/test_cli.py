"""The `gen-lightning` command line, run as a user runs it: fit, sample, multirun, DDP, bad input."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import lightning as L
import pytest
import torch
from conftest import tiny_overrides
from hydra.utils import instantiate
from omegaconf import OmegaConf
from PIL import Image

from gen_lightning import cli
from gen_lightning.run.checkpoint import load_module

CMD = [sys.executable, "-m", "gen_lightning.cli"]


def gen_lightning(*args, timeout=600, cwd=None):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run([*CMD, *args], capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """One short run through the command line, with W&B (offline) as a user gets it by default."""
    run_dir = tmp_path_factory.mktemp("cli") / "run"
    overrides = [o for o in tiny_overrides(run_dir, "trainer.max_epochs=2") if o != "logger=none"]
    proc = gen_lightning("fit", *overrides)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run_dir.parent / "fit.stdout").write_text(proc.stdout)
    return run_dir


def test_fit_writes_a_complete_run_directory(trained_run):
    d = trained_run
    for path in ("config.yaml", "checkpoints/last.ckpt", "checkpoints/best.ckpt", "metrics.json", "wandb_run_id.txt"):
        assert (d / path).is_file(), path
    assert list((d / "wandb").glob("offline-run-*"))
    assert OmegaConf.load(d / "config.yaml").model._target_ == "gen_lightning.vae.module.VAE"
    pngs = sorted((d / "samples" / "samples").glob("*.png"))
    assert len(pngs) == 2  # one grid per validation epoch
    assert {p.name for p in (d / "samples").iterdir()} == {"samples", "reconstructions", "interpolations"}
    summary = json.loads((d / "metrics.json").read_text())
    assert summary["status"] == "completed" and summary["epochs"] == 2
    assert {"val/elbo", "val/recon", "val/kl", "val/nll_iw"} <= set(summary["final"])
    assert summary["best"]["val/elbo"]["value"] == max(r["val/elbo"] for r in summary["history"])
    # Ranked by the directions the VAE declares; val/kl is a diagnostic (final value, no best).
    assert summary["directions"] == {"val/elbo": "max", "val/nll_iw": "min", "val/recon": "min"}
    assert set(summary["best"]) == {"val/elbo", "val/nll_iw", "val/recon"}


def test_fit_says_where_the_run_is_and_keeps_its_log(trained_run):
    out = (trained_run.parent / "fit.stdout").read_text()
    shown = [("last checkpoint", "checkpoints/last.ckpt"), ("best checkpoint", "checkpoints/best.ckpt"),
             ("metrics", "metrics.json"), ("log", "train.log"), ("samples grid", "samples/samples/")]  # fmt: skip
    for name, path in shown:
        assert re.search(rf"^  {name}: +{re.escape(str(trained_run / path))}", out, re.M), (name, out)
    log = (trained_run / "train.log").read_text()
    assert "`Trainer.fit` stopped: `max_epochs=2` reached." in log  # Lightning's messages reach the run's log
    assert not (trained_run / "cli.log").exists() and not (trained_run / ".lock").exists()


@pytest.mark.parametrize("mode", ["sample", "reconstruct", "interpolate"])
def test_sample_command_writes_a_grid(trained_run, tmp_path, mode):
    out = tmp_path / f"{mode}.png"
    cli.main(["sample", f"ckpt={trained_run / 'checkpoints' / 'last.ckpt'}", "n=16", f"out={out}", f"mode={mode}"])
    img = Image.open(out)
    assert img.size[0] > 8 and img.size[1] > 8


def test_sample_is_reproducible_and_rejects_unknown_modes(trained_run, tmp_path):
    ckpt = trained_run / "checkpoints" / "last.ckpt"
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    cli.main(["sample", f"ckpt={ckpt}", "n=9", f"out={a}", "seed=3"])
    cli.main(["sample", f"ckpt={ckpt}", "n=9", f"out={b}", "seed=3"])
    assert a.read_bytes() == b.read_bytes()
    with pytest.raises(SystemExit, match="unknown mode 'inpaint'.*reconstruct, interpolate"):
        cli.main(["sample", f"ckpt={ckpt}", "mode=inpaint"])
    with pytest.raises(SystemExit, match="does not exist"):
        cli.main(["sample", f"ckpt={tmp_path / 'missing.ckpt'}"])


def test_text_sample_command_takes_the_prompt_verbatim(tmp_path):
    """`prompt=ROMEO:` is a mapping to YAML and `prompt=42` a number: both must reach the model as text."""
    from gen_lightning.config import compose
    from gen_lightning.run import train

    train.fit(compose(tiny_overrides(tmp_path / "lstm", "trainer.max_steps=2", "trainer.max_epochs=-1", model="lstm")))
    ckpt = tmp_path / "lstm" / "checkpoints" / "last.ckpt"
    for prompt in ("ROMEO:", "42"):
        out = tmp_path / "samples.txt"
        cli.main(["sample", f"ckpt={ckpt}", f"prompt={prompt}", "n=2", "length=10", "top_k=5", f"out={out}"])
        texts = out.read_text(encoding="utf-8").split("\n\n---\n\n")
        assert len(texts) == 2 and all(t.startswith(prompt) and len(t) == len(prompt) + 10 for t in texts)
    with pytest.raises(SystemExit, match=r"does not take the sampling option\(s\) \['use_cache'\]"):
        cli.main(["sample", f"ckpt={ckpt}", "length=10", "use_cache=false"])


def test_unknown_config_option_lists_the_valid_ones(tmp_path):
    proc = gen_lightning("fit", f"run_dir={tmp_path / 'r'}", "model=transfomer")
    assert proc.returncode != 0
    assert "Could not find 'model/transfomer'" in proc.stderr and "vae" in proc.stderr
    proc = gen_lightning("fit", f"run_dir={tmp_path / 'r'}", "experiment=nope")
    assert proc.returncode != 0 and "Available options in 'experiment'" in proc.stderr


def test_experiment_and_multirun(tmp_path):
    sweep = tmp_path / "sweep"
    proc = gen_lightning(
        "fit",
        "--multirun",
        "experiment=vae_conv_digits",
        "seed=0,1",
        *[
            o
            for o in tiny_overrides(tmp_path, "trainer.max_steps=3", "trainer.max_epochs=1")
            if not o.startswith(("run_dir", "model"))
        ],
        f"hydra.sweep.dir={sweep}",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = sorted(p.parent for p in sweep.glob("*/metrics.json"))
    assert len(runs) == 2
    seeds = {OmegaConf.load(r / "config.yaml").seed for r in runs}
    assert seeds == {0, 1}
    assert all(OmegaConf.load(r / "config.yaml").model.network == "conv" for r in runs)


def test_ddp_on_two_cpu_processes(tmp_path):
    """2-process DDP (gloo) through the command line with the default run_dir and W&B: one run directory, one W&B
    id, one final message; the checkpoint loads, and validation metrics and image metrics are reduced over all
    processes (equal to one process over the same weights)."""
    metrics = [
        "metrics=classifier",
        "metrics.num_samples=300",
        "metrics.batch_size=64",
        "metrics.every_n_epochs=0",
        "metrics.classifier.steps=100",
    ]
    overrides = tiny_overrides(
        tmp_path, "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2", "trainer.max_epochs=2", *metrics
    )
    dropped = ("metrics=none", "logger=none", f"run_dir={tmp_path}")
    proc = gen_lightning("fit", *[o for o in overrides if o not in dropped], timeout=900, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = [p for p in (tmp_path / "runs").glob("*/*") if p.is_dir()]
    assert len(runs) == 1, runs  # the second process once resolved ${now} again and made its own directory
    run_dir = runs[0]
    assert len(list((run_dir / "wandb").glob("offline-run-*"))) == 1
    assert proc.stdout.count("run finished") == 1, proc.stdout
    summary = json.loads((run_dir / "metrics.json").read_text())
    assert summary["status"] == "completed"
    # 1527 training images / 2 processes / 64 per batch = 11 steps per epoch on each process.
    assert summary["global_step"] == 22
    module = load_module(run_dir / "checkpoints" / "last.ckpt")
    cfg = OmegaConf.load(run_dir / "config.yaml")
    dm = instantiate(cfg.data)
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False)
    single = trainer.validate(module, datamodule=dm, verbose=False)[0]
    # val/kl is exact (closed form) given the weights: equal only if every validation image counted once.
    assert single["val/kl"] == pytest.approx(summary["final"]["val/kl"], rel=1e-5)
    assert torch.isfinite(torch.tensor(summary["final"]["val/elbo"]))
    # Each process generated its share of the 300 samples; one process generating all gives the same numbers.
    from gen_lightning.metrics.evaluate import evaluate_module

    alone = evaluate_module(module, dm, cfg.metrics)["metrics"]
    for key in ("val/fid_clf", "val/kid_clf", "val/is_clf", "val/precision_clf", "val/recall_clf"):
        assert alone[key] == pytest.approx(summary["final"][key], rel=1e-4, abs=1e-6), key
    assert summary["protocol"]["world_size"] == 2 and summary["protocol"]["num_samples"] == 300


@pytest.mark.parametrize("flag", ["--help", "--hydra-help"])
def test_fit_help_names_the_command_its_groups_and_the_readme(flag, capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["gen-lightning"])
    try:
        cli.main(["fit", flag])
    except SystemExit as end:
        assert not end.code, end
    out = capsys.readouterr().out
    if flag == "--hydra-help":
        assert out.startswith("Hydra (")  # Hydra's own help, as the footer of fit --help promises
        return
    assert out.startswith("gen-lightning fit: train one model") and "powered by Hydra" not in out
    assert "README" in out and "gen-lightning fit --hydra-help" in out
    groups = dict(line.split(": ", 1) for line in out.splitlines() if re.match(r"^[a-z_]+: [a-z0-9_, ]+$", line))
    assert {"model", "data", "trainer", "logger", "metrics", "experiment", "debug"} <= set(groups)
    assert "text_hub" in groups["data"].split(", ")  # listed, as the README's data row lists it
