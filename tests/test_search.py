"""Hyperparameter search (commands/search.py, conf/hparams_search/): a 3-trial Optuna search through the command
line, in which one trial fails (NaN loss) and one is pruned without stopping the search, the search spaces of
every example config, each run through the command line with a short budget, and the one-line ends of searches that
cannot work (issue 24)."""

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
from gen_lightning.run.checks import check_monitor_schedule
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


# A user's quick look at a search (`hydra.sweeper.n_trials=3 trainer.max_steps=20`), made smaller: one trial of a
# few steps; the protocols' expensive settings shrunk (DCGAN's FID on 100 samples of a 20-step classifier).
SHORT = {
    "dcgan_digits": ["metrics.num_samples=100", "metrics.classifier.steps=20", "metrics.kid_subset_size=50"],
    "gpt_text": ["trainer.limit_val_batches=2"],
    "lstm_text": ["trainer.limit_val_batches=2"],
}


def run_search(sweep: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "gen_lightning.cli", "fit", "-m", f"hydra.sweep.dir={sweep}", "logger=none"]
    cmd += ["trainer.enable_progress_bar=false", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})


@pytest.mark.slow  # one process per search (~15 s each on 2 free cores)
@pytest.mark.parametrize("name", SEARCHES)
def test_every_search_space_runs_with_a_short_budget(tmp_path, name):
    """dcgan_digits failed every trial ("ModelCheckpoint(monitor='val/fid_clf') could not find the monitored key":
    its FID came only after training) and ended in Optuna's traceback. Each search now completes a short trial."""
    proc = run_search(
        tmp_path, f"hparams_search={name}", "hydra.sweeper.n_trials=1", "trainer.max_steps=4", *SHORT.get(name, [])
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (trial,) = [json.loads(line) for line in (tmp_path / "trials.jsonl").read_text().splitlines()]
    assert trial["state"] == "complete" and math.isfinite(trial["value"]), trial
    assert OmegaConf.load(tmp_path / "optimization_results.yaml").best_value == trial["value"]


def test_a_search_whose_trials_all_fail_says_why_in_one_line(tmp_path):
    proc = run_search(
        tmp_path, "hparams_search=vae_digits", "hydra.sweeper.n_trials=2", "model.lr=choice(1e4)",
        "model.latent_dim=choice(2)", "trainer.max_steps=4", "model.hidden_dim=32", "model.iw_samples=4",
    )  # fmt: skip
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("gen-lightning fit: no trial of the search vae_digits completed (2 failed); 2 of 2 ended in")
    assert "NonFiniteLossError" in last and str(tmp_path / "trials.jsonl") in last
    assert "No trials are completed yet" not in proc.stderr


def test_a_search_whose_objective_is_never_computed_at_a_validation_is_refused_before_any_trial(tmp_path):
    """What every dcgan_digits trial met at its first validation, refused once before the first trial."""
    proc = run_search(tmp_path, "hparams_search=dcgan_digits", "metrics.every_n_epochs=0", "metrics.num_samples=100")
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == (
        "gen-lightning fit: the search dcgan_digits cannot run, no trial was started: checkpoint.monitor=val/fid_clf "
        "is computed by the metric protocol only once training has ended (metrics.every_n_epochs=0), but best.ckpt "
        "needs it at every validation: set metrics.every_n_epochs=1 (and space the validations with "
        "trainer.check_val_every_n_epoch), or monitor a metric the model logs"
    )
    assert not (tmp_path / "trials.jsonl").exists()


def test_the_monitor_schedule_check_accepts_what_every_validation_computes():
    base = ["hparams_search=dcgan_digits", "metrics.num_samples=100"]
    cfg = compose(base)
    check_monitor_schedule(cfg)  # every_n_epochs: 1 in the search config
    for every in (0, 5):
        with pytest.raises(ValueError, match=f"metrics.every_n_epochs={every}"):
            check_monitor_schedule(compose([*base, f"metrics.every_n_epochs={every}"]))
    # The model's own monitored metric is logged at every validation, whatever the protocol's schedule.
    check_monitor_schedule(compose([*base, "metrics.every_n_epochs=0", "checkpoint.monitor=null"]))


def test_a_searchs_files_are_where_run_dir_says(tmp_path):
    """trials.jsonl and best_trial.yaml in the sweep directory (run_dir.SearchFiles, the names saved searches have),
    the best trial's checkpoint its run's best.ckpt (RunDir); a worse trial later leaves best_trial.yaml alone."""
    from gen_lightning.run_dir import RunDir, SearchFiles

    sweep = tmp_path / "sweep"
    files = SearchFiles(sweep)
    assert (files.trials, files.best_trial) == (sweep / "trials.jsonl", sweep / "best_trial.yaml")
    trial = search.SearchTrial.__new__(search.SearchTrial)
    trial.name, trial.sweep_dir, trial.n_trials, trial.optuna_trial, trial.pruned_at = "s", sweep, None, None, None
    trial.metric, trial.mode = "val/elbo", "max"
    for job, value in enumerate([-30.0, -20.0, -40.0]):
        trial.job, trial.overrides = job, [f"model.lr={job}"]
        cfg = OmegaConf.create({"run_dir": str(tmp_path / "runs" / str(job)), "model": {"lr": job}})
        summary = {"monitor": "val/elbo", "mode": "max", "history": [{"val/elbo": value}]}
        assert trial.end(cfg, summary) == value
    records = [json.loads(line) for line in files.trials.read_text().splitlines()]
    assert [(r["trial"], r["value"], r["state"]) for r in records] == [(0, -30.0, "complete"), (1, -20.0, "complete"),
                                                                         (2, -40.0, "complete")]  # fmt: skip
    best = OmegaConf.load(files.best_trial)
    assert (best.value, best.trial, best.config.model.lr) == (-20.0, 1, 1)
    assert (
        best.checkpoint == str(RunDir(tmp_path / "runs" / "1").best) == str(tmp_path / "runs/1/checkpoints/best.ckpt")
    )
