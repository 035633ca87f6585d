"""The study file: its schema, validated into a ``StudySpec``.

A study file (YAML with a top-level ``study:`` key, see ``experiments/image_families_quick.yaml``) names the runs
to compare and what they share, so the comparison is fair::

    study:
      name: image_families_quick        # output dir runs/studies/<name>/ and the W&B group
      description: ...                  # shown at the top of the report
      seeds: [0, 1, 2]                  # every run is trained once per seed
      budget: {max_epochs: 5}           # any of max_steps, max_epochs, max_time ("DD:HH:MM:SS", trainer.max_time)
      common: [data=digits, trainer=cpu, logger=wandb]      # Hydra overrides of every run
      protocol: [metrics=classifier, metrics.num_samples=1000]  # evaluation protocol of every run
      runs:                             # name -> Hydra overrides of that run
        vae: [model=vae]
        ddpm: [model=ddpm, model.hidden_dim=32]
      evaluations:                      # optional: sampling variants evaluated from each trained checkpoint
        ddim_10: [model.sampler=ddim, model.sample_steps=10]
      evaluate_checkpoint: last         # last | best: the checkpoint the evaluations load
      report:                           # optional
        metrics: [val/fid_clf]          # columns of the report's main table
        frontier: {baselines: [vae]}    # text studies: the runs whose BLEU-5/Self-BLEU-5 curves the others face
      references:                       # optional: published numbers shown beside ours
        - {run: gpt, metric: val/loss, value: 1.88, source: nanoGPT README}

Overrides are applied in the order common, run, protocol, budget, then the command line's, so the protocol and
the budget win over anything a run sets; a run may not even mention them (nor the seed, the run directory or
the logger): what is shared is declared once. A budget sets ``trainer.max_steps``, ``trainer.max_epochs`` and
``trainer.max_time`` (the limits it does not name are -1, none). Lightning counts the steps of every optimizer
in ``global_step`` (a GAN with two optimizers reaches ``max_steps`` after half the batches), so studies across
families give their budget in epochs or wall-clock time, where every model sees the same data or the same time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
MAX_TIME = re.compile(r"^\d{2}:\d{2}:\d{2}:\d{2}$")
KEYS = {
    "name",
    "description",
    "seeds",
    "budget",
    "common",
    "protocol",
    "runs",
    "evaluations",
    "evaluate_checkpoint",
    "report",
    "references",
}
BUDGET_KEYS = ("max_steps", "max_epochs", "max_time")
REPORT_KEYS = ("metrics", "frontier")
# What every run of a study shares: a run that set these would make the comparison unfair.
SHARED = ("seed", "run_dir", "resume", "metrics", "logger", *(f"trainer.{k}" for k in BUDGET_KEYS))


class StudyError(ValueError):
    """The study file, its arguments or its directory do not fit; the message says what to change."""


def _overrides(value, where: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return value.split()
    if not isinstance(value, list) or not all(isinstance(v, str) and "=" in v for v in value):
        raise StudyError(f"{where} must be a list of Hydra overrides like [model=vae, model.lr=0.001], got {value!r}")
    return list(value)


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


@dataclass(frozen=True)
class StudySpec:
    name: str
    seeds: list[int]
    budget: dict
    runs: dict[str, list[str]]
    common: list[str] = field(default_factory=list)
    protocol: list[str] = field(default_factory=list)
    evaluations: dict[str, list[str]] = field(default_factory=dict)
    evaluate_checkpoint: str = "last"
    description: str = ""
    report: dict = field(default_factory=dict)
    references: list[dict] = field(default_factory=list)
    source: str = ""

    def budget_overrides(self) -> list[str]:
        """``trainer.max_*`` overrides; an unset limit is -1 (none), so only the budget's limits apply."""
        out = [f"trainer.max_steps={self.budget.get('max_steps', -1)}"]
        out.append(f"trainer.max_epochs={self.budget.get('max_epochs', -1)}")
        if "max_time" in self.budget:
            out.append(f"++trainer.max_time='{self.budget['max_time']}'")
        return out

    def to_dict(self) -> dict:
        """The spec for study.json, which sorts mapping keys: the order of runs and evaluations is kept apart."""
        out = {k: getattr(self, k) for k in sorted(KEYS | {"source"})}
        return {**out, "run_order": list(self.runs), "evaluation_order": list(self.evaluations)}


def _check_names(names, what: str) -> None:
    for name in names:
        if not isinstance(name, str) or not NAME.match(name):
            raise StudyError(f"{what} name {name!r} must be letters, digits, '_', '.' or '-' (it names a directory)")


def _check_budget(budget) -> dict:
    if not isinstance(budget, dict) or not budget or set(budget) - set(BUDGET_KEYS):
        raise StudyError(f"study.budget must set some of {BUDGET_KEYS}, e.g. {{max_steps: 300}}, got {budget!r}")
    for key in ("max_steps", "max_epochs"):
        if key in budget and (not isinstance(budget[key], int) or budget[key] < 1):
            raise StudyError(f"study.budget.{key} must be a positive integer, got {budget[key]!r}")
    if "max_time" in budget and not MAX_TIME.match(str(budget["max_time"])):
        raise StudyError(f"study.budget.max_time must be 'DD:HH:MM:SS', e.g. '00:00:05:00', got {budget['max_time']!r}")
    return dict(budget)


def _check_report(report, runs: dict) -> dict:
    """``study.report``: ``metrics`` (the main table's columns) and ``frontier.baselines`` (run names)."""
    if report is None:
        return {}
    if not isinstance(report, dict):
        raise StudyError(f"study.report must be a mapping like {{metrics: [val/fid]}}, got {report!r}")
    unknown = sorted(set(report) - set(REPORT_KEYS))
    if unknown:
        raise StudyError(f"unknown study.report keys {unknown}; valid keys: {list(REPORT_KEYS)}")
    metrics = report.get("metrics")
    if metrics is not None and not (isinstance(metrics, list) and all(isinstance(m, str) for m in metrics)):
        raise StudyError(f"study.report.metrics must be a list of metric names like [val/fid], got {metrics!r}")
    frontier = report.get("frontier")
    if frontier is None:
        return dict(report)
    baselines = frontier.get("baselines") if isinstance(frontier, dict) and set(frontier) == {"baselines"} else None
    if not isinstance(baselines, list):
        raise StudyError(
            f"study.report.frontier takes one key, baselines (a list of run names), e.g. {{baselines: [mle_lstm]}}; "
            f"got {frontier!r}"
        )
    known = {b for b in baselines if isinstance(b, str) and b in runs}
    if not baselines or len(known) < len(baselines) or len(known) == len(runs):
        raise StudyError(
            f"study.report.frontier.baselines must list some (not all) of the study's runs {list(runs)}, once each: "
            f"the maximum-likelihood models the others are compared against; got {baselines!r}"
        )
    return dict(report)


def parse_spec(node: dict, source: str = "") -> StudySpec:
    """Validate the ``study:`` mapping of a study file."""
    if not isinstance(node, dict):
        raise StudyError(f"{source}: the top-level 'study:' key must hold a mapping")
    unknown = set(node) - KEYS
    if unknown:
        raise StudyError(f"{source}: unknown study keys {sorted(unknown)}; valid keys: {sorted(KEYS)}")
    for key in ("name", "seeds", "budget", "runs"):
        if key not in node:
            raise StudyError(f"{source}: study.{key} is required")
    _check_names([node["name"]], "study")
    seeds = node["seeds"]
    if not isinstance(seeds, list) or not seeds or len(set(seeds)) != len(seeds):
        raise StudyError(f"study.seeds must be a non-empty list of distinct integers, got {seeds!r}")
    if not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        raise StudyError(f"study.seeds must be integers, got {seeds!r}")
    runs = node["runs"]
    if not isinstance(runs, dict) or not runs:
        raise StudyError("study.runs must map run names to overrides, e.g. {vae: [model=vae]}")
    _check_names(runs, "run")
    evaluations = node.get("evaluations") or {}
    if not isinstance(evaluations, dict):
        raise StudyError("study.evaluations must map names to model overrides, e.g. {ddim_10: [model.sample_steps=10]}")
    _check_names(evaluations, "evaluation")
    spec = StudySpec(
        name=node["name"],
        seeds=list(seeds),
        budget=_check_budget(node["budget"]),
        runs={name: _overrides(ov, f"study.runs.{name}") for name, ov in runs.items()},
        common=_overrides(node.get("common"), "study.common"),
        protocol=_overrides(node.get("protocol"), "study.protocol"),
        evaluations={name: _overrides(ov, f"study.evaluations.{name}") for name, ov in evaluations.items()},
        evaluate_checkpoint=node.get("evaluate_checkpoint", "last"),
        description=str(node.get("description") or "").strip(),
        report=_check_report(node.get("report"), runs),
        references=list(node.get("references") or []),
        source=source,
    )
    if spec.evaluate_checkpoint not in ("last", "best"):
        raise StudyError(f"study.evaluate_checkpoint must be last or best, got {spec.evaluate_checkpoint!r}")
    for name, overrides in spec.runs.items():
        for item in overrides:
            if any(_key(item) == s or _key(item).startswith(s + ".") for s in SHARED):
                raise StudyError(
                    f"run '{name}' overrides '{_key(item)}', which every run of the study shares (protocol, budget, "
                    "seed, run directory, logger): move it to study.protocol, study.budget or study.common"
                )
    for ref in spec.references:
        if not isinstance(ref, dict) or not {"run", "metric", "value"} <= set(ref) or ref["run"] not in spec.runs:
            raise StudyError(f"study.references entries need run (one of {list(spec.runs)}), metric and value: {ref!r}")
    for name, overrides in spec.evaluations.items():
        bad = [o for o in overrides if not _key(o).startswith("model.")]
        if bad:
            raise StudyError(f"evaluation '{name}' may only set model.<parameter>=value, got {bad}")
    return spec


def find_study_file(target: str) -> Path:
    """A path to a study file, or the name of one in ``experiments/``."""
    from gen_lightning.config import experiments_dir

    path = Path(target)
    if path.is_file():
        return path
    candidate = experiments_dir() / (target if target.endswith(".yaml") else f"{target}.yaml")
    if candidate.is_file():
        return candidate
    raise FileNotFoundError(f"study file '{target}' does not exist (nor {candidate})")


def load_spec(path: str | Path) -> StudySpec:
    path = Path(path)
    node = OmegaConf.load(path)
    if not isinstance(node, DictConfig) or "study" not in node:
        raise StudyError(f"{path} is not a study file: it has no top-level 'study:' key (an experiment? use fit)")
    return parse_spec(OmegaConf.to_container(node.study, resolve=False), source=str(path))
