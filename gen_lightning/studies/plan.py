"""A study's plan: every (run, seed) as one training config, composed once.

Run ``<name>_seed<k>`` is ``compose(common + run + protocol + budget + [seed, run_dir] + command-line overrides)``
(the order of ``spec.py``), trained in ``STUDY_DIR/<name>_seed<k>/``; with ``logger=wandb`` it also gets the
study's W&B group and tags. The plan is seed-major (one seed of every run first), so an interrupted study already
compares every model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from gen_lightning.loggers import wandb_config
from gen_lightning.studies.spec import StudyError, StudySpec


@dataclass
class PlannedRun:
    key: str  # directory name: <run>_seed<k>
    run: str
    seed: int
    run_dir: Path
    overrides: list[str]
    cfg: DictConfig | None = None
    error: str | None = None  # the config could not be composed (e.g. a model not installed)


def base_overrides(spec: StudySpec, run: str, seed: int, run_dir: Path, extra: list[str]) -> list[str]:
    return [
        *spec.common,
        *spec.runs[run],
        *spec.protocol,
        *spec.budget_overrides(),
        f"seed={seed}",
        f"run_dir={run_dir}",
        *extra,
    ]


def uses_wandb(cfg: DictConfig) -> bool:
    return wandb_config(cfg.get("logger")) is not None


def wandb_settings(spec: StudySpec, run: str) -> dict:
    """One W&B group per study; tags study and run (train.py adds family and dataset)."""
    return {"group": spec.name, "tags": [spec.name, run], "job_type": "train"}


def wandb_overrides(settings: dict) -> list[str]:
    return [
        f"logger.wandb.{k}=[{','.join(v)}]" if isinstance(v, list) else f"logger.wandb.{k}={v}"
        for k, v in settings.items()
    ]


def plan(spec: StudySpec, study_dir: Path, extra: list[str]) -> list[PlannedRun]:
    """Every (run, seed) in order, seed-major (one seed of every run first), each composed once."""
    from gen_lightning.config import compose

    planned = []
    for seed in spec.seeds:
        for run in spec.runs:
            key = f"{run}_seed{seed}"
            pr = PlannedRun(key, run, seed, study_dir / key, base_overrides(spec, run, seed, study_dir / key, extra))
            try:
                cfg = compose(pr.overrides)
                if uses_wandb(cfg):  # set here and recorded as overrides (one compose, not two)
                    settings = wandb_settings(spec, run)
                    wandb_config(cfg.logger).merge_with(settings)
                    pr.overrides += wandb_overrides(settings)
                pr.cfg = cfg
            except Exception as err:  # a config that cannot compose fails this run only
                pr.error = f"{type(err).__name__}: {err}"
            planned.append(pr)
    missing = {k for pr in planned if pr.cfg is not None for k in OmegaConf.missing_keys(pr.cfg)}
    if missing:
        raise StudyError(
            f"study '{spec.name}' needs values for {sorted(missing)} (??? in the config): pass them on the command "
            f"line, e.g. gen-lightning study {spec.source or spec.name} {sorted(missing)[0]}=..."
        )
    return planned
