"""The experiment loggers (gen_lightning/loggers.py) and the samples they get (gen_lightning/tracking.py): W&B, CSV,
TensorBoard and MLflow all at once, offline, each read back with its own reader; a resumed MLflow run; the flat
logger layout of older run configs; a missing logger package."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import tiny_overrides
from omegaconf import OmegaConf

from gen_lightning import loggers, tracking
from gen_lightning.config import compose
from gen_lightning.run import checks, train
from gen_lightning.run.resume_policy import resolve_for_resume

pytest.importorskip("tensorboard", reason="the loggers extra is not installed")
pytest.importorskip("mlflow", reason="the loggers extra is not installed")
WANDB = shutil.which("wandb") or shutil.which("wandb", path=str(Path(sys.executable).parent))
ALL = "logger=[wandb,csv,tensorboard,mlflow]"


def mlflow_store(tmp: Path) -> list[str]:
    return [
        f"logger.mlflow.tracking_uri=sqlite:///{tmp / 'mlflow.db'}",
        f"logger.mlflow.artifact_location={tmp / 'art'}",
    ]


def fit_all_loggers(run_dir: Path, model: str, *extra: str) -> dict:
    overrides = [o for o in tiny_overrides(run_dir, *extra, model=model) if o != "logger=none"]
    return train.fit(compose([*overrides, ALL, *mlflow_store(run_dir.parent)]))


def tensorboard_tags(run_dir: Path) -> dict:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"images": 0, "tensors": 0})
    events.Reload()
    return events.Tags()


def mlflow_run(run_dir: Path, store: Path | None = None):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{store or run_dir.parent / 'mlflow.db'}")
    return client, client.get_run((run_dir / "mlflow_run_id.txt").read_text().strip())


def wandb_history_keys(run_dir: Path) -> set[str]:
    (offline,) = sorted((run_dir / "wandb").glob("offline-run-*"))
    out = subprocess.run([WANDB, "leet", "inspect", "--json", str(offline)], capture_output=True, text=True, check=True)
    records = [json.loads(line) for line in out.stdout.splitlines()]
    return {k for r in records if r.get("type") == "history" for k in r["history"]["item"]}


@pytest.mark.skipif(WANDB is None, reason="wandb command not installed")
def test_four_loggers_at_once_get_config_tags_metrics_and_image_grids(tmp_path):
    run_dir = tmp_path / "vae"
    fit_all_loggers(run_dir, "vae", "trainer.max_steps=6", "trainer.val_check_interval=3")
    # CSV: metrics, hyperparameters and the grids as PNG files.
    assert "val/elbo" in (run_dir / "csv" / "metrics.csv").read_text().splitlines()[0]
    assert OmegaConf.load(run_dir / "csv" / "hparams.yaml").model.hidden_dim == 32
    assert len(list((run_dir / "csv" / "media" / "samples" / "samples").glob("step*.png"))) == 2
    # TensorBoard: scalars and the grids in its Images tab; name and tags as text.
    tags = tensorboard_tags(run_dir)
    assert "val/elbo" in tags["scalars"] and {"samples/samples", "samples/reconstructions"} <= set(tags["images"])
    assert "run/text_summary" in tags["tensors"]
    # MLflow: the run named after its directory, tagged, with the config as parameters and the grids as images.
    client, run = mlflow_run(run_dir)
    assert run.info.run_name == "vae" and run.data.tags["family"] == "vae" and run.data.tags["dataset"] == "digits"
    assert run.data.params["model/hidden_dim"] == "32" and "val/elbo" in run.data.metrics
    images = [a.path for a in client.list_artifacts(run.info.run_id, "images")]
    assert any("samples~samples+step+" in p and p.endswith(".png") for p in images), images
    # W&B: the same grids in the offline run's history.
    assert {"samples/samples", "val/elbo"} <= {k.split(".")[0] for k in wandb_history_keys(run_dir)}


@pytest.mark.skipif(WANDB is None, reason="wandb command not installed")
def test_four_loggers_at_once_get_text_samples(tmp_path):
    run_dir = tmp_path / "lstm"
    fit_all_loggers(run_dir, "lstm", "trainer.max_steps=4", "trainer.val_check_interval=4", "trainer.max_epochs=-1")
    texts = list((run_dir / "csv" / "media" / "samples" / "text").glob("step*.txt"))
    assert texts and texts[0].read_text().strip()
    assert "samples/text/text_summary" in tensorboard_tags(run_dir)["tensors"]
    client, run = mlflow_run(run_dir)
    (artifact,) = client.list_artifacts(run.info.run_id, "samples/text")
    text = Path(client.download_artifacts(run.info.run_id, artifact.path, str(tmp_path))).read_text()
    assert (
        text.strip()
        and text.split("\n\n---\n\n")[0] in (run_dir / "samples" / "text").glob("*.txt").__next__().read_text()
    )
    assert "samples/text" in {k.split(".")[0] for k in wandb_history_keys(run_dir)}


def test_tables_reach_every_logger_through_one_call(tmp_path):
    """A table (e.g. source | reference | hypothesis) through tracking.log_table, read back from each logger."""
    from lightning.pytorch.loggers import CSVLogger

    chosen = [
        CSVLogger(tmp_path, name="csv", version=""),
        loggers.make_tensorboard_logger(str(tmp_path), "t", ["x"]),
        loggers.make_mlflow_logger(
            str(tmp_path), "t", {}, tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}", artifact_location=str(tmp_path)
        ),
    ]
    trainer = SimpleNamespace(
        loggers=chosen, fit_loop=SimpleNamespace(epoch_loop=SimpleNamespace(_batches_that_stepped=7))
    )
    tracking.log_table(trainer, "samples/pairs", ["source", "hypothesis"], [["ein Hund", "a dog | b"]])
    for lg in chosen:
        lg.finalize("success")
    assert (tmp_path / "csv" / "media" / "samples" / "pairs" / "step0000007.csv").read_text().splitlines() == [
        "source,hypothesis",
        "ein Hund,a dog | b",
    ]
    assert "samples/pairs/text_summary" in tensorboard_tags(tmp_path)["tensors"]
    client, run = mlflow_run(tmp_path, tmp_path / "mlflow.db")
    table = client.download_artifacts(run.info.run_id, "samples/pairs/step0000007.json", str(tmp_path / "dl"))
    assert json.loads(Path(table).read_text()) == {
        "columns": ["source", "hypothesis"],
        "data": [["ein Hund", "a dog | b"]],
    }


def test_a_resumed_run_continues_its_mlflow_run(tmp_path):
    run_dir = tmp_path / "r"
    overrides = [
        o for o in tiny_overrides(run_dir, "trainer.max_steps=4", "trainer.val_check_interval=2") if o != "logger=none"
    ]
    train.fit(compose([*overrides, "logger=mlflow", *mlflow_store(tmp_path)]))
    first = (run_dir / "mlflow_run_id.txt").read_text()
    cfg, _ = resolve_for_resume(
        compose([f"run_dir={run_dir}", "resume=true", "trainer.max_steps=8"]), ["trainer.max_steps=8"]
    )
    train.fit(cfg)  # logs its config again: MLflow refuses to change a parameter, the values already there are kept
    assert (run_dir / "mlflow_run_id.txt").read_text() == first
    client, run = mlflow_run(run_dir)
    steps = [m.step for m in client.get_metric_history(run.info.run_id, "val/elbo")]
    assert steps == sorted(steps) and max(steps) >= 7 and min(steps) <= 2  # both segments in one run


def test_logger_layouts_old_and_new():
    new = {"wandb": {"_target_": "gen_lightning.tracking.make_wandb_logger"}, "csv": {"_target_": "x.CSVLogger"}}
    assert list(loggers.logger_configs(new)) == ["wandb", "csv"] and loggers.wandb_config(new) is new["wandb"]
    old = {"_target_": "gen_lightning.tracking.make_wandb_logger", "project": "p"}  # a run config saved before
    assert loggers.wandb_config(old) is old
    assert loggers.logger_configs({}) == {} and loggers.wandb_config({"csv": new["csv"]}) is None


def test_a_missing_logger_package_is_named_with_the_fix(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else real(name, *a))
    with pytest.raises(loggers.LoggerUnavailable, match=r"logger=mlflow needs the 'mlflow' package.*\[loggers\]"):
        checks.checked(compose(["logger=[csv,mlflow]", "run_dir=x"]))
