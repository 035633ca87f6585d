"""``STUDY_DIR/study.json``: the index of a study, and what the study directory says about each run.

The index holds the study's spec, the command-line overrides and, per run, its state (pending, running, completed,
failed, interrupted), error, attempts and wall time; per evaluation variant, its result file. A directory holds
one study only. A run directory is completed (``metrics.json`` status completed), resumable (a
``checkpoints/last.ckpt``) or fresh; runs already made must have the configuration the study gives them now.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from gen_lightning.run_dir import RunDir
from gen_lightning.studies.plan import PlannedRun
from gen_lightning.studies.spec import StudyError, StudySpec

STUDY_FILE = "study.json"
# Keys whose value may differ between a run's saved config and the study without changing the result.
IGNORED_DIFFS = ("run_dir", "resume", "trainer.enable_progress_bar", "threads")  # threads: speed only (run/threads.py)


def default_study_dir(name: str) -> Path:
    return Path("runs") / "studies" / name


def run_state(run_dir: Path) -> str:
    """completed | resume (a checkpoint to continue from) | fresh."""
    metrics = RunDir(run_dir).metrics
    if metrics.is_file() and json.loads(metrics.read_text()).get("status") == "completed":
        return "completed"
    return "resume" if RunDir(run_dir).last.is_file() else "fresh"


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


def check_consistent(spec: StudySpec, planned: list[PlannedRun]) -> None:
    """Runs already made must have the configuration the study gives them now, or they are not comparable."""
    problems = []
    for pr in planned:
        saved = RunDir(pr.run_dir).config
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
        from gen_lightning.files import write_json

        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_json(self.path, self.data)


def load_index(study_dir: Path) -> dict:
    path = Path(study_dir) / STUDY_FILE
    if not path.is_file():
        raise FileNotFoundError(f"'{study_dir}' holds no {STUDY_FILE}: run the study first (gen-lightning study ...)")
    return json.loads(path.read_text())


def duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}h{seconds // 60 % 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


def eta(index: StudyIndex, jobs: int = 1) -> float | None:
    """Seconds left: each unfinished run takes what the finished seeds of the same study run took (on average),
    or the average of all finished runs, ``jobs`` of them at a time; None before any run finished."""
    runs = index.data["runs"].values()
    walls: dict[str, list[float]] = {}
    for r in runs:
        if r.get("status") == "completed" and r.get("wall_s"):
            walls.setdefault(r["run"], []).append(r["wall_s"])
    if not walls:
        return None
    every = [w for ws in walls.values() for w in ws]
    left = [r for r in runs if r.get("status") not in ("completed", "failed")]
    expected = [sum(walls.get(r["run"], every)) / len(walls.get(r["run"], every)) for r in left]
    return max([sum(expected) / jobs, *expected]) if expected else 0.0


def bar(done: int, total: int, width: int = 12) -> str:
    filled = round(width * done / total) if total else width
    return "[" + "#" * filled + "." * (width - filled) + "]"


def progress(
    spec: StudySpec, index: StudyIndex, i: int, pr: PlannedRun, what: str, final: bool = True, jobs: int = 1
) -> None:
    """One line per run: its position and outcome, and the study's bar with the ETA from the finished runs
    (``jobs`` of them training at once).

    ``final=False`` is the line while the run trains: on a terminal it is overwritten by the run's final line,
    elsewhere (a log file, a pipe) it is not printed, so every run leaves exactly one line."""
    runs = index.data["runs"].values()
    done = sum(r.get("status") == "completed" for r in runs)
    failed = sum(r.get("status") == "failed" for r in runs)
    left = eta(index, jobs)
    state = f"{bar(done + failed, len(runs))} {done} completed, {failed} failed"
    line = f"[study {spec.name}] run {i}/{len(runs)} {pr.key}: {what} | {state} | ETA {duration(left) if left else '-'}"
    if not final:
        if sys.stdout.isatty():
            print(line[: shutil.get_terminal_size().columns - 1], end="\r", flush=True)
        return
    print("\033[2K" + line if sys.stdout.isatty() else line, flush=True)
