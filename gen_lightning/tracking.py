"""Tracking: W&B set-up (offline by default, one run id per run directory, resumable history), and the one place
that knows how each logger takes samples (``log_image``, ``log_texts``, ``log_table``: an adapter per logger type,
W&B, TensorBoard, MLflow, CSV). Models and callbacks call these and never a logger's API; the loggers themselves
are built in ``gen_lightning/loggers.py``.

Two facts of W&B (0.31) shape its part:
- A resumed offline run writes a second ``offline-run-*`` directory whose internal ``_step`` restarts at 0, and
  W&B drops rows whose step is below the run's current step when both are synced. Every row is therefore logged
  with an explicit ``step`` (Lightning's logging step, which is checkpointed), so the resumed segment continues
  the step counter and syncing both segments loses no point.
- W&B must never stop training: if it cannot start (not logged in, server unreachable), a warning says so and the
  run goes on with its other outputs (checkpoints, metrics.json, sample PNGs).
"""

from __future__ import annotations

import csv
import os
import sys
import uuid
import warnings
from collections.abc import Mapping
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.loggers import CSVLogger, MLFlowLogger, TensorBoardLogger, WandbLogger
from lightning.pytorch.utilities import rank_zero_only

from gen_lightning.files import TEXT_SEPARATOR, write_texts
from gen_lightning.run_dir import RunDir, step_name


class StepWandbLogger(WandbLogger):
    """``WandbLogger`` that passes ``step=`` to ``wandb.log``, so resumed offline segments keep their steps, and
    keeps each validation metric's best and last value in the run summary (the W&B comparison of a study).

    ``metric_directions`` (``callbacks.directions.metric_directions``): ``"min"`` or ``"max"`` per ranked metric;
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


# ----- samples to every logger, each through its own API (models and callbacks never call a logger's API) ------


class WandbMedia:
    """Images as ``wandb.Image``, texts and tables as ``wandb.Table`` (with a leading step column)."""

    def __init__(self, logger: WandbLogger) -> None:
        self.logger = logger

    def image(self, key: str, image: torch.Tensor, step: int) -> None:
        self.logger.log_image(key, images=[image], step=step)

    def texts(self, key: str, texts: list[str], step: int) -> None:
        self.table(key, ["sample"], [[t] for t in texts], step)

    def table(self, key: str, columns: list[str], rows: list[list], step: int) -> None:
        self.logger.log_text(key, columns=["step", *columns], data=[[step, *row] for row in rows], step=step)


class TensorBoardMedia:
    """Images in TensorBoard's Images tab, texts and tables (as Markdown) in its Text tab."""

    def __init__(self, logger: TensorBoardLogger) -> None:
        self.writer = logger.experiment

    def image(self, key: str, image: torch.Tensor, step: int) -> None:
        self.writer.add_image(key, image, global_step=step)

    def texts(self, key: str, texts: list[str], step: int) -> None:
        # Four-space indentation: Markdown shows the samples verbatim (line breaks kept, nothing rendered).
        blocks = ["    " + t.replace("\n", "\n    ") for t in texts]
        self.writer.add_text(key, TEXT_SEPARATOR.join(blocks), global_step=step)

    def table(self, key: str, columns: list[str], rows: list[list], step: int) -> None:
        def cell(value) -> str:
            return str(value).replace("|", "\\|").replace("\n", " ")

        lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
        self.writer.add_text(key, "\n".join(lines), global_step=step)


class MlflowMedia:
    """Images with ``MlflowClient.log_image(key=, step=)`` (MLflow's image history), texts as text artifacts and
    tables with ``log_table``, both under ``<key>/stepNNNNNNN``."""

    def __init__(self, logger: MLFlowLogger) -> None:
        self.client, self.run_id = logger.experiment, logger.run_id

    def image(self, key: str, image: torch.Tensor, step: int) -> None:
        hwc = (image.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).cpu().numpy()
        self.client.log_image(self.run_id, hwc[..., 0] if hwc.shape[-1] == 1 else hwc, key=key, step=step)

    def texts(self, key: str, texts: list[str], step: int) -> None:
        self.client.log_text(self.run_id, TEXT_SEPARATOR.join(texts), f"{key}/{step_name(step)}.txt")

    def table(self, key: str, columns: list[str], rows: list[list], step: int) -> None:
        data = {c: [str(row[i]) for row in rows] for i, c in enumerate(columns)}
        with warnings.catch_warnings():  # pandas deprecations inside MLflow, nothing a user can act on
            warnings.simplefilter("ignore")
            self.client.log_table(self.run_id, data=data, artifact_file=f"{key}/{step_name(step)}.json")


class CsvMedia:
    """Files beside ``metrics.csv`` (``RUN_DIR/csv/media/<key>/stepNNNNNNN``): PNG, text, CSV."""

    def __init__(self, logger: CSVLogger) -> None:
        self.root = Path(logger.log_dir) / "media"

    def _path(self, key: str, step: int, suffix: str) -> Path:
        path = self.root / key / f"{step_name(step)}{suffix}"
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def image(self, key: str, image: torch.Tensor, step: int) -> None:
        from torchvision.utils import save_image

        save_image(image, self._path(key, step, ".png"))

    def texts(self, key: str, texts: list[str], step: int) -> None:
        write_texts(self._path(key, step, ".txt"), texts)

    def table(self, key: str, columns: list[str], rows: list[list], step: int) -> None:
        with open(self._path(key, step, ".csv"), "w", newline="", encoding="utf-8") as f:
            csv.writer(f).writerows([columns, *rows])


MEDIA = ((WandbLogger, WandbMedia), (TensorBoardLogger, TensorBoardMedia), (MLFlowLogger, MlflowMedia),
         (CSVLogger, CsvMedia))  # fmt: skip


def _to_loggers(trainer: L.Trainer, kind: str, *args) -> None:
    """Call ``kind`` (image, texts, table) of the adapter of every logger of ``trainer`` at the logging step. Samples
    never stop training: a logger that fails is warned about once and skipped from then on."""
    step = logging_step(trainer)
    for logger in trainer.loggers:
        adapter = next((media for cls, media in MEDIA if isinstance(logger, cls)), None)
        if adapter is None or getattr(logger, "_media_failed", False):
            continue
        try:
            getattr(adapter(logger), kind)(*args, step)
        except Exception as err:
            logger._media_failed = True
            warnings.warn(
                f"samples could not be logged to {type(logger).__name__} ({type(err).__name__}: {err}); they are "
                "still saved under RUN_DIR/samples/ and training continues",
                stacklevel=3,
            )


def log_image(trainer: L.Trainer, key: str, image: torch.Tensor) -> None:
    """One image (a (C, H, W) tensor in [0, 1], e.g. a sample grid) to every logger."""
    _to_loggers(trainer, "image", key, image)


def log_texts(trainer: L.Trainer, key: str, texts: list[str]) -> None:
    """Text samples to every logger (a table with a step column in W&B)."""
    _to_loggers(trainer, "texts", key, texts)


def log_table(trainer: L.Trainer, key: str, columns: list[str], rows: list[list]) -> None:
    """A table (e.g. source | reference | hypothesis) to every logger (with a leading step column in W&B)."""
    _to_loggers(trainer, "table", key, columns, rows)


def log_evaluation(run_dir: Path, logger_cfg, values: dict, protocol: dict) -> None:
    """``gen-lightning evaluate``'s values: into the run's own W&B run (resumed by its id, as ``eval/<name>`` in the
    summary) or, for a run without one, a new run with ``job_type=eval``. Nothing for runs not tracked in W&B."""
    from gen_lightning.loggers import wandb_config

    logger_cfg = wandb_config(logger_cfg)
    if logger_cfg is None:
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
