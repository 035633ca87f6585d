"""A study's plan: every (run, seed) as one training config, composed once.

Run ``<name>_seed<k>`` is ``compose(common + run + protocol + budget + [seed, run_dir] + command-line overrides)``
(the order of ``spec.py``), trained in ``STUDY_DIR/<name>_seed<k>/``; with ``logger=wandb`` it also gets the
study's W&B group and tags. The plan is seed-major (one seed of every run first), so an interrupted study already
compares every model.

Every planned run is also checked as ``gen-lightning fit`` checks it before training (the model fits the data and
the metric protocol, the values are sane: ``run.checks.checked``, ``threads.check``), and the study's evaluation
variants must name parameters of its model: a run that fails these is known before anything trains, so the study
refuses to start and names every such run at once (``command.run_study``).
"""

from __future__ import annotations

import inspect
import re
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
    error: str | None = None  # the config cannot be composed or cannot be trained (e.g. a model not installed)


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
            except Exception as err:  # named with the run; command.run_study refuses the study
                pr.error = one_line(err)
            planned.append(pr)
    missing = {k for pr in planned if pr.cfg is not None for k in OmegaConf.missing_keys(pr.cfg)}
    if missing:
        raise StudyError(
            f"study '{spec.name}' needs values for {sorted(missing)} (??? in the config): pass them on the command "
            f"line, e.g. gen-lightning study {spec.source or spec.name} {sorted(missing)[0]}=..."
        )
    for pr in planned:
        if pr.cfg is not None:
            pr.error = trainable(spec, pr.cfg)
    return planned


def one_line(err: Exception) -> str:
    """An error as one line: Hydra's "Could not find 'model/x'" with its list of options folded in."""
    text = str(err).removeprefix("In 'config': ")
    options = re.search(r"Available options in '[^']+':\n((?:\t.*(?:\n|$))+)", text)
    line = text.split("\n")[0] + (f" (options: {', '.join(options.group(1).split())})" if options else "")
    if err.__cause__ is not None:  # Hydra's "Could not override 'model.x'." and OmegaConf's reason
        line = f"{line.rstrip('.')}: {str(err.__cause__).splitlines()[0]}"
    return line if isinstance(err, ValueError) else f"{type(err).__name__}: {line}"


def trainable(spec: StudySpec, cfg: DictConfig) -> str | None:
    """Why ``gen-lightning fit`` would refuse this run, or an evaluation variant could not apply to its model;
    None when neither."""
    from hydra.utils import get_class

    from gen_lightning.run import threads
    from gen_lightning.run.checks import checked

    try:
        checked(cfg, here=False)
        threads.check(cfg.get("threads", "auto"))
        parameters = inspect.signature(get_class(cfg.model._target_)).parameters
    except Exception as err:
        return one_line(err)
    if any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
        return None  # takes any keyword: only the checkpoint can tell
    for name, overrides in spec.evaluations.items():
        unknown = sorted({o.partition("=")[0].removeprefix("model.") for o in overrides} - set(parameters))
        if unknown:
            return (
                f"evaluation '{name}' sets model.{unknown[0]}, which is not a parameter of "
                f"{cfg.model._target_.rpartition('.')[2]} (its parameters: {', '.join(parameters)})"
            )
    return None
