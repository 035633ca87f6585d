"""W&B tracking: offline records, a resumed run that continues the step counter, and a W&B that cannot start."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
from test_resume import run

WANDB = shutil.which("wandb")


def history(run_dir) -> dict[int, dict]:
    """Every history row of an offline W&B run directory, by step, read with `wandb leet inspect --json`."""
    out = subprocess.run(
        [WANDB, "leet", "inspect", "--json", str(run_dir)], capture_output=True, text=True, timeout=120, check=True
    ).stdout
    rows = {}
    for line in out.splitlines():
        record = json.loads(line)
        if record.get("type") == "history":
            item = record["history"]["item"]
            rows.setdefault(item["_step"], {}).update(item)
    return rows


def offline_runs(run_dir):
    return sorted((run_dir / "wandb").glob("offline-run-*"))


@pytest.mark.skipif(WANDB is None, reason="wandb command not installed")
def test_resumed_wandb_run_continues_its_steps(tmp_path, monkeypatch):
    full_dir, cut_dir = tmp_path / "full", tmp_path / "cut"
    run(full_dir, "logger=wandb", "checkpoint.every_n_train_steps=1000")
    with pytest.raises(RuntimeError, match="simulated crash"):
        run(cut_dir, "logger=wandb", "checkpoint.every_n_train_steps=12", crash_at=12, monkeypatch=monkeypatch)
    monkeypatch.undo()
    run(cut_dir, "resume=true")

    first, second = offline_runs(cut_dir)
    run_id = (cut_dir / "wandb_run_id.txt").read_text().strip()
    # Both segments are the same W&B run (a segment started in the same second gets a "-1" suffix).
    assert f"-{run_id}" in first.name and f"-{run_id}" in second.name
    seg1, seg2 = history(first), history(second)
    reference = history(offline_runs(full_dir)[0])
    # The resumed segment starts where the checkpoint was, not at 0, so syncing it drops no row ...
    assert min(seg2) == 12
    # ... and together the two segments hold every row of the uninterrupted run, with the same values.
    merged = {**seg1, **seg2}
    assert sorted(merged) == sorted(reference)
    for step, row in reference.items():
        if "train/loss" in row:
            assert merged[step]["train/loss"] == row["train/loss"], step
    # Sample grids are logged as images each validation epoch.
    assert any("samples/samples.filenames" in r and "samples/reconstructions.filenames" in r for r in merged.values())
    val_steps = [s for s, r in reference.items() if "val/elbo" in r]
    assert val_steps and all(merged[s]["val/elbo"] == reference[s]["val/elbo"] for s in val_steps)
    # The resolved config and the tags are in the run record.
    summary = subprocess.run(
        [WANDB, "leet", "inspect", "--summary", "--json", str(second)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    assert '"vae"' in summary and "digits" in summary


def test_wandb_that_cannot_start_does_not_stop_training(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "online")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # nothing listens there: no network
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb_config"))
    monkeypatch.setenv("WANDB_INIT_TIMEOUT", "10")
    with pytest.warns(UserWarning, match="W&B could not start.*training continues"):
        summary = run(tmp_path / "r", "logger=wandb", "trainer.max_steps=5")
    assert summary["global_step"] == 5
    assert (tmp_path / "r" / "checkpoints" / "last.ckpt").is_file()


@pytest.mark.parametrize("model", ["lstm", "dcgan"])
def test_every_family_runs_with_wandb(tmp_path, model):
    """With a logger, Lightning merges module and data-module hyperparameters: they must not clash."""
    summary = run(tmp_path / model, "logger=wandb", "trainer.max_steps=4", model=model)
    assert summary["global_step"] == 4
    assert offline_runs(tmp_path / model)


def test_runs_without_wandb_never_import_it(tmp_path):
    """logger=csv/none and evaluating such a run must work where W&B is not installed (a cluster image, say):
    W&B is blocked from importing in a fresh process, which then trains and evaluates."""
    from conftest import tiny_overrides

    run_dir = tmp_path / "r"
    overrides = tiny_overrides(run_dir, "trainer.max_steps=4", "logger=csv")
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    code = (
        "import sys; sys.modules['wandb'] = None\n"  # any `import wandb` now raises ImportError
        "from gen_lightning.cli import main\n"
        f"main(['fit', *{overrides!r}])\n"
        f"main(['evaluate', 'ckpt={ckpt}', 'metrics=classifier', 'metrics.num_samples=64'])\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((run_dir / "metrics.json").read_text())["status"] == "completed"
    assert json.loads(ckpt.with_suffix(".eval.json").read_text())["metrics"]["val/fid_clf"] > 0
