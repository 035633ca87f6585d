"""``fit(cfg)``: build data, model, callbacks, logger and trainer from config, train, resume, summarise.

Knows no concrete family: every object comes from its config group (``_target_``); the only shape facts that
flow from data to model are the data module's ``model_kwargs()``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import lightning as L
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities import rank_zero_only
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from omegaconf import DictConfig, OmegaConf

from gen_lightning import loggers, tracking
from gen_lightning.callbacks import ExactResume, FiniteLossGuard, RunSummary, SampleLogger
from gen_lightning.callbacks.checkpointing import LastCheckpoint
from gen_lightning.callbacks.overrides import OptimizerOverrides
from gen_lightning.callbacks.resume import seed_all
from gen_lightning.callbacks.summary import metric_directions
from gen_lightning.callbacks.validation import FinalValidation, step_schedule
from gen_lightning.metrics.protocol import EvaluationCallback
from gen_lightning.run import checkpoint as ckpt_io
from gen_lightning.run import init_from
from gen_lightning.run import run_dir as run_dirs
from gen_lightning.run.resume_policy import model_overrides
from gen_lightning.run.resume_policy import record as record_resume
from gen_lightning.run.run_dir import RunDir, RunDirError

log = logging.getLogger(__name__)


def prepare_run_dir(cfg: DictConfig) -> tuple[Path, Path | None]:
    """Check ``run_dir`` against ``resume`` and return it with the checkpoint to resume from (or None)."""
    run_dir = Path(cfg.run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise RunDirError(f"run_dir={run_dir} is a file, not a directory: choose another run_dir")
    existing = next(p for p in (run_dir, *run_dir.resolve().parents) if p.exists())
    if not os.access(existing, os.W_OK | os.X_OK):
        raise RunDirError(f"run_dir={run_dir} cannot be written ({existing} is not writable): choose another run_dir")
    last = RunDir(run_dir).last
    if cfg.resume:
        if not last.is_file():
            raise RunDirError(f"resume=true but '{last}' does not exist: nothing to resume in run_dir={run_dir}")
        return run_dir, last
    if last.exists():
        raise RunDirError(
            f"run_dir={run_dir} already holds a run ({last}); pass resume=true to continue it, "
            "or choose another run_dir (nothing was overwritten)"
        )
    return run_dir, None


def check_config(cfg: DictConfig) -> None:
    """Values no component checks before they do harm (a seed NumPy rejects mid-set-up, a learning rate of 0)."""
    if not isinstance(cfg.seed, int) or isinstance(cfg.seed, bool) or not 0 <= cfg.seed < 2**32:
        raise ValueError(f"seed must be an integer in [0, 2**32), got {cfg.seed!r}")
    for key, value in cfg.model.items():
        is_rate = key == "lr" or (key.startswith("lr_") and not key.endswith("_steps"))  # not lr_decay_steps
        if is_rate and isinstance(value, int | float) and value <= 0:
            raise ValueError(f"model.{key}={value}: a learning rate must be positive, or the weights never change")
    for key in ("max_steps", "max_epochs"):
        value = cfg.trainer.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < -1):
            raise ValueError(f"trainer.{key} must be an integer >= -1 (-1: no limit), got {value!r}")
    loggers.check_available(cfg.get("logger"))


def check_task(cfg: DictConfig) -> None:
    """The model, the data and the metric protocol must agree on the task (docs/CONTRACT.md), checked from their
    classes before anything is loaded or built; the message names the options that would fit."""
    from hydra.utils import get_class

    from gen_lightning.config import data_for, protocols_for
    from gen_lightning.tasks import describe, task_of

    model_cls, data_cls = get_class(cfg.model._target_), get_class(cfg.data._target_)
    task = task_of(model_cls)
    if task_of(data_cls) != task:
        fits = data_for(task)
        raise ValueError(
            f"the model {model_cls.__name__} does {describe(task)}, but the data ({data_cls.__name__}) provides "
            f"{describe(task_of(data_cls))}; "
            + (
                f"data configs that fit it: {', '.join(f'data={d}' for d in fits)}"
                if fits
                else "no data config fits it"
            )
        )
    if cfg.get("metrics") and "_target_" in cfg.metrics:
        protocol = get_class(cfg.metrics._target_)
        if task not in getattr(protocol, "tasks", ()):
            fits = protocols_for(task)
            raise ValueError(
                f"the metric protocol {protocol.__name__} does not score {describe(task)} models like "
                f"{model_cls.__name__}; " + ", ".join([*(f"metrics={p}" for p in fits), "metrics=none"]) + " would"
            )


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


def monitored(cfg: DictConfig, model) -> tuple[str, str]:
    """The run's monitored validation metric and its mode (``min``/``max``): ``checkpoint.monitor``/``mode``, else
    the model's ``monitor`` (a class attribute: ``model`` may be the class). best.ckpt and a search's objective
    follow it."""
    monitor = cfg.checkpoint.monitor or model.monitor[0]
    return monitor, cfg.checkpoint.mode or (model.monitor[1] if monitor == model.monitor[0] else "min")


def build_callbacks(cfg: DictConfig, run_dir: Path, model: L.LightningModule) -> list[L.Callback]:
    layout = RunDir(run_dir)
    monitor, mode = monitored(cfg, model)
    callbacks: list[L.Callback] = [
        ExactResume(validation_seed=cfg.seed),
        FiniteLossGuard(),
        SampleLogger(layout.samples, every_n_epochs=cfg.samples.every_n_epochs, seed=cfg.samples.seed),
        RunSummary(layout.metrics, extra={"monitor": monitor, "mode": mode, "num_params": num_params(model)}),
        LastCheckpoint(layout.last, every_n_train_steps=cfg.checkpoint.every_n_train_steps),
        FinalValidation(),  # the final weights are always validated, whatever the budget
        # best.ckpt by the monitored validation metric.
        ModelCheckpoint(
            dirpath=layout.checkpoints,
            filename=layout.best.stem,
            monitor=monitor,
            mode=mode,
            save_top_k=1,
            enable_version_counter=False,
        ),
    ]
    if cfg.get("metrics") and "_target_" in cfg.metrics:
        callbacks.append(instantiate(cfg.metrics))
    # Extra callbacks by name (debug presets, a search's pruning); an entry set to null is off.
    callbacks += [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c]
    return callbacks


def fit(cfg: DictConfig, resume_changes: dict | None = None) -> dict:
    """Train as configured; returns the run summary (also in RUN_DIR/metrics.json).

    ``resume_changes`` are the overrides a resume accepted (``resume_policy.resolve_for_resume``)."""
    check_task(cfg)
    check_config(cfg)
    run_dir, resume_from = prepare_run_dir(cfg)
    if rank_zero_only.rank == 0:
        run_dirs.lock(run_dir)  # one writer per run directory, until this process ends or the run is done
    try:
        return _fit(cfg, run_dir, resume_from, resume_changes or {})
    finally:
        tracking.finish()
        if rank_zero_only.rank == 0:
            run_dirs.release(run_dir)


def _fit(cfg: DictConfig, run_dir: Path, resume_from: Path | None, changes: dict) -> dict:
    layout = RunDir(run_dir)
    if rank_zero_only.rank == 0 and resume_from is None:
        OmegaConf.save(cfg, layout.config, resolve=True)
    if cfg.trainer.get("deterministic") and cfg.trainer.get("accelerator") in ("gpu", "cuda", "auto"):
        # Deterministic cuBLAS needs a fixed workspace; without it PyTorch raises at the first CUDA matmul.
        # Read when cuBLAS starts, so it must be set before the first one (DDP children inherit it).
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    seed_all(cfg.seed)

    pretrained = init_from.for_run(cfg, resume_from)
    datamodule = init_from.build_datamodule(cfg.data, pretrained)
    model = instantiate(cfg.model, **datamodule.model_kwargs(), _convert_="all")
    if resume_from is None and pretrained is not None:
        init_from.load_weights(model, pretrained)
    callbacks = build_callbacks(cfg, run_dir, model)
    if resume_from is not None:
        overrides = model_overrides(changes)
        ckpt_io.check_compatible(resume_from, model, allowed=overrides)
        if rank_zero_only.rank == 0:
            record_resume(run_dir, cfg, changes)
        if overrides:
            callbacks.append(OptimizerOverrides(sorted(f"model.{k}" for k in overrides)))
    chosen = build_logger(cfg, run_dir, model, metric_directions(model, callbacks))
    trainer = build_trainer(cfg, run_dir, callbacks, chosen, num_batches(datamodule))
    for logger in chosen:
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    # weights_only: the checkpoint was already read that way by check_compatible (no code runs from a file).
    trainer.fit(model, datamodule=datamodule, ckpt_path=str(resume_from) if resume_from else None, weights_only=True)
    summary = next(cb for cb in callbacks if isinstance(cb, RunSummary))
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
    try:
        return L.Trainer(
            **options,
            default_root_dir=str(run_dir),
            callbacks=callbacks,
            logger=logger or False,
            use_distributed_sampler=False,  # our samplers shard by rank themselves (exact resume, unpadded eval)
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
