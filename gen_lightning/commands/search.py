"""Hyperparameter search with Hydra's Optuna sweeper: ``gen-lightning fit -m hparams_search=NAME``.

Optuna (Akiba et al. 2019, "Optuna: A Next-generation Hyperparameter Optimization Framework") proposes each trial's
values with TPE (Bergstra et al. 2011); Hydra's sweeper launches every trial as an ordinary run of ``fit`` in its
own run directory, and takes the value the run returns. This module is the glue:

- ``objective(summary)``: that value, the best value of the run's monitored metric (the one ``best.ckpt`` holds),
  NaN when it never was finite (Optuna then records the trial as failed); its direction comes from the model
  (``monitor = (name, "min"|"max")``, docs/CONTRACT.md) through the ``${objective_direction:}`` resolver that
  ``conf/hparams_search/*.yaml`` give the sweeper;
- ``SearchTrial``: one trial seen from inside its run: groups and tags its loggers under the search, records its
  outcome in ``SWEEP_DIR/trials.jsonl`` and keeps the best trial's value and config in ``SWEEP_DIR/best_trial.yaml``
  (named by run_dir.SearchFiles);
- ``attach_trial`` (the sweeper's ``custom_search_space`` hook) and ``TrialPruning``: optional pruning from the
  intermediate validation values, the equivalent of Optuna's Lightning pruning callback for ``lightning.pytorch``
  and step-based validation. The sweeper keeps its Optuna trials in its own process, so pruning needs the trials to
  run in that process (Hydra's default launcher).

A search that cannot work is said in one line rather than in Optuna's traceback: the base config is checked as
``fit`` checks a run before the first trial starts (``check_search``, from the sweeper's first ``attach_trial``),
including that the objective is computed at every validation (``run.checks.check_monitor_schedule``: ``best.ckpt``'s
ModelCheckpoint raises at the first validation without it); and when the last trial ends with no trial completed,
the search stops with the trials' error (``SearchTrial.end``) instead of Optuna's "No trials are completed yet".
"""

from __future__ import annotations

import fcntl
import json
import math
import warnings
from collections import Counter
from pathlib import Path

import lightning as L
from omegaconf import DictConfig, OmegaConf, open_dict

from gen_lightning.files import append_jsonl, write_with
from gen_lightning.loggers import logger_configs
from gen_lightning.run_dir import RunDir, SearchFiles, config_container

_pending: list = []  # Optuna trials the sweeper asked for and launches next, in launch order
_active: SearchTrial | None = None  # the trial this process is running
_checked = False  # the sweep's base config passed check_search (once per process)


def register_resolvers() -> None:
    """``${objective_direction:}``: ``maximize`` or ``minimize``, from the composed config's model and checkpoint;
    ``${steps_fraction:0.1,${trainer.max_steps}}``: that share of a step budget (a warm-up that fits any budget)."""
    if not OmegaConf.has_resolver("objective_direction"):
        OmegaConf.register_new_resolver("objective_direction", _direction)
    if not OmegaConf.has_resolver("steps_fraction"):
        OmegaConf.register_new_resolver("steps_fraction", steps_fraction)


def steps_fraction(fraction: float, steps: int) -> int:
    """``fraction`` of ``steps`` (rounded down; 0 for no budget, -1)."""
    return max(0, int(float(fraction) * int(steps)))


def _direction(*, _root_: DictConfig) -> str:
    return "maximize" if objective_of(_root_)[1] == "max" else "minimize"


def objective_of(cfg: DictConfig) -> tuple[str, str]:
    """``(metric, mode)`` a run of ``cfg`` monitors, read from the model's class (nothing is built)."""
    from hydra.utils import get_class

    from gen_lightning.run.checks import monitored

    return monitored(cfg, get_class(cfg.model._target_))


def objective(summary: dict) -> float:
    """The best value of the monitored metric over the run's validations (``metrics.json``), NaN if none is finite."""
    monitor, mode = summary["monitor"], summary["mode"]
    values = [row[monitor] for row in summary.get("history", []) if math.isfinite(row.get(monitor, math.nan))]
    if not values:
        return math.nan
    return max(values) if mode == "max" else min(values)


def check_search(config: DictConfig) -> None:
    """Refuse, before any trial starts, a search whose every trial would be refused (one line, exit status 1)."""
    from gen_lightning.run import threads
    from gen_lightning.run.checks import checked

    name = OmegaConf.select(config, "hparams_search.name", default="?")
    try:
        checked(config, here=False)  # the monitored metric computed at every validation included
        threads.check(config.get("threads", "auto"))
    except ValueError as err:
        raise SystemExit(f"gen-lightning fit: the search {name} cannot run, no trial was started: {err}") from None


def attach_trial(config: DictConfig, trial) -> None:
    """The sweeper's ``custom_search_space`` hook, called with each trial it asks for before launching it: keeps the
    trial for the run that takes it, and gives the study the configured pruner (or none). Before the first trial,
    the search's config is checked (``check_search``)."""
    global _checked
    import optuna
    from hydra.utils import instantiate

    if not _checked:
        check_search(config)
        _checked = True
    search = config.get("hparams_search") or {}
    if not getattr(trial.study, "_pruner_configured", False):
        prune = search.get("prune") and search.get("pruner")
        trial.study.pruner = instantiate(search.pruner) if prune else optuna.pruners.NopPruner()
        trial.study._pruner_configured = True
    _pending.append(trial)


def _take_pending(overrides: list[str]):
    """The Optuna trial whose values are this run's overrides (the sweeper launches them in the order it asked)."""
    for i, trial in enumerate(_pending):
        if all(f"{k}={v}" in overrides for k, v in trial.params.items()):
            return _pending.pop(i)
    return None


class SearchTrial:
    """One trial of a search, from inside its run (``cli._fit_task``)."""

    def __init__(
        self, cfg: DictConfig, sweep_dir: str, job: int, overrides: list[str], n_trials: int | None = None
    ) -> None:
        self.name = str(cfg.hparams_search.name)
        self.n_trials = n_trials  # the sweeper's, to know the last trial
        self.sweep_dir = Path(sweep_dir)
        self.job = job
        self.overrides = overrides
        self.optuna_trial = _take_pending(overrides)
        self.metric, self.mode = objective_of(cfg)
        self.pruned_at: int | None = None

    @property
    def files(self) -> SearchFiles:
        """The search's files in its sweep directory (run_dir.SearchFiles)."""
        return SearchFiles(self.sweep_dir)

    @classmethod
    def begin(cls, cfg: DictConfig, hydra_cfg) -> SearchTrial | None:
        """The trial ``cfg`` is, when this is a job of ``-m hparams_search=NAME`` (else None): checks the sweeper's
        direction against the model's, and groups and tags the run's loggers under the search."""
        global _active
        from hydra.types import RunMode

        if hydra_cfg.mode != RunMode.MULTIRUN or not cfg.get("hparams_search"):
            return None
        register_resolvers()  # a job launched in another process (e.g. submitit) resolves the search's config there
        n_trials = OmegaConf.select(hydra_cfg, "sweeper.n_trials", default=None)
        trial = cls(cfg, hydra_cfg.sweep.dir, hydra_cfg.job.num, list(hydra_cfg.overrides.task), n_trials)
        direction = str(OmegaConf.select(hydra_cfg, "sweeper.direction", default="")).rsplit(".", 1)[-1]
        wanted = "maximize" if trial.mode == "max" else "minimize"
        if direction and direction != wanted:
            raise ValueError(
                f"hydra.sweeper.direction={direction}, but this search's objective {trial.metric} is best at its "
                f"{trial.mode}imum: leave the direction to the model "
                "(hydra.sweeper.direction: ${objective_direction:})"
            )
        trial.label_loggers(cfg)
        _active = trial
        return trial

    def label_loggers(self, cfg: DictConfig) -> None:
        """The W&B run in the search's group; the search's name among every logger's tags."""
        with open_dict(cfg):
            for logger in logger_configs(cfg.get("logger")).values():
                if str(logger._target_).endswith("make_wandb_logger") and not logger.get("group"):
                    logger.group = f"{self.name}-{self.sweep_dir.name}"
                tags = logger.get("tags")
                if isinstance(tags, DictConfig):
                    tags.search = self.name
                elif tags is not None:
                    logger.tags = [*tags, self.name]

    def end(self, cfg: DictConfig, summary: dict | None, error: BaseException | None = None) -> float:
        """Record the outcome; returns the objective for the sweeper. A pruned trial raises ``optuna.TrialPruned``
        after its run is complete (checkpoints, metrics.json), which the sweeper records as a failed trial."""
        global _active
        _active = None
        value = math.nan if summary is None else objective(summary)
        state = "failed" if error is not None else "pruned" if self.pruned_at is not None else "complete"
        if state == "complete" and not math.isfinite(value):
            state = "non-finite"
        record = {
            "trial": self.optuna_trial.number if self.optuna_trial is not None else self.job,
            "run_dir": str(cfg.run_dir),
            "state": state,
            "value": value if math.isfinite(value) else None,
            "params": dict(self.optuna_trial.params) if self.optuna_trial is not None else None,
            "overrides": self.overrides,
            **({"error": f"{type(error).__name__}: {error}"} if error is not None else {}),
            **({"pruned_at_step": self.pruned_at} if self.pruned_at is not None else {}),
        }
        self._write(record, cfg)
        self._stop_if_none_completed()
        if state == "pruned":
            import optuna

            raise optuna.TrialPruned(f"trial {record['trial']} pruned at step {self.pruned_at} ({cfg.run_dir})")
        if state == "non-finite":
            warnings.warn(
                f"{self.metric} was never finite in {cfg.run_dir}: Optuna records the trial as failed", stacklevel=2
            )
        return value

    def _write(self, record: dict, cfg: DictConfig) -> None:
        """Append to ``trials.jsonl``; rewrite ``best_trial.yaml`` if this trial beats it (under a lock: a parallel
        launcher may end several trials at once)."""
        self.sweep_dir.mkdir(parents=True, exist_ok=True)
        with open(self.files.lock, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            append_jsonl(self.files.trials, record)
            if record["state"] == "complete" and self._beats_best(record["value"]):
                best = {
                    "search": self.name,
                    "metric": self.metric,
                    "mode": self.mode,
                    **{k: record[k] for k in ("value", "trial", "run_dir", "params", "overrides")},
                    "checkpoint": str(RunDir(cfg.run_dir).best),
                    "config": config_container(cfg),  # as the run's config.yaml holds it
                }
                write_with(self.files.best_trial, lambda tmp: OmegaConf.save(OmegaConf.create(best), tmp))

    def _stop_if_none_completed(self) -> None:
        """After the search's last trial with none completed, stop with the trials' error in one line: the sweeper
        would end in Optuna's "ValueError: No trials are completed yet" traceback."""
        path = self.files.trials
        records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        if self.n_trials is None or len(records) < self.n_trials or any(r["state"] == "complete" for r in records):
            return
        raise SystemExit(f"gen-lightning fit: {none_completed(self.name, self.metric, records)} ({path})")

    def _beats_best(self, value: float) -> bool:
        path = self.files.best_trial
        if not path.is_file():
            return True
        old = OmegaConf.load(path).value
        return value > old if self.mode == "max" else value < old


def none_completed(name: str, metric: str, records: list[dict]) -> str:
    """``no trial of the search NAME completed (3 failed): <the most frequent reason>``."""
    states = Counter(r["state"] for r in records)
    reasons = Counter(
        r.get("error")
        or (f"{metric} was never finite" if r["state"] == "non-finite" else f"pruned at step {r.get('pruned_at_step')}")
        for r in records
    )
    reason, count = reasons.most_common(1)[0]
    counts = ", ".join(f"{n} {state}" for state, n in states.items())
    shown = reason.splitlines()[0] if reason else "?"
    return f"no trial of the search {name} completed ({counts}); {count} of {len(records)} ended in: {shown}"


class TrialPruning(L.Callback):
    """Reports the monitored validation value to the running Optuna trial after every validation (at the global
    step), and with ``enabled`` stops the run when the study's pruner says the trial falls behind. The run ends
    like any run (last.ckpt, metrics.json); the trial is then reported as pruned. A no-op outside a search."""

    def __init__(self, enabled: bool = False, monitor: str | None = None) -> None:
        self.enabled = enabled
        self.monitor = monitor

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.enabled and _active is not None and _active.optuna_trial is None:
            warnings.warn(
                "hparams_search.prune=true, but this trial runs outside the sweeper's process (another Hydra "
                "launcher), where its Optuna trial is not reachable: it runs without pruning",
                stacklevel=2,
            )

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        trial = _active.optuna_trial if _active is not None else None
        if trainer.sanity_checking or trial is None or not trainer.is_global_zero:
            return
        value = trainer.callback_metrics.get(self.monitor or pl_module.monitor[0])
        if value is None or not math.isfinite(float(value)):
            return
        trial.report(float(value), step=trainer.global_step)
        if self.enabled and trial.should_prune():
            _active.pruned_at = trainer.global_step
            trainer.should_stop = True
