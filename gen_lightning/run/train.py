"""``fit(cfg)``: train a prepared run (``prepare.py``: resume, checks, data module, model, threads, the run directory
locked and laid out), with its callbacks, loggers and trainer (``trainer.py``) built from config; summarise, release
the lock.

Knows no concrete family: every object comes from its config group (``_target_``); the only shape facts that
flow from data to model are the data module's ``model_kwargs()``.
"""

from __future__ import annotations

import inspect
import logging
import os
import signal
from pathlib import Path

import lightning as L
from hydra.utils import get_class, instantiate
from lightning.pytorch.utilities import rank_zero_info, rank_zero_only
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf

from gen_lightning import loggers, tracking
from gen_lightning.callbacks import ExactResume, RunSummary
from gen_lightning.callbacks.checkpointing import LastCheckpoint, RunInterrupted, StopOnSignal
from gen_lightning.callbacks.directions import metric_directions
from gen_lightning.callbacks.overrides import OptimizerOverrides
from gen_lightning.config import instantiating
from gen_lightning.metrics.protocol import EvaluationCallback
from gen_lightning.run import prepare
from gen_lightning.run.trainer import build_trainer

log = logging.getLogger(__name__)


def family_and_dataset(model: L.LightningModule, cfg: DictConfig) -> tuple[str, str]:
    family = type(model).__module__.split(".")[1] if type(model).__module__.startswith("gen_lightning.") else "custom"
    data = cfg.data
    dataset = data.get("name") or data.get("source") or Path(str(data.get("path", "data"))).stem
    return family, str(dataset).replace("/", "_")


# The callbacks a run cannot do without (resume, metrics.json, signals): configurable, not removable.
REQUIRED_CALLBACKS = {"exact_resume": ExactResume, "run_summary": RunSummary, "last_checkpoint": LastCheckpoint,
                      "stop_on_signal": StopOnSignal}  # fmt: skip


def callback_configs(cfg: DictConfig) -> dict:
    """``cfg.callbacks`` by name (conf/callbacks/); a config saved before the group existed (its ``callbacks`` held
    only extras) gets the defaults it lacks, an entry set to null stays off."""
    from gen_lightning.config import config_dir

    # Unresolved: their ${...} name keys of the run's config, resolved once merged into it.
    defaults = OmegaConf.to_container(OmegaConf.load(config_dir() / "callbacks" / "default.yaml"), resolve=False)
    given = OmegaConf.to_container(cfg.get("callbacks") or OmegaConf.create({}), resolve=False)
    merged = {**{k: v for k, v in defaults.items() if k not in given}, **given}  # defaults first, in their order
    nodes = OmegaConf.to_container(OmegaConf.merge(cfg, {"callbacks": merged}).callbacks, resolve=True)
    return {k: nodes[k] for k in merged}


def build_callbacks(
    cfg: DictConfig, run_dir: Path, model: L.LightningModule, monitored: tuple[str, str]
) -> list[L.Callback]:
    """The run's callbacks from ``cfg.callbacks`` (conf/callbacks/default.yaml), each given the facts of the run
    its constructor takes: ``run_dir``, and the ``monitored`` metric and mode where the config leaves them null."""
    monitor, mode = monitored
    facts = {"run_dir": run_dir, "monitor": monitor, "mode": mode}
    callbacks = []
    for name, node in callback_configs(cfg).items():
        if name in REQUIRED_CALLBACKS and not node:
            raise ValueError(f"callbacks.{name} is part of every run (resume, metrics.json, signals): configure it, "
                             "do not remove it")  # fmt: skip
        if not node or "_target_" not in node:  # off (null), or an empty protocol (metrics=none)
            continue
        accepted = inspect.signature(get_class(node["_target_"]).__init__).parameters
        given = {k: v for k, v in facts.items() if k in accepted and node.get(k) is None}
        with instantiating(f"callbacks.{name}"):
            callbacks.append(instantiate(OmegaConf.create(node), **given, _convert_="all"))
    summary = next(cb for cb in callbacks if isinstance(cb, RunSummary))
    summary.extra |= {"monitor": monitor, "mode": mode}
    return callbacks


def fit(cfg: DictConfig, resume_changes: dict | None = None, overrides: list[str] | None = None) -> dict:
    """Train as configured; returns the run summary (also in RUN_DIR/metrics.json).

    The run is the one ``gen-lightning fit``'s preflight prepared in this process, or prepared now
    (``prepare.take``): ``overrides`` are a resume's command line, ``resume_changes`` a resume already resolved
    (``resume_policy.resolve_for_resume``)."""
    run = prepare.take(cfg, overrides, resume_changes)
    with run:  # holds the run directory's lock, released however the run ends
        try:
            return _fit(run)
        finally:
            tracking.finish()


def _fit(run: prepare.Run) -> dict:
    """Build the run's callbacks, loggers and trainer, train, and write the summary."""
    cfg, layout, model = run.cfg, run.dir, run.model
    callbacks = build_callbacks(cfg, layout.path, model, run.monitor)
    family, dataset = family_and_dataset(model, cfg)
    if cfg.trainer.get("deterministic") and cfg.trainer.get("accelerator") in ("gpu", "cuda", "auto"):
        # Deterministic cuBLAS needs a fixed workspace; without it PyTorch raises at the first CUDA matmul.
        # Read when cuBLAS starts, so it must be set before the first one (DDP children inherit it).
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    if rank_zero_only.rank == 0:
        for line in run.speed_options:
            log.info(line)
    rank_zero_info(f"torch threads: {run.threads['threads']} ({run.threads['why']})")  # chosen by prepare
    summary = next(cb for cb in callbacks if isinstance(cb, RunSummary))
    summary.extra |= {"threads": run.threads, "num_params": run.num_params}
    stop = next(cb for cb in callbacks if isinstance(cb, StopOnSignal))
    if run.model_overrides:  # a resume's new optimizer settings, set in the restored optimizers
        callbacks.append(OptimizerOverrides(sorted(f"model.{k}" for k in run.model_overrides)))
    directions = metric_directions(model, callbacks)
    chosen = loggers.build_loggers(cfg.get("logger"), layout.path, {"family": family, "dataset": dataset}, directions)
    for logger in chosen:
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    trainer = build_trainer(cfg, layout.path, callbacks, chosen, run.datamodule)
    # weights_only: the checkpoint was already read that way by prepare (no code runs from a file).
    ckpt_path = str(run.resume_from) if run.resume_from else None
    try:
        trainer.fit(model, datamodule=run.datamodule, ckpt_path=ckpt_path, weights_only=True)
    except (RunInterrupted, SIGTERMException) as err:
        interrupted = stop.interruption() or RunInterrupted(signal.SIGTERM, stop.saved_step, layout.last)
        if trainer.is_global_zero:
            summary.write(trainer, "interrupted", f"{signal.Signals(interrupted.signum).name}: {interrupted}")
        raise interrupted from err
    if trainer.interrupted:
        return summary.summary(trainer, "interrupted")
    summary.finish_evaluations(trainer, model, [cb for cb in callbacks if isinstance(cb, EvaluationCallback)])
    # ModelCheckpoint skips its end-of-training save when a periodic one already wrote last.ckpt, which can leave
    # last.ckpt some steps behind the final weights.
    trainer.save_checkpoint(layout.last, weights_only=False)
    if trainer.is_global_zero:
        # Only now: every file of the run is written (a study skips completed runs forever).
        summary.write(trainer, "completed")
    return summary.summary(trainer, "completed")
