"""The experiment loggers of a run, built from ``cfg.logger``: W&B, CSV, TensorBoard, MLflow, or several at once.

Each chosen logger sits in ``cfg.logger`` under its own name (``logger=[wandb,csv]`` gives ``{wandb: ..., csv: ...}``,
the layout of lightning-hydra-template), so any number can be combined; ``logger_configs`` also reads the flat
layout (one ``_target_`` at the top) of run configs saved before that. Every logger is configured the same way:
named after the run directory, tagged with the model family and the dataset, given the resolved config as
hyperparameters by ``train.fit``, and handed the sample grids and texts by ``gen_lightning/tracking.py``.
"""

from __future__ import annotations

import importlib.util
import os
import warnings
from collections.abc import Mapping
from pathlib import Path

from hydra.utils import instantiate
from lightning.pytorch.loggers import Logger, MLFlowLogger, TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only

from gen_lightning.run_dir import RunDir

# MLflow 3 refuses its old ./mlruns file store by default; a local SQLite store is its own default now.
DEFAULT_MLFLOW_URI = "sqlite:///runs/mlflow.db"
DEFAULT_MLFLOW_ARTIFACTS = "runs/mlartifacts"

# Packages of the optional loggers (the ``loggers`` extra), by the factory that needs them.
REQUIRES = {"make_tensorboard_logger": "tensorboard", "make_mlflow_logger": "mlflow"}


class LoggerUnavailable(ValueError):
    """A chosen logger's package is not installed."""


def logger_configs(node: Mapping | None) -> dict[str, Mapping]:
    """``{name: config}`` of the chosen loggers (entries without ``_target_``, e.g. set to null, are skipped)."""
    if not node:
        return {}
    if "_target_" in node:  # a run config saved with one logger at the top
        return {str(node["_target_"]).rsplit(".", 1)[-1]: node}
    return {k: v for k, v in node.items() if isinstance(v, Mapping) and "_target_" in v}


def wandb_config(node: Mapping | None) -> Mapping | None:
    """The W&B logger's config among the chosen loggers, or None."""
    return next((c for c in logger_configs(node).values() if str(c["_target_"]).endswith("make_wandb_logger")), None)


def check_available(node: Mapping | None) -> None:
    """Refuse, before anything is written, a chosen logger whose package is missing."""
    for name, cfg in logger_configs(node).items():
        package = REQUIRES.get(str(cfg["_target_"]).rsplit(".", 1)[-1])
        if package and importlib.util.find_spec(package) is None:
            raise LoggerUnavailable(
                f"logger={name} needs the '{package}' package, which is not installed: "
                "pip install 'gen-lightning[loggers]' (or choose another logger, e.g. logger=csv)"
            )


def build_loggers(
    node: Mapping | None, run_dir: Path, tags: Mapping[str, str], metric_directions: Mapping[str, str] | None = None
) -> list[Logger]:
    """The chosen loggers, named after ``run_dir`` and tagged with ``tags`` (``{"family": ..., "dataset": ...}``)
    besides their own: as values where a logger's tags are a list (W&B, TensorBoard), as key: value in MLflow.
    W&B also gets ``metric_directions`` (its run summary keeps each ranked metric's best value).

    A logger whose service cannot start (W&B not logged in, an MLflow server down) is left out with a warning."""
    check_available(node)
    loggers = []
    for cfg in logger_configs(node).values():
        target = str(cfg["_target_"])
        if target.startswith("gen_lightning."):  # our factories take the run's name and tags
            own = cfg.get("tags")
            own = [] if own is None else own
            merged = {**tags, **own} if isinstance(own, Mapping) else sorted({*own, *tags.values()})
            extra = {"metric_directions": dict(metric_directions or {})} if target.endswith("make_wandb_logger") else {}
            logger = instantiate(cfg, save_dir=str(run_dir), name=run_dir.name, tags=merged, **extra)
        else:
            logger = instantiate(cfg)
        if logger is not None:
            loggers.append(logger)
    return loggers


def make_tensorboard_logger(save_dir: str, name: str, tags: list[str]) -> TensorBoardLogger:
    """TensorBoard event files in ``RUN_DIR/tensorboard/`` (a resumed run appends to the same directory). TensorBoard
    has no run names or tags: the run is its directory, and name and tags are written as the text ``run``."""
    logger = TensorBoardLogger(save_dir, name="tensorboard", version="", default_hp_metric=False)
    if rank_zero_only.rank == 0:
        logger.experiment.add_text("run", f"name: {name}  \ntags: {', '.join(tags)}", global_step=0)
    return logger


class ResumableMLFlowLogger(MLFlowLogger):
    """``MLFlowLogger`` whose hyperparameters may be logged again on resume: MLflow refuses to change a logged
    parameter, so values already in the run are skipped (a resume's changes are in RUN_DIR/resumes.jsonl)."""

    @rank_zero_only
    def log_hyperparams(self, params) -> None:
        from lightning.fabric.utilities.logger import _convert_params, _flatten_dict

        logged = self.experiment.get_run(self.run_id).data.params
        fresh = {k: v for k, v in _flatten_dict(_convert_params(params)).items() if k not in logged}
        if fresh:
            super().log_hyperparams(fresh)


def make_mlflow_logger(
    save_dir: str,
    name: str,
    tags: dict[str, str],
    experiment_name: str = "gen-lightning",
    tracking_uri: str | None = None,
    artifact_location: str | None = None,
) -> MLFlowLogger | None:
    """A started MLflow run (continued on resume: its id is kept in ``RUN_DIR/mlflow_run_id.txt``), or ``None``
    with a warning when the tracking store cannot be reached."""
    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_MLFLOW_URI
    if uri == DEFAULT_MLFLOW_URI:
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        artifact_location = artifact_location or str(Path(DEFAULT_MLFLOW_ARTIFACTS).resolve())
    id_file = RunDir(save_dir).mlflow_id
    logger = ResumableMLFlowLogger(
        experiment_name=experiment_name,
        run_name=name,
        tracking_uri=uri,
        tags={k: str(v) for k, v in tags.items()},
        artifact_location=artifact_location,
        run_id=id_file.read_text().strip() if id_file.is_file() else None,
    )
    if rank_zero_only.rank != 0:
        return logger
    try:
        with warnings.catch_warnings():  # SQLAlchemy deprecations inside MLflow's store, nothing a user can act on
            warnings.simplefilter("ignore")
            run_id = logger.run_id  # creates (or finds) the run now, so a failure shows here and not mid-training
    except Exception as err:
        warnings.warn(
            f"MLflow could not start ({type(err).__name__}: {err}); training continues without MLflow "
            f"(tracking_uri={uri}). Checkpoints, metrics.json and sample images are still written to the run "
            "directory.",
            stacklevel=2,
        )
        return None
    id_file.parent.mkdir(parents=True, exist_ok=True)
    id_file.write_text(f"{run_id}\n")
    return logger
