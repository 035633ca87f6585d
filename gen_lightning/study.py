"""Comparative studies: ``gen-lightning study experiments/NAME.yaml [study_dir=DIR] [key=value ...]``.

A study (schema in ``gen_lightning/study_spec.py``) trains every run once per seed under one budget and one
evaluation protocol. Run ``<name>_seed<k>`` is ``train.fit(compose(common + run + protocol + budget + [seed,
run_dir, W&B group/tags] + command-line overrides))`` in ``STUDY_DIR/<name>_seed<k>/`` (default ``STUDY_DIR``:
``runs/studies/<study name>/``), in seed-major order (one seed of every run first, so an interrupted study
already compares every model). ``STUDY_DIR/study.json`` indexes the runs; a directory holds one study only.

Re-running the command skips completed runs (``metrics.json`` status completed), resumes interrupted or failed
ones from ``checkpoints/last.ckpt`` (``resume=true``) and starts the rest. A run that fails (a non-finite loss,
a model that is not installed, any error) is recorded with its error and the study goes on. Runs already made
must have the configuration the study gives them now, or the study stops before anything trains.
"""

from __future__ import annotations

import json
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from gen_lightning.study_spec import StudyError, StudySpec, find_study_file, load_spec

__all__ = ["StudyError", "StudySpec", "find_study_file", "load_spec", "run_study", "study_command"]

STUDY_FILE = "study.json"
# Keys whose value may differ between a run's saved config and the study without changing the result.
IGNORED_DIFFS = ("run_dir", "resume", "trainer.enable_progress_bar")

# ---------------------------------------------------------------------------------------------- planning


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
    return bool(cfg.get("logger")) and str(cfg.logger.get("_target_", "")).endswith("make_wandb_logger")


def wandb_settings(spec: StudySpec, run: str) -> dict:
    """One W&B group per study; tags study and run (train.py adds family and dataset)."""
    return {"group": spec.name, "tags": [spec.name, run], "job_type": "train"}


def wandb_overrides(settings: dict) -> list[str]:
    return [f"logger.{k}=[{','.join(v)}]" if isinstance(v, list) else f"logger.{k}={v}" for k, v in settings.items()]


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
                    cfg.logger.merge_with(settings)
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


def _flat(node, prefix: str = "") -> dict:
    if isinstance(node, dict):
        return {k: v for key, sub in node.items() for k, v in _flat(sub, f"{prefix}{key}.").items()}
    return {prefix[:-1]: node}


def config_differences(saved_path: Path, cfg: DictConfig) -> list[str]:
    """``key: saved -> now`` for every setting in which a run's saved config differs from the study's."""
    saved = _flat(OmegaConf.to_container(OmegaConf.load(saved_path), resolve=True))
    now = _flat(OmegaConf.to_container(cfg, resolve=True))
    keys = sorted(k for k in saved.keys() | now.keys() if k not in IGNORED_DIFFS and saved.get(k) != now.get(k))
    return [f"{k}: {saved.get(k, '<absent>')!r} -> {now.get(k, '<absent>')!r}" for k in keys]


def run_state(run_dir: Path) -> str:
    """completed | resume (a checkpoint to continue from) | fresh."""
    metrics = run_dir / "metrics.json"
    if metrics.is_file() and json.loads(metrics.read_text()).get("status") == "completed":
        return "completed"
    return "resume" if (run_dir / "checkpoints" / "last.ckpt").is_file() else "fresh"


def check_consistent(spec: StudySpec, planned: list[PlannedRun]) -> None:
    """Runs already made must have the configuration the study gives them now, or they are not comparable."""
    problems = []
    for pr in planned:
        saved = pr.run_dir / "config.yaml"
        if pr.cfg is not None and saved.is_file() and run_state(pr.run_dir) != "fresh":
            diffs = config_differences(saved, pr.cfg)
            if diffs:
                problems.append(f"  {pr.key}: " + "; ".join(diffs[:5]) + (" ..." if len(diffs) > 5 else ""))
    if problems:
        raise StudyError(
            f"runs of study '{spec.name}' were made with another configuration than the study gives now:\n"
            + "\n".join(problems)
            + "\nrestore the study file and arguments, or choose a new study_dir=... (nothing was changed)"
        )


# ---------------------------------------------------------------------------------------------- index


class StudyIndex:
    """``STUDY_DIR/study.json``: the study's spec and the state of every run; one study per directory."""

    def __init__(self, study_dir: Path, spec: StudySpec, extra: list[str]) -> None:
        self.path = study_dir / STUDY_FILE
        if self.path.is_file():
            data = json.loads(self.path.read_text())
            if data.get("study") != spec.name:
                raise StudyError(
                    f"{study_dir} holds the study '{data.get('study')}', not '{spec.name}': studies never share a "
                    "directory; choose another study_dir=..."
                )
            self.data = data
        elif study_dir.is_dir() and any(study_dir.iterdir()):
            raise StudyError(f"{study_dir} is not empty and holds no {STUDY_FILE}: choose a new or empty study_dir=...")
        else:
            self.data = {"study": spec.name, "runs": {}, "evaluations": {}}
        self.data.update(spec=spec.to_dict(), extra_overrides=list(extra))
        self.data.setdefault("evaluations", {})

    def set_runs(self, planned: list[PlannedRun]) -> None:
        old = self.data["runs"]
        self.data["runs"] = {
            pr.key: {
                **old.get(pr.key, {"status": "pending", "wall_s": 0.0, "attempts": 0}),
                "run": pr.run,
                "seed": pr.seed,
                "dir": pr.key,
                "overrides": pr.overrides,
            }
            for pr in planned
        }

    def update(self, key: str, section: str = "runs", **values) -> None:
        self.data[section].setdefault(key, {}).update(values)
        self.write()

    def write(self) -> None:
        from gen_lightning.callbacks.summary import write_json

        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_json(self.path, self.data)


def load_index(study_dir: Path) -> dict:
    path = Path(study_dir) / STUDY_FILE
    if not path.is_file():
        raise FileNotFoundError(f"'{study_dir}' holds no {STUDY_FILE}: run the study first (gen-lightning study ...)")
    return json.loads(path.read_text())


def default_study_dir(name: str) -> Path:
    return Path("runs") / "studies" / name


# ---------------------------------------------------------------------------------------------- running


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}h{seconds // 60 % 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


def progress(spec: StudySpec, index: StudyIndex, i: int, pr: PlannedRun, what: str) -> None:
    """One line per run on top of Lightning's bar: position, state of the study, ETA from finished runs."""
    runs = index.data["runs"].values()
    done = [r for r in runs if r.get("status") == "completed"]
    failed = sum(r.get("status") == "failed" for r in runs)
    timed = [r["wall_s"] for r in done if r.get("wall_s")]
    left = len(index.data["runs"]) - len(done) - failed
    eta = f"ETA {_duration(left * sum(timed) / len(timed))}" if timed and left else "ETA -"
    total = len(index.data["runs"])
    print(
        f"[study {spec.name}] run {i}/{total} {pr.key}: {what} | {len(done)} completed, {failed} failed | {eta}",
        flush=True,
    )


def train_one(pr: PlannedRun, resume: bool) -> dict:
    from gen_lightning import train

    cfg = pr.cfg.copy()
    cfg.resume = resume
    return train.fit(cfg)


def execute(spec: StudySpec, index: StudyIndex, planned: list[PlannedRun]) -> None:
    for i, pr in enumerate(planned, start=1):
        if pr.error is not None:
            index.update(pr.key, status="failed", error=pr.error)
            progress(spec, index, i, pr, f"failed: {pr.error.splitlines()[0]}")
            continue
        state = run_state(pr.run_dir)
        if state == "completed":
            index.update(pr.key, status="completed", error=None)
            progress(spec, index, i, pr, "completed before, skipped")
            continue
        entry = index.data["runs"][pr.key]
        progress(spec, index, i, pr, "resuming from checkpoints/last.ckpt" if state == "resume" else "starting")
        index.update(pr.key, status="running", attempts=entry.get("attempts", 0) + 1)
        start = time.perf_counter()
        try:
            summary = train_one(pr, resume=state == "resume")
        except Exception as err:
            wall = entry.get("wall_s", 0.0) + time.perf_counter() - start
            pr.run_dir.mkdir(parents=True, exist_ok=True)
            (pr.run_dir / "error.txt").write_text(traceback.format_exc())
            index.update(pr.key, status="failed", error=f"{type(err).__name__}: {err}", wall_s=round(wall, 3))
            progress(spec, index, i, pr, f"failed after {_duration(wall)}: {type(err).__name__}: {err}")
            continue
        except BaseException:  # Ctrl-C (Lightning turns it into SystemExit): the study stops here
            index.update(pr.key, status="interrupted")
            print(f"[study {spec.name}] interrupted in {pr.key}: run the same command again to continue", flush=True)
            raise
        wall = entry.get("wall_s", 0.0) + time.perf_counter() - start
        index.update(pr.key, status="completed", error=None, wall_s=round(wall, 3), global_step=summary["global_step"])
        progress(spec, index, i, pr, f"completed in {_duration(wall)} (step {summary['global_step']})")


def run_study(
    spec: StudySpec, study_dir: str | Path | None = None, extra: list[str] | None = None, launcher: str = "inprocess"
) -> Path:
    """Run (or continue) every run of ``spec``, then its evaluations; returns the study directory."""
    from gen_lightning.study_eval import run_evaluations

    extra = list(extra or [])
    launcher_overrides = [o for o in extra if o.startswith("hydra")]  # hydra/launcher=..., hydra.launcher.*=...
    extra = [o for o in extra if o not in launcher_overrides]
    study_dir = Path(study_dir or default_study_dir(spec.name)).expanduser().resolve()
    index = StudyIndex(study_dir, spec, extra)
    planned = plan(spec, study_dir, extra)
    check_consistent(spec, planned)
    index.set_runs(planned)
    index.write()
    if launcher == "hydra":
        from gen_lightning.study_hydra import launch

        launch(spec, index, planned, launcher_overrides)
    elif launcher == "inprocess":
        execute(spec, index, planned)
    else:
        raise StudyError(f"launcher must be inprocess or hydra, got {launcher!r}")
    run_evaluations(spec, index, planned)
    runs = index.data["runs"].values()
    failed = [k for k, r in index.data["runs"].items() if r.get("status") != "completed"]
    print(
        f"[study {spec.name}] {len(runs) - len(failed)}/{len(runs)} runs completed"
        + (f"; not completed: {', '.join(failed)}" if failed else "")
        + f"\n  results: {study_dir}",
        flush=True,
    )
    return study_dir


def study_command(args: list[str]) -> Path | None:
    """``gen-lightning study FILE [study_dir=DIR] [launcher=inprocess|hydra] [report=true|false] [dry_run=true]
    [override ...]``: runs the study, then writes its report (``report=false``: only the runs)."""
    if not args or "=" in args[0]:
        raise StudyError("usage: gen-lightning study experiments/NAME.yaml [study_dir=DIR] [key=value ...]")
    spec = load_spec(find_study_file(args[0]))
    options, extra = {}, []
    for arg in args[1:]:
        key, sep, value = arg.partition("=")
        if not sep:
            raise StudyError(f"expected key=value, got '{arg}'")
        if key in ("study_dir", "launcher", "dry_run", "report"):
            options[key] = value
        else:
            extra.append(arg)
    launcher = options.get("launcher", "inprocess")
    if launcher == "inprocess" and any(o.startswith("hydra") for o in extra):
        raise StudyError("hydra/... and hydra.* overrides need launcher=hydra")
    if options.get("dry_run", "false").lower() in ("true", "1", "yes"):
        study_dir = Path(options.get("study_dir") or default_study_dir(spec.name)).resolve()
        for pr in plan(spec, study_dir, [o for o in extra if not o.startswith("hydra")]):
            state = "cannot compose: " + pr.error if pr.error else run_state(pr.run_dir)
            print(f"{pr.key} [{state}]\n  {' '.join(pr.overrides)}")
        return None
    try:
        study_dir = run_study(spec, options.get("study_dir"), extra, launcher)
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    if options.get("report", "true").lower() in ("true", "1", "yes"):
        from gen_lightning.report import write_report

        print(f"[study {spec.name}] report: {write_report(study_dir)}", flush=True)
    return study_dir
