"""Hyperparameter search (commands/search.py, conf/hparams_search/): a 3-trial Optuna search through the command
line, in which one trial fails (NaN loss) and one is pruned without stopping the search, and the search spaces of
every example config."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from gen_lightning import cli
from gen_lightning.commands import search
from gen_lightning.config import compose, config_dir
from gen_lightning.run import train
from gen_lightning.run.resume_policy import resolve_for_resume

pytest.importorskip("hydra_plugins.hydra_optuna_sweeper", reason="the sweep extra is not installed")

SEARCHES = sorted(p.stem for p in (config_dir() / "hparams_search").glob("*.yaml"))


def test_three_trial_search_records_complete_failed_and_pruned_trials(tmp_path):
    sweep = tmp_path / "sweep"
    args = [
        "fit", "-m", "hparams_search=vae_digits", "hydra.sweeper.n_trials=3", f"hydra.sweep.dir={sweep}",
        "model.latent_dim=choice(2,4,8,16,32)", "model.lr=choice(1e-4,3e-3,1e4)",  # lr=1e4: a NaN loss
        "hparams_search.prune=true", "hparams_search.pruner.n_startup_trials=1",
        "trainer.max_steps=40", "trainer.max_epochs=-1", "trainer.val_check_interval=10",
        "trainer.check_val_every_n_epoch=null", "trainer.enable_progress_bar=false",
        "logger=csv", "model.hidden_dim=32", "model.iw_samples=4",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run([sys.executable, "-m", "gen_lightning.cli", *args], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]  # neither the failed nor the pruned trial stops the search

    trials = [json.loads(line) for line in (sweep / "trials.jsonl").read_text().splitlines()]
    # With the sampler's seed (the run's seed, 0) the three trials draw lr 1e4, 1e-4, 1e-4: the first diverges, the
    # third learns as slowly as the second and falls behind it at the first validation.
    assert [t["state"] for t in trials] == ["failed", "complete", "pruned"], trials
    assert trials[0]["params"]["model.lr"] == 1e4 and "loss = nan" in trials[0]["error"]
    assert trials[2]["pruned_at_step"] == 10
    for t in trials:  # each trial is an ordinary run with its values
        saved = OmegaConf.load(Path(t["run_dir"]) / "config.yaml")
        assert {k: OmegaConf.select(saved, k) for k in t["params"]} == t["params"]

    done = trials[1]
    summary = json.loads((Path(done["run_dir"]) / "metrics.json").read_text())
    assert done["value"] == max(r["val/elbo"] for r in summary["history"])  # the best val/elbo, maximised

    best = OmegaConf.to_container(OmegaConf.load(sweep / "best_trial.yaml"))
    assert (best["metric"], best["mode"], best["value"], best["trial"]) == ("val/elbo", "max", done["value"], 1)
    assert best["config"] == OmegaConf.to_container(OmegaConf.load(Path(done["run_dir"]) / "config.yaml"))
    assert Path(best["checkpoint"]).is_file()
    optuna = OmegaConf.load(sweep / "optimization_results.yaml")  # the value Optuna was told is the same
    assert optuna.best_value == best["value"] and dict(optuna.best_params) == best["params"]

    # The pruned trial stopped early but completely, and resumes like any run.
    pruned = Path(trials[2]["run_dir"])
    assert json.loads((pruned / "metrics.json").read_text())["global_step"] == 10
    cfg, _ = resolve_for_resume(compose([f"run_dir={pruned}", "resume=true"]), [])
    assert train.fit(cfg)["global_step"] == 40


@pytest.mark.parametrize("name", SEARCHES)
def test_every_search_space_names_keys_of_its_config(name):
    """A search over a key the config lacks would fail every trial; the direction follows the model."""
    from hydra import compose, initialize_config_dir

    from gen_lightning.config import register_experiments

    register_experiments()
    search.register_resolvers()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose("config", overrides=[f"hparams_search={name}"], return_hydra_config=True)
    sweeper = cfg.hydra.sweeper
    assert sweeper.params and sweeper.custom_search_space == "gen_lightning.commands.search.attach_trial"
    absent = object()
    for key in sweeper.params:  # (a key may be null: e.g. ddpm's hidden_dim, sized from the data by default)
        assert OmegaConf.select(cfg, key, default=absent) is not absent, f"{name}: {key} is not a key of the config"
    metric, mode = search.objective_of(cfg)
    assert sweeper.direction == {"max": "maximize", "min": "minimize"}[mode], (metric, mode)
    assert cfg.hparams_search.name == name and cfg.callbacks.pruning.enabled is False  # pruning off by default


def test_objective_is_the_best_finite_value_in_the_models_direction():
    history = [{"val/elbo": -30.0}, {"val/elbo": math.nan}, {"val/elbo": -20.0}, {"val/loss": 1.0}]
    assert search.objective({"monitor": "val/elbo", "mode": "max", "history": history}) == -20.0
    assert search.objective({"monitor": "val/elbo", "mode": "min", "history": history}) == -30.0
    assert math.isnan(search.objective({"monitor": "val/fid", "mode": "min", "history": history}))


def test_trials_are_grouped_and_tagged_under_their_search(tmp_path):
    cfg = OmegaConf.create(
        {
            "hparams_search": {"name": "vae_digits"},
            "logger": {
                "wandb": {"_target_": "gen_lightning.tracking.make_wandb_logger", "group": None, "tags": ["x"]},
                "mlflow": {"_target_": "gen_lightning.loggers.make_mlflow_logger", "tags": {}},
            },
        }
    )
    trial = search.SearchTrial.__new__(search.SearchTrial)
    trial.name, trial.sweep_dir = "vae_digits", tmp_path / "2025-01-01_12-00-00"
    trial.label_loggers(cfg)
    assert cfg.logger.wandb.group == "vae_digits-2025-01-01_12-00-00" and cfg.logger.wandb.tags == ["x", "vae_digits"]
    assert cfg.logger.mlflow.tags == {"search": "vae_digits"}


def test_a_search_without_multirun_is_refused_before_anything_is_written(tmp_path):
    with pytest.raises(SystemExit, match="hparams_search=NAME is a search of many runs: add -m"):
        cli.main(["fit", "hparams_search=vae_digits", f"run_dir={tmp_path / 'r'}"])
    assert not (tmp_path / "r").exists()
