"""Weights & Biases tracking: offline by default, one run id per run directory, resumable history.

The only place that knows logger APIs. Two facts of W&B (0.31) shape it:
- A resumed offline run writes a second ``offline-run-*`` directory whose internal ``_step`` restarts at 0, and
  W&B drops rows whose step is below the run's current step when both are synced. Every row is therefore logged
  with an explicit ``step`` (Lightning's logging step, which is checkpointed), so the resumed segment continues
  the step counter and syncing both segments loses no point.
- W&B must never stop training: if it cannot start (not logged in, server unreachable), a warning says so and the
  run goes on with its other outputs (checkpoints, metrics.json, sample PNGs).
"""

from __future__ import annotations

import os
import sys
import uuid
import warnings
from collections.abc import Mapping
from pathlib import Path

import lightning as L
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.utilities import rank_zero_only

from gen_lightning.run_dir import RunDir


class StepWandbLogger(WandbLogger):
    """``WandbLogger`` that passes ``step=`` to ``wandb.log``, so resumed offline segments keep their steps, and
    keeps each validation metric's best and last value in the run summary (the W&B comparison of a study).

    ``metric_directions`` (``callbacks.summary.metric_directions``): ``"min"`` or ``"max"`` per ranked metric;
    the others (diagnostics) keep only their last value."""

    def __init__(self, *args, metric_directions: Mapping[str, str] | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.metric_directions = dict(metric_directions or {})

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        self._define_summaries(metrics)
        if step is None:
            return super().log_metrics(metrics, step)
        self.experiment.log(dict(metrics, **{"trainer/global_step": step}), step=step)

    def _define_summaries(self, metrics: Mapping[str, float]) -> None:
        defined = self.__dict__.setdefault("_summaries_defined", set())
        for name in metrics:
            if name.startswith("val/") and name not in defined:
                direction = self.metric_directions.get(name)
                summary = f"{direction},last" if direction else "last"
                self.experiment.define_metric(name, step_metric="trainer/global_step", summary=summary)
                defined.add(name)


def run_id(run_dir: str | Path) -> str:
    """The W&B run id of ``run_dir``: created on the first run, read back on resume."""
    path = RunDir(run_dir).wandb_id
    if path.exists():
        return path.read_text().strip()
    rid = uuid.uuid4().hex[:8]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(rid + "\n")
    return rid


def make_wandb_logger(
    save_dir: str,
    project: str = "gen-lightning",
    entity: str | None = None,
    group: str | None = None,
    tags: list[str] | None = None,
    job_type: str = "train",
    mode: str | None = None,
    name: str | None = None,
    id: str | None = None,
    metric_directions: Mapping[str, str] | None = None,
) -> WandbLogger | None:
    """A started W&B logger, or ``None`` (with a warning) when W&B cannot start."""
    mode = mode or os.environ.get("WANDB_MODE") or "offline"
    logger = StepWandbLogger(
        save_dir=save_dir,
        project=project,
        entity=entity,
        group=group,
        tags=list(tags or []),
        job_type=job_type,
        name=name,
        id=id or run_id(save_dir),
        mode=mode,
        settings=_settings(),
        metric_directions=metric_directions,
    )
    # Lightning always passes anonymous=None, which W&B answers with a warning that it has no effect.
    logger._wandb_init.pop("anonymous", None)
    if rank_zero_only.rank != 0:
        return logger
    try:
        logger.experiment  # noqa: B018 - start the run now, so a failure is caught here and not mid-training
    except Exception as err:
        warnings.warn(
            f"W&B could not start ({type(err).__name__}: {err}); training continues without W&B. Checkpoints, "
            "metrics.json and sample images are still written to the run directory. To use W&B: run `wandb login` "
            "(online) or set WANDB_MODE=offline.",
            stacklevel=2,
        )
        return None
    return logger


def log_report(
    save_dir: str | Path,
    logger_cfg: Mapping,
    tables: Mapping[str, tuple[list[str], list[list]]],
    images: Mapping[str, str | Path],
    *,
    group: str,
    name: str,
    tags: list[str],
    config: dict,
) -> str | None:
    """Tables (``key -> (columns, rows)``) and image files to a ``job_type=report`` run of ``group``, in the project
    of ``logger_cfg`` (a ``conf/logger/wandb.yaml`` config; empty: the defaults), whose id is kept in ``save_dir`` (the
    same run on the next call). Returns the run id, or ``None`` with a warning when W&B fails."""
    import wandb

    rid = run_id(save_dir)
    try:
        run = wandb.init(
            project=logger_cfg.get("project", "gen-lightning"),
            entity=logger_cfg.get("entity"),
            group=group,
            job_type="report",
            name=name,
            tags=list(tags),
            id=rid,
            resume="allow",
            dir=str(save_dir),
            mode=logger_cfg.get("mode") or os.environ.get("WANDB_MODE") or "offline",
            config=config,
            settings=_settings(),
        )
        logged = {key: wandb.Table(columns=columns, data=data) for key, (columns, data) in tables.items()}
        logged.update({key: wandb.Image(str(path)) for key, path in images.items()})
        run.log(logged)
        run.finish()
    except Exception as err:
        warnings.warn(f"the W&B report run could not be written ({type(err).__name__}: {err})", stacklevel=2)
        return None
    return rid


def _settings():
    import wandb

    return wandb.Settings(init_timeout=60, silent=True, console="off")


def logging_step(trainer: L.Trainer) -> int:
    """The step Lightning logs metrics at (batches that stepped, restored on resume)."""
    return trainer.fit_loop.epoch_loop._batches_that_stepped


def _wandb_loggers(trainer: L.Trainer) -> list[WandbLogger]:
    return [lg for lg in trainer.loggers if isinstance(lg, WandbLogger)]


def log_image(trainer: L.Trainer, key: str, image) -> None:
    """One image (a (C, H, W) tensor in [0, 1]) to every logger that takes images."""
    for lg in _wandb_loggers(trainer):
        lg.log_image(key, images=[image], step=logging_step(trainer))


def log_texts(trainer: L.Trainer, key: str, texts: list[str]) -> None:
    """Text samples as a table (step, sample) to every logger that takes tables."""
    step = logging_step(trainer)
    for lg in _wandb_loggers(trainer):
        lg.log_text(key, columns=["step", "sample"], data=[[step, t] for t in texts], step=step)


def log_table(trainer: L.Trainer, key: str, columns: list[str], rows: list[list]) -> None:
    """A table (e.g. source | reference | hypothesis) with a leading step column to every logger that takes tables."""
    step = logging_step(trainer)
    for lg in _wandb_loggers(trainer):
        lg.log_text(key, columns=["step", *columns], data=[[step, *row] for row in rows], step=step)


def log_evaluation(run_dir: Path, logger_cfg, values: dict, protocol: dict) -> None:
    """``gen-lightning evaluate``'s values: into the run's own W&B run (resumed by its id, as ``eval/<name>`` in the
    summary) or, for a run without one, a new run with ``job_type=eval``. Nothing for runs not tracked in W&B."""
    if not logger_cfg or not str(logger_cfg.get("_target_", "")).endswith("make_wandb_logger"):
        return
    import wandb

    id_file = RunDir(run_dir).wandb_id
    known = id_file.is_file()
    run = wandb.init(
        project=logger_cfg.get("project", "gen-lightning"),
        entity=logger_cfg.get("entity"),
        group=logger_cfg.get("group"),
        id=id_file.read_text().strip() if known else None,
        resume="allow" if known else None,
        job_type="train" if known else "eval",
        dir=str(run_dir),
        mode=logger_cfg.get("mode") or os.environ.get("WANDB_MODE") or "offline",
        settings=_settings(),
    )
    # val/fid -> eval/fid (the training value stays beside it); another split keeps its name: eval_test/bleu.
    run.summary.update(
        {k.replace("val/", "eval/", 1) if k.startswith("val/") else f"eval_{k}": v for k, v in values.items()}
    )
    run.config.update({"eval_protocol": protocol}, allow_val_change=True)
    run.finish()


def finish() -> None:
    """Close the W&B run (flushes the offline files); a no-op without one (W&B not even imported then)."""
    wandb = sys.modules.get("wandb")  # a run that never imported W&B has no W&B run to close
    if wandb is not None and wandb.run is not None:
        wandb.finish()
