"""``gen-lightning evaluate ckpt=PATH [metrics=... metrics.KEY=V model.KEY=V]``: image metrics of a checkpoint.

Uses the run's own data and metric protocol (RUN_DIR/config.yaml), with overrides: ``metrics=inception`` swaps
the protocol group, ``metrics.num_samples=10000`` changes one setting, ``model.sample_steps=10`` changes a
sampling hyperparameter of the loaded model (e.g. DDIM steps). Prints a table, writes
``<ckpt>.eval.json`` beside the checkpoint, and logs the values to the checkpoint's W&B run (resumed by its id)
or, for a checkpoint without one, to a new run with ``job_type=eval``.
"""

from __future__ import annotations

import os
from pathlib import Path

from hydra.utils import instantiate
from omegaconf import OmegaConf

from gen_lightning.callbacks.summary import write_json
from gen_lightning.checkpoint import load_module
from gen_lightning.config import config_dir
from gen_lightning.tracking import RUN_ID_FILE


def split_overrides(args: list[str]) -> tuple[dict, list[str], list[str]]:
    """``key=value`` args -> (plain options, metrics overrides, model overrides)."""
    options, metrics, model = {}, [], []
    for arg in args:
        if "=" not in arg:
            raise ValueError(f"expected key=value, got '{arg}'")
        key, value = arg.split("=", 1)
        if key == "metrics" or key.startswith("metrics."):
            metrics.append(arg)
        elif key.startswith("model."):
            model.append(arg[len("model.") :])
        else:
            options[key] = value
    return options, metrics, model


def metrics_config(saved, overrides: list[str]):
    cfg = saved.get("metrics") or OmegaConf.create({})
    for item in overrides:
        key, value = item.split("=", 1)
        if key == "metrics":
            path = config_dir() / "metrics" / f"{value}.yaml"
            if not path.is_file():
                choices = sorted(p.stem for p in path.parent.glob("*.yaml"))
                raise ValueError(f"unknown metrics option '{value}'; choose from {', '.join(choices)}")
            cfg = OmegaConf.load(path) or OmegaConf.create({})
        else:
            cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist([item[len("metrics.") :]]))
    if "_target_" not in cfg:
        raise ValueError("the run has no metric protocol (metrics=none): pass metrics=classifier or metrics=inception")
    return cfg


def log_to_wandb(run_dir: Path, saved, values: dict, protocol: dict) -> None:
    logger_cfg = saved.get("logger") or {}
    if not str(logger_cfg.get("_target_", "")).endswith("make_wandb_logger"):
        return  # the run was not tracked in W&B (logger=csv or none)
    import wandb

    id_file = run_dir / RUN_ID_FILE
    run = wandb.init(
        project=logger_cfg.get("project", "gen-lightning"),
        entity=logger_cfg.get("entity"),
        group=logger_cfg.get("group"),
        id=id_file.read_text().strip() if id_file.is_file() else None,
        resume="allow" if id_file.is_file() else None,
        job_type="train" if id_file.is_file() else "eval",
        dir=str(run_dir),
        mode=logger_cfg.get("mode") or os.environ.get("WANDB_MODE") or "offline",
        settings=wandb.Settings(silent=True, console="off", init_timeout=60),
    )
    run.summary.update({k.replace("val/", "eval/"): v for k, v in values.items()})
    run.config.update({"eval_protocol": protocol}, allow_val_change=True)
    run.finish()


def evaluate_command(args: list[str]) -> dict:
    from gen_lightning.metrics.evaluate import evaluate_module

    options, metric_overrides, model_overrides = split_overrides(args)
    if "ckpt" not in options:
        raise ValueError("usage: gen-lightning evaluate ckpt=PATH [metrics=...] [metrics.KEY=V] [model.KEY=V]")
    ckpt = Path(options["ckpt"])
    module = load_module(ckpt, map_location=options.get("device", "cpu"))
    run_dir = ckpt.resolve().parent.parent
    saved = OmegaConf.load(run_dir / "config.yaml") if (run_dir / "config.yaml").is_file() else None
    if saved is None:
        raise FileNotFoundError(f"the run config '{run_dir / 'config.yaml'}' of this checkpoint is missing")
    for item in model_overrides:
        key, value = item.split("=", 1)
        if key not in module.hparams:
            raise ValueError(f"model.{key} is not a hyperparameter of {type(module).__name__}")
        module.hparams[key] = OmegaConf.to_container(OmegaConf.from_dotlist([item]))[key]
    datamodule = instantiate(saved.data)
    datamodule.prepare_data()
    result = evaluate_module(module, datamodule, metrics_config(saved, metric_overrides))
    values = result["metrics"]
    width = max(len(k) for k in values)
    print(f"{'metric':<{width}}  value\n{'-' * width}  -----")
    for key, value in values.items():
        print(f"{key:<{width}}  {value:.6g}")
    out = ckpt.with_suffix(".eval.json")
    write_json(out, {"checkpoint": str(ckpt), **result})  # atomic: a crash never leaves half a file
    print(f"wrote {out}")
    log_to_wandb(run_dir, saved, values, result["protocol"])
    return result
