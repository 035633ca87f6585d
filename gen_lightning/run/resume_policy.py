"""What ``gen-lightning fit run_dir=DIR resume=true [overrides]`` may change, decided per key (README, "Resume").

A resumed run continues with its saved ``config.yaml``. The command line may repeat the run's own config groups
(``model=dcgan``: accepted when it composes to what the run has) and change:

- the budget and the bookkeeping: ``trainer.max_steps/max_epochs/max_time``, validation and logging intervals, the
  progress bar, ``checkpoint.*``, ``samples.*``, ``metrics.every_n_epochs``, W&B ``logger.wandb.tags/group/mode``,
  ``data.num_workers``, ``data.eval_batch_size``: applied, the run stays exact;
- the hardware: ``trainer.accelerator/devices/num_nodes/strategy/precision/deterministic``, ``threads``: applied, with a
  warning that the continuation is no longer bit-identical to an uninterrupted run;
- the model's constructor arguments ``model.KEY``: applied for real: the model is rebuilt with them, and optimizer
  settings (learning rates, betas, weight decay) are set in the restored optimizers and schedules
  (``OptimizerOverrides``); a change of a weight's shape is refused when the checkpoint is checked.

Everything else is refused before anything is written: another seed, other data (``data.*``: another text would
bring another vocabulary under the model), another metric protocol, another W&B project, another config group.
Every accepted change is recorded in ``RUN_DIR/resumes.jsonl`` and ``config.yaml`` is updated to the config the
run now has.
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

from hydra.utils import get_class
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf, open_dict

from gen_lightning.files import remove_stale_temporaries
from gen_lightning.run import checkpoint as ckpt_io
from gen_lightning.run import declared
from gen_lightning.run_dir import RunDir, RunDirError, check_unlocked

GROUPS = ("model", "data", "trainer", "logger", "metrics", "experiment", "debug", "hparams_search")
EXACT = (
    "trainer.max_steps", "trainer.max_epochs", "trainer.max_time", "trainer.limit_train_batches",
    "trainer.limit_val_batches", "trainer.val_check_interval", "trainer.check_val_every_n_epoch",
    "trainer.log_every_n_steps", "trainer.enable_progress_bar", "trainer.enable_model_summary",
    "checkpoint.", "samples.", "metrics.every_n_epochs", "logger.wandb.tags", "logger.wandb.group",
    "logger.wandb.mode", "logger.wandb.job_type", "logger.tags", "logger.group", "logger.mode", "logger.job_type",
    "data.num_workers", "data.eval_batch_size", "validation.", "callbacks.",
)  # fmt: skip
HARDWARE = (
    "trainer.accelerator", "trainer.devices", "trainer.num_nodes", "trainer.strategy", "trainer.precision",
    "trainer.deterministic", "threads",
)  # fmt: skip
IGNORED = ("resume", "run_dir")


@dataclass
class Resume:
    """What a run continues from: see ``resume``."""

    cfg: DictConfig  # the config the run continues with
    changes: dict  # what the command line changed: {key: [saved, new]}
    path: Path | None  # the checkpoint it continues from (None: a new run)
    ckpt: dict | None  # that checkpoint, read once


def resume(cfg: DictConfig, overrides: list[str] | None, changes: dict | None) -> Resume:
    """The config the run continues with and what its command line changed (``resolve_for_resume``, when
    ``overrides`` are the command line of ``resume=true``; else ``cfg`` is taken as resolved, with ``changes`` what
    that resolution accepted), and the checkpoint to continue from, read once (``checkpoint_to_resume``; none for a
    new run), with budget left to train."""
    if cfg.resume and overrides is not None:
        cfg, changes = resolve_for_resume(cfg, list(overrides))
    path, ckpt = checkpoint_to_resume(cfg)
    if ckpt is not None:
        check_budget(cfg, ckpt, path)
    return Resume(cfg, dict(changes or {}), path, ckpt)


def _matches(key: str, patterns) -> bool:
    return any(key == p or (p.endswith(".") and key.startswith(p)) for p in patterns)


def _get(cfg: DictConfig, key: str):
    return OmegaConf.select(cfg, key, default="<absent>", throw_on_missing=False)


def _plain(node):
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node


def resolve_for_resume(cfg: DictConfig, cli_overrides: list[str]) -> tuple[DictConfig, dict]:
    """The config a resumed run continues with, and the accepted changes ``{key: [saved, new]}``.

    ``cfg`` is the config composed from the command line; ``cli_overrides`` are its overrides as typed."""
    run = RunDir(cfg.run_dir)
    if not run.config.is_file():
        raise RunDirError(f"resume=true but '{run.config}' does not exist: is run_dir={cfg.run_dir} a run directory?")
    saved = declared.load_config(run.config)
    changes, hardware = {}, []
    for item in cli_overrides:
        key = item.split("=", 1)[0].lstrip("+~")
        if key in IGNORED or key.startswith("hydra"):
            continue
        if key in GROUPS:
            if key in ("experiment", "debug", "hparams_search"):
                raise RunDirError(f"'{key}=' cannot be given when resuming run_dir={cfg.run_dir}: it changes the run")
            taken = key == "model" and decided_by_checkpoint(cfg, saved)  # the sizes init_from took
            if _plain(cfg[key]) != _plain(saved.get(key)) and not taken:
                raise RunDirError(
                    f"cannot change the config group '{key}' when resuming run_dir={cfg.run_dir}: '{item}' composes to "
                    "another configuration than the run's (repeat the run's own command line, or start a new run_dir)"
                )
            continue
        old, new = _plain(_get(saved, key)), _plain(_get(cfg, key))
        if old == new:
            continue
        if _matches(key, HARDWARE):
            hardware.append(key)
        elif not (_matches(key, EXACT) or key.startswith("model.")) or key == "model._target_":
            raise RunDirError(
                f"'{item}' cannot change when resuming run_dir={cfg.run_dir} (it was {old!r}): {_why(key)}; nothing "
                "was written. A resume may change the budget, intervals, hardware and model.* settings (see README)"
            )
        changes[key] = [old, new]
    if hardware:
        warnings.warn(
            f"resuming with other {', '.join(hardware)}: the run continues, but no longer bit for bit as an "
            "uninterrupted run would have",
            stacklevel=2,
        )
    merged = OmegaConf.merge(saved, OmegaConf.from_dotlist([f"{k}={json.dumps(v[1])}" for k, v in changes.items()]))
    with open_dict(merged):
        merged.resume = True
        merged.run_dir = cfg.run_dir
    return merged, changes


def decided_by_checkpoint(composed: DictConfig, saved: DictConfig) -> bool:
    """Whether the model group ``composed`` from a resume's command line differs from the run's ``saved`` config
    only in what ``init_from`` took from its checkpoint (``init_from.take_shape``): the group then is the run's own."""
    init_shape = getattr(get_class(saved.model._target_), "init_shape", None)
    if not saved.get("init_from") or init_shape is None or composed.model.get("_target_") != saved.model._target_:
        return False
    keys = set(init_shape(saved.model))
    return all(composed.model.get(k) == saved.model.get(k) for k in (set(composed.model) | set(saved.model)) - keys)


def _why(key: str) -> str:
    if key == "seed":
        return "another seed would be another run"
    if key.startswith("data."):
        return "other data (another text, another vocabulary, another split) under the trained model"
    if key.startswith("metrics."):
        return "another metric protocol would make the run's history incomparable"
    if key.startswith("logger."):
        return "the run's W&B run lives in its project"
    return "the run's checkpoint holds state made under it"


def check_budget(cfg: DictConfig, ckpt: dict, path: Path) -> None:
    """A resume must leave something to do: ``trainer.max_steps`` below the steps already done is refused."""
    done, budget = int(ckpt.get("global_step", 0)), cfg.trainer.get("max_steps")
    if isinstance(budget, int) and budget != -1 and budget < done:
        raise RunDirError(
            f"trainer.max_steps={budget} is below the {done} steps this run has done ({path}): a resume can only "
            f"continue, so give trainer.max_steps above {done} (nothing was written)"
        )


def checkpoint_to_resume(cfg: DictConfig) -> tuple[Path | None, dict | None]:
    """Check ``run_dir`` against ``resume`` and return the checkpoint to resume from and its content, read once
    (``(None, None)`` for a new run).

    A run directory another live process holds is refused first (``run_dir.check_unlocked``). A resume removes
    what writers killed mid-write left (temporary files beside the checkpoints), and when
    ``last.ckpt`` is missing, cut short or corrupt it continues from the newest readable checkpoint of the run and
    says so."""
    layout = RunDir(cfg.run_dir)
    if layout.path.exists() and not layout.path.is_dir():
        raise RunDirError(f"run_dir={layout.path} is a file, not a directory: choose another run_dir")
    existing = next(p for p in (layout.path, *layout.path.resolve().parents) if p.exists())
    if not os.access(existing, os.W_OK | os.X_OK):
        raise RunDirError(
            f"run_dir={layout.path} cannot be written ({existing} is not writable): choose another run_dir"
        )
    if not cfg.resume:
        if layout.last.exists():
            raise RunDirError(
                f"run_dir={layout.path} already holds a run ({layout.last}); pass resume=true to continue it, "
                "or choose another run_dir (nothing was overwritten)"
            )
        return None, None
    if rank_zero_only.rank == 0:  # the other ranks of a DDP run start under their rank 0's lock
        check_unlocked(layout.path)  # a live writer's checkpoints and temporary files are its own
    for folder in (layout.path, layout.checkpoints):
        for stale in remove_stale_temporaries(folder):
            warnings.warn(f"removed {stale}, a file left by a write that was cut short", stacklevel=2)
    candidates = sorted(layout.checkpoints.glob("*.ckpt"), key=lambda p: (p != layout.last, -p.stat().st_mtime))
    if not candidates:
        raise RunDirError(f"resume=true but '{layout.last}' does not exist: nothing to resume in run_dir={layout.path}")
    problems = []
    for path in candidates:
        try:
            ckpt = ckpt_io.read(path)
        except ckpt_io.CheckpointError as err:
            if "not a checkpoint this tool trusts" in str(err):
                raise
            problems.append(f"{path.name}: {err}")
            continue
        if problems:
            warnings.warn(
                f"resuming from {path} (step {ckpt.get('global_step', '?')}), the newest readable checkpoint of the "
                f"run, because {'; '.join(problems)}",
                stacklevel=2,
            )
        return path, ckpt
    raise ckpt_io.CheckpointError(f"no checkpoint of run_dir={layout.path} can be read ({'; '.join(problems)})")


def model_overrides(changes: dict) -> dict:
    """The accepted ``model.KEY`` changes as constructor arguments."""
    return {k.removeprefix("model."): v[1] for k, v in changes.items() if k.startswith("model.")}
