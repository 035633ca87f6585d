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
import time
import warnings
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict

from gen_lightning.files import append_jsonl
from gen_lightning.run import declared, init_from
from gen_lightning.run_dir import RunDir, RunDirError, save_config

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
            taken = key == "model" and init_from.decided_by_checkpoint(cfg, saved)  # the sizes init_from took
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


def record(run_dir: str | Path, cfg: DictConfig, changes: dict) -> None:
    """Append the accepted changes to ``resumes.jsonl`` and write the run's current ``config.yaml``."""
    run = RunDir(run_dir)
    entry = {"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "changes": changes}
    append_jsonl(run.resumes, entry)
    if changes:
        save_config(cfg, run.config)


def model_overrides(changes: dict) -> dict:
    """The accepted ``model.KEY`` changes as constructor arguments."""
    return {k.removeprefix("model."): v[1] for k, v in changes.items() if k.startswith("model.")}
