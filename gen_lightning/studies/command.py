"""The ``study`` command: ``gen-lightning study experiments/NAME.yaml [study_dir=DIR] [key=value ...]``.

A study (schema in ``spec.py``) trains every run once per seed under one budget and one evaluation protocol
(``plan.py``) in ``STUDY_DIR/<name>_seed<k>/`` (default ``STUDY_DIR``: ``runs/studies/<study name>/``), indexed
by ``STUDY_DIR/study.json`` (``index.py``). The runs go to a launcher (``jobs.py``: ``jobs=N`` at a time, each
in a process of its own, or ``jobs=1`` one after another in this process, ``launch.py``; or ``hydra_launcher.py``),
then the evaluation variants run (``evaluations.py``) and the report is written (``report/``).

Re-running the command skips completed runs, resumes interrupted or failed ones and starts the rest. Runs already
made must have the configuration the study gives them now, and every run must be one ``fit`` would train (its
config composes, the model fits the data): otherwise the study stops before anything trains, naming every such
run. The command exits non-zero (after writing the report) while any run or evaluation has not completed.
"""

from __future__ import annotations

from pathlib import Path

from gen_lightning.config import parse_kv
from gen_lightning.studies.index import StudyIndex, check_consistent, default_study_dir, load_index, run_state
from gen_lightning.studies.jobs import execute, parse_jobs
from gen_lightning.studies.plan import PlannedRun, plan
from gen_lightning.studies.spec import StudyError, StudySpec, find_study_file, load_spec


def run_study(
    spec: StudySpec,
    study_dir: str | Path | None = None,
    extra: list[str] | None = None,
    launcher: str = "inprocess",
    jobs: int | str = "auto",
) -> Path:
    """Run (or continue) every run of ``spec``, then its evaluations; returns the study directory."""
    from gen_lightning.studies.evaluations import run_evaluations  # torch: not loaded for a dry run

    extra = list(extra or [])
    launcher_overrides = [o for o in extra if o.startswith("hydra")]  # hydra/launcher=..., hydra.launcher.*=...
    extra = [o for o in extra if o not in launcher_overrides]
    study_dir = Path(study_dir or default_study_dir(spec.name)).expanduser().resolve()
    planned = plan(spec, study_dir, extra)
    refuse_invalid(spec, planned)
    index = StudyIndex(study_dir, spec, extra)
    check_consistent(spec, planned)
    index.set_runs(planned)
    index.write()
    if launcher == "hydra":
        from gen_lightning.studies.hydra_launcher import launch

        launch(spec, index, planned, launcher_overrides)
    elif launcher == "inprocess":
        execute(spec, index, planned, parse_jobs(jobs))
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


def refuse_invalid(spec: StudySpec, planned: list[PlannedRun]) -> None:
    """Runs that cannot be trained are known before any trains: name them all (the same error over seeds once)."""
    errors: dict[str, list[str]] = {}
    for pr in planned:
        if pr.error is not None:
            errors.setdefault(pr.error, []).append(pr.key)
    if errors:
        bad = sum(len(keys) for keys in errors.values())
        raise StudyError(
            f"{bad} of the {len(planned)} runs of study '{spec.name}' cannot be trained, so none was started:\n"
            + "\n".join(f"  {', '.join(keys)}: {error}" for error, keys in errors.items())
            + f"\nfix the study file or the arguments; gen-lightning study {spec.source or spec.name} dry_run=true "
            "checks every run without training"
        )


def unfinished(study_dir: Path, name: str) -> str | None:
    """What of the study has not completed (runs, evaluations), as one sentence; None when everything has."""
    index = load_index(study_dir)
    parts = []
    for section, what in (("runs", "runs"), ("evaluations", "evaluations")):
        entries = index.get(section, {})
        bad = [f"{k} ({v.get('status')})" for k, v in entries.items() if v.get("status") != "completed"]
        if bad:
            parts.append(f"{len(bad)} of {len(entries)} {what} of study '{name}' did not complete: {', '.join(bad)}")
    if not parts:
        return None
    return (
        "; ".join(parts)
        + f". Their errors are in {study_dir / 'study.json'} (and each run's error.txt); the same command again "
        "resumes the unfinished runs"
    )


def study_command(args: list[str]) -> Path | None:
    """``gen-lightning study FILE [study_dir=DIR] [jobs=auto|N] [launcher=inprocess|hydra] [report=true|false]
    [dry_run=true] [override ...]``: runs the study (``jobs`` runs at a time), then writes its report
    (``report=false``: only the runs)."""
    if not args or "=" in args[0]:
        raise StudyError("usage: gen-lightning study experiments/NAME.yaml [study_dir=DIR] [key=value ...]")
    spec = load_spec(find_study_file(args[0]))
    try:
        options, extra = parse_kv(args[1:], own=("study_dir", "launcher", "dry_run", "report", "jobs"))
    except ValueError as err:
        raise StudyError(str(err)) from None
    for flag in ("dry_run", "report"):
        if not isinstance(options.get(flag, False), bool):
            raise StudyError(f"{flag} must be true or false, got {options[flag]!r}")
    launcher = options.get("launcher", "inprocess")
    jobs = parse_jobs(options.get("jobs", "auto"))
    if launcher == "hydra" and "jobs" in options:
        raise StudyError(
            "jobs=... is for launcher=inprocess; with launcher=hydra the Hydra launcher decides where and how many "
            "runs train at once (hydra/launcher=submitit_slurm, hydra.launcher.array_parallelism=N, ...)"
        )
    if launcher == "inprocess" and any(o.startswith("hydra") for o in extra):
        raise StudyError("hydra/... and hydra.* overrides need launcher=hydra")
    if options.get("dry_run", False):
        study_dir = Path(options.get("study_dir") or default_study_dir(spec.name)).resolve()
        for pr in plan(spec, study_dir, [o for o in extra if not o.startswith("hydra")]):
            state = "cannot be trained: " + pr.error if pr.error else run_state(pr.run_dir)
            print(f"{pr.key} [{state}]\n  {' '.join(pr.overrides)}")
        return None
    try:
        study_dir = run_study(spec, options.get("study_dir"), extra, launcher, jobs)
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    if options.get("report", True):
        from gen_lightning.studies.report.command import write_report

        print(f"[study {spec.name}] report: {write_report(study_dir)}", flush=True)
    problem = unfinished(study_dir, spec.name)
    if problem:
        raise StudyError(problem)
    return study_dir
