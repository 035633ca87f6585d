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
from omegaconf import DictConfig, OmegaConf, open_dict

from gen_lightning import checkpoint as ckpt_io
from gen_lightning import init_from, tracking
from gen_lightning.callbacks import ExactResume, FiniteLossGuard, RunSummary, SampleLogger
from gen_lightning.callbacks.checkpointing import LastCheckpoint
from gen_lightning.callbacks.resume import seed_all
from gen_lightning.run_dir import RunDir

log = logging.getLogger(__name__)


class RunDirError(RuntimeError):
    """The run directory does not fit the request (already used, or nothing to resume)."""


def prepare_run_dir(cfg: DictConfig) -> tuple[Path, Path | None]:
    """Check ``run_dir`` against ``resume`` and return it with the checkpoint to resume from (or None)."""
    run_dir = Path(cfg.run_dir)
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


def build_logger(cfg: DictConfig, run_dir: Path, model: L.LightningModule):
    if not cfg.get("logger") or "_target_" not in cfg.logger:
        return None
    family, dataset = family_and_dataset(model, cfg)
    if cfg.logger._target_.endswith("make_wandb_logger"):
        tags = sorted({*cfg.logger.get("tags", []), family, dataset})
        return instantiate(cfg.logger, save_dir=str(run_dir), tags=tags, name=run_dir.name)
    return instantiate(cfg.logger)


def num_params(model: L.LightningModule) -> int:
    """Trainable parameters (EMA copies and frozen extractors excluded), for the study reports."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def build_callbacks(cfg: DictConfig, run_dir: Path, model: L.LightningModule) -> list[L.Callback]:
    layout = RunDir(run_dir)
    monitor = cfg.checkpoint.monitor or model.monitor[0]
    mode = cfg.checkpoint.mode or (model.monitor[1] if monitor == model.monitor[0] else "min")
    callbacks: list[L.Callback] = [
        ExactResume(validation_seed=cfg.seed),
        FiniteLossGuard(),
        SampleLogger(layout.samples, every_n_epochs=cfg.samples.every_n_epochs, seed=cfg.samples.seed),
        RunSummary(layout.metrics, extra={"monitor": monitor, "mode": mode, "num_params": num_params(model)}),
        LastCheckpoint(layout.last, every_n_train_steps=cfg.checkpoint.every_n_train_steps),
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
    return callbacks


def fit(cfg: DictConfig) -> dict:
    """Train as configured; returns the run summary (also in RUN_DIR/metrics.json)."""
    check_task(cfg)
    run_dir, resume_from = prepare_run_dir(cfg)
    if rank_zero_only.rank == 0:
        run_dir.mkdir(parents=True, exist_ok=True)
        if resume_from is None:
            OmegaConf.save(cfg, RunDir(run_dir).config, resolve=True)
    if cfg.trainer.get("deterministic") and cfg.trainer.get("accelerator") in ("gpu", "cuda", "auto"):
        # Deterministic cuBLAS needs a fixed workspace; without it PyTorch raises at the first CUDA matmul.
        # Read when cuBLAS starts, so it must be set before the first one (DDP children inherit it).
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    seed_all(cfg.seed)

    pretrained = init_from.for_run(cfg, resume_from)
    datamodule = init_from.build_datamodule(cfg.data, pretrained)
    model = instantiate(cfg.model, **datamodule.model_kwargs(), _convert_="all")
    if resume_from is not None:
        ckpt_io.check_compatible(resume_from, model)
    elif pretrained is not None:
        init_from.load_weights(model, pretrained)

    callbacks = build_callbacks(cfg, run_dir, model)
    logger = build_logger(cfg, run_dir, model)
    trainer = L.Trainer(
        # Plain containers: Lightning type-checks some arguments (max_time={minutes: 4} must be a dict).
        **OmegaConf.to_container(cfg.trainer, resolve=True),
        default_root_dir=str(run_dir),
        callbacks=callbacks,
        logger=logger if logger is not None else False,
        use_distributed_sampler=False,  # our samplers shard by rank themselves (exact resume, unpadded eval)
    )
    if logger is not None:
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    try:
        # weights_only: the checkpoint was already read that way by check_compatible (no code runs from a file).
        trainer.fit(
            model, datamodule=datamodule, ckpt_path=str(resume_from) if resume_from else None, weights_only=True
        )
        if not trainer.interrupted:
            # ModelCheckpoint skips its end-of-training save when a periodic one already wrote last.ckpt,
            # which can leave last.ckpt some steps behind the final weights.
            trainer.save_checkpoint(RunDir(run_dir).last, weights_only=False)
    finally:
        tracking.finish()
    summary = next(cb for cb in callbacks if isinstance(cb, RunSummary))
    evaluation = next((getattr(cb, "last_result", None) for cb in callbacks if hasattr(cb, "last_result")), None)
    if evaluation:  # the image metrics' final evaluation (on_train_end) and its protocol card
        summary.record(trainer, evaluation["metrics"])
        summary.extra["protocol"] = evaluation["protocol"]
    if trainer.is_global_zero:
        # Also when a run resumed from a checkpoint of its last step ends without on_train_end (the fit loop is
        # already done): metrics.json would keep the status of the interrupted process.
        summary.write(trainer, "completed")
    return summary.summary(trainer, "completed")


def resolve_for_resume(cfg: DictConfig, cli_overrides: list[str]) -> DictConfig:
    """On ``resume=true`` the run continues with its saved config; plain ``key=value`` overrides given on the
    command line (e.g. ``trainer.max_steps=2000``) still apply, config-group choices may not change."""
    saved_path = RunDir(cfg.run_dir).config
    if not saved_path.is_file():
        raise RunDirError(f"resume=true but '{saved_path}' does not exist: is run_dir={cfg.run_dir} a run directory?")
    saved = OmegaConf.load(saved_path)
    groups = {"model", "data", "trainer", "logger", "metrics", "experiment"}
    dotted = []
    for item in cli_overrides:
        key = item.split("=", 1)[0].lstrip("+~")
        if key in groups:
            raise RunDirError(f"cannot change the config group '{key}' when resuming run_dir={cfg.run_dir}")
        if key not in ("resume", "run_dir") and not key.startswith("hydra."):
            dotted.append(item.lstrip("+"))
    merged = OmegaConf.merge(saved, OmegaConf.from_dotlist(dotted))
    with open_dict(merged):
        merged.resume = True
        merged.run_dir = cfg.run_dir
    return merged
