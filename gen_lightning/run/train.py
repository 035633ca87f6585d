"""``fit(cfg)``: train a prepared run (``prepare.py``: checks, resume, data module, model, lock), with its
callbacks, loggers and trainer built from config; record the resume, summarise, release the lock.

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
from lightning.pytorch.callbacks import ProgressBar
from lightning.pytorch.utilities import rank_zero_only
from lightning.pytorch.utilities.exceptions import MisconfigurationException, SIGTERMException
from omegaconf import DictConfig, OmegaConf

from gen_lightning import loggers, tracking
from gen_lightning import run_dir as run_dirs
from gen_lightning.callbacks import ExactResume, RunSummary
from gen_lightning.callbacks.checkpointing import AtomicCheckpointIO, LastCheckpoint, RunInterrupted, StopOnSignal
from gen_lightning.callbacks.overrides import OptimizerOverrides
from gen_lightning.callbacks.summary import metric_directions
from gen_lightning.callbacks.validation import step_schedule
from gen_lightning.metrics.protocol import EvaluationCallback
from gen_lightning.run import fingerprint, prepare, threads
from gen_lightning.run.prepare import monitored
from gen_lightning.run.resume_policy import record as record_resume

log = logging.getLogger(__name__)


def family_and_dataset(model: L.LightningModule, cfg: DictConfig) -> tuple[str, str]:
    family = type(model).__module__.split(".")[1] if type(model).__module__.startswith("gen_lightning.") else "custom"
    data = cfg.data
    dataset = data.get("name") or data.get("source") or Path(str(data.get("path", "data"))).stem
    return family, str(dataset).replace("/", "_")


def build_logger(cfg: DictConfig, run_dir: Path, model: L.LightningModule, directions: dict[str, str]) -> list:
    """The chosen experiment loggers (``logger=wandb``, ``logger=[wandb,csv]``, ...; gen_lightning/loggers.py)."""
    family, dataset = family_and_dataset(model, cfg)
    tags = {"family": family, "dataset": dataset}
    return loggers.build_loggers(cfg.get("logger"), run_dir, tags, metric_directions=directions)


def num_params(model: L.LightningModule) -> int:
    """Trainable parameters (EMA copies and frozen extractors excluded), for the study reports."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


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


def build_callbacks(cfg: DictConfig, run_dir: Path, model: L.LightningModule) -> list[L.Callback]:
    """The run's callbacks from ``cfg.callbacks`` (conf/callbacks/default.yaml), each given the facts of the run
    its constructor takes: ``run_dir``, and ``monitor``/``mode`` where the config leaves them null."""
    monitor, mode = monitored(cfg, model)
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
        callbacks.append(prepare.build(f"callbacks.{name}", OmegaConf.create(node), **given))
    summary = next(cb for cb in callbacks if isinstance(cb, RunSummary))
    summary.extra.update(monitor=monitor, mode=mode, num_params=num_params(model))
    return callbacks


def fit(cfg: DictConfig, resume_changes: dict | None = None, overrides: list[str] | None = None) -> dict:
    """Train as configured; returns the run summary (also in RUN_DIR/metrics.json).

    The run is the one ``gen-lightning fit``'s preflight prepared in this process, or prepared now
    (``prepare.take``): ``overrides`` are a resume's command line, ``resume_changes`` a resume already resolved
    (``resume_policy.resolve_for_resume``)."""
    run = prepare.take(cfg, overrides, resume_changes)
    try:
        return _fit(run)
    finally:
        tracking.finish()
        if rank_zero_only.rank == 0:
            run_dirs.release(run.dir.path)


def _fit(run: prepare.Run) -> dict:
    cfg, layout, model = run.cfg, run.dir, run.model
    if rank_zero_only.rank == 0 and run.resume_from is None:
        run_dirs.save_config(cfg, layout.config)
        fingerprint.record(cfg.data, layout.data_fingerprint)
    if cfg.trainer.get("deterministic") and cfg.trainer.get("accelerator") in ("gpu", "cuda", "auto"):
        # Deterministic cuBLAS needs a fixed workspace; without it PyTorch raises at the first CUDA matmul.
        # Read when cuBLAS starts, so it must be set before the first one (DDP children inherit it).
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    if rank_zero_only.rank == 0:
        for line in run.speed_options:
            log.info(line)
    callbacks = build_callbacks(cfg, layout.path, model)
    chosen_threads = threads.apply(cfg, num_params(model))  # torch's intra-op threads (run/threads.py)
    if run.resume_from is not None:
        if rank_zero_only.rank == 0:
            record_resume(layout.path, cfg, run.changes)
        if run.model_overrides:
            callbacks.append(OptimizerOverrides(sorted(f"model.{k}" for k in run.model_overrides)))
    chosen = build_logger(cfg, layout.path, model, metric_directions(model, callbacks))
    trainer = build_trainer(cfg, layout.path, callbacks, chosen, num_batches(run.datamodule))
    for logger in chosen:
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    summary = next(cb for cb in callbacks if isinstance(cb, RunSummary))
    summary.extra["threads"] = chosen_threads
    stop = next(cb for cb in callbacks if isinstance(cb, StopOnSignal))
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
    finish_evaluations(trainer, model, callbacks, summary)
    # ModelCheckpoint skips its end-of-training save when a periodic one already wrote last.ckpt, which can leave
    # last.ckpt some steps behind the final weights.
    trainer.save_checkpoint(layout.last, weights_only=False)
    if trainer.is_global_zero:
        # Only now: every file of the run is written (a study skips completed runs forever).
        summary.write(trainer, "completed")
    return summary.summary(trainer, "completed")


def num_batches(datamodule) -> int | None:
    """Batches of one training epoch (None for a loader without a length)."""
    try:
        return len(datamodule.train_dataloader())
    except TypeError:
        return None


def build_trainer(
    cfg: DictConfig, run_dir: Path, callbacks: list, logger: list, epoch_batches: int | None
) -> L.Trainer:
    options = OmegaConf.to_container(cfg.trainer, resolve=True)  # plain: Lightning type-checks some arguments
    # Options given as object configs (``trainer.profiler: {_target_: ...SimpleProfiler, dirpath: ...}``) are built.
    options.update({k: instantiate(v) for k, v in options.items() if isinstance(v, dict) and "_target_" in v})
    # Epochs longer than validation.every_n_steps batches (a text corpus) also validate on that step schedule.
    options.update(step_schedule(options, epoch_batches, cfg.get("validation", {}).get("every_n_steps")))
    if not options.get("enable_progress_bar", True):  # Lightning refuses a progress bar callback then
        callbacks = [cb for cb in callbacks if not isinstance(cb, ProgressBar)]
    try:
        return L.Trainer(
            **options,
            default_root_dir=str(run_dir),
            callbacks=callbacks,
            logger=logger or False,
            use_distributed_sampler=False,  # our samplers shard by rank themselves (exact resume, unpadded eval)
            plugins=[AtomicCheckpointIO()],  # checkpoints written whole or not at all, in their own folder
        )
    except (TypeError, ValueError, MisconfigurationException) as err:
        raise ValueError(f"the trainer settings do not fit Lightning's Trainer: {err}") from err


def finish_evaluations(trainer: L.Trainer, model: L.LightningModule, callbacks: list, summary: RunSummary) -> None:
    """Record the metric protocols' final evaluation; run it if training ended without one (a run resumed from a
    checkpoint of its last step ends without ``on_train_end``, so a run killed during its final evaluation would
    otherwise never get one)."""
    for cb in callbacks:
        if not isinstance(cb, EvaluationCallback) or not cb.accepts(model):
            continue
        if cb.last_result is None or cb.last_result["protocol"].get("global_step") != trainer.global_step:
            model.to(trainer.strategy.root_device)
            cb.on_train_end(trainer, model)
        if cb.last_result:
            summary.record(trainer, cb.last_result["metrics"])
            summary.extra["protocol"] = cb.last_result["protocol"]
