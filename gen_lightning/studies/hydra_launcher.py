"""``launcher=hydra``: hand a study's training runs to Hydra's multirun, e.g. a SLURM cluster through submitit.

    pip install hydra-submitit-launcher
    gen-lightning study experiments/image_families.yaml launcher=hydra hydra/launcher=submitit_slurm \\
        hydra.launcher.partition=gpu hydra.launcher.gpus_per_node=1 hydra.launcher.timeout_min=600

Per study run, one ``gen-lightning fit --multirun`` sweeps the seeds still to start (``seed=0,1,2`` with
``run_dir=STUDY_DIR/<run>_seed${seed}``); one more sweep resumes the interrupted runs (``run_dir=A,B
resume=true``, each with its saved config). The Hydra launcher decides where the jobs run (the default basic
launcher: one after another on this machine). When the sweeps return, ``study.json`` is filled in from the runs'
``metrics.json``; evaluations and the report then run here as with the in-process launcher.
"""

from __future__ import annotations

import json
import subprocess
import sys

from gen_lightning.run_dir import RunDir
from gen_lightning.studies.index import StudyIndex, progress, run_state
from gen_lightning.studies.plan import PlannedRun
from gen_lightning.studies.spec import StudySpec


def sweeps(planned: list[PlannedRun], study_dir) -> list[tuple[str, list[str], list[PlannedRun]]]:
    """``(name, overrides, runs)`` of each multirun: one per study run for fresh seeds, one for resumes."""
    fresh: dict[str, list[PlannedRun]] = {}
    resumes = []
    for pr in planned:
        state = run_state(pr.run_dir)
        if state == "resume":
            resumes.append(pr)
        elif state == "fresh":
            fresh.setdefault(pr.run, []).append(pr)
    out = []
    for run, prs in fresh.items():
        shared = [o for o in prs[0].overrides if not o.startswith(("seed=", "run_dir="))]
        seeds = ",".join(str(pr.seed) for pr in prs)
        out.append((run, [*shared, f"seed={seeds}", f"run_dir={study_dir}/{run}_seed${{seed}}"], prs))
    if resumes:
        dirs = ",".join(str(pr.run_dir) for pr in resumes)
        out.append(("resume", [f"run_dir={dirs}", "resume=true"], resumes))
    return out


def collect(index: StudyIndex, pr: PlannedRun) -> None:
    """The outcome of a job, from its ``metrics.json``."""
    path = RunDir(pr.run_dir).metrics
    if not path.is_file():
        error = f"the job wrote no metrics.json (see the Hydra logs under {pr.run_dir})"
        index.update(pr.key, status="failed", error=error)
        return
    summary = json.loads(path.read_text())
    status = summary.get("status")
    index.update(
        pr.key,
        status="completed" if status == "completed" else "failed",
        error=None if status == "completed" else summary.get("error", f"run ended with status {status!r}"),
        global_step=summary.get("global_step"),
        wall_s=summary.get("train_time_s", 0.0),
    )


def launch(spec: StudySpec, index: StudyIndex, planned: list[PlannedRun], launcher_overrides: list[str]) -> None:
    study_dir = index.path.parent
    for i, pr in enumerate(planned, start=1):
        if pr.error is not None:
            index.update(pr.key, status="failed", error=pr.error)
        elif run_state(pr.run_dir) == "completed":
            index.update(pr.key, status="completed", error=None)
            progress(spec, index, i, pr, "completed before, skipped")
    for name, overrides, prs in sweeps([pr for pr in planned if pr.error is None], study_dir):
        for pr in prs:
            index.update(pr.key, status="running", attempts=index.data["runs"][pr.key].get("attempts", 0) + 1)
        command = [
            sys.executable,
            "-m",
            "gen_lightning.cli",
            "fit",
            "--multirun",
            *overrides,
            f"hydra.sweep.dir={study_dir}/.hydra/{name}",
            *launcher_overrides,
        ]
        print(f"[study {spec.name}] hydra multirun '{name}': {len(prs)} job(s)", flush=True)
        returncode = subprocess.run(command).returncode
        for pr in prs:
            collect(index, pr)
        if returncode:
            print(f"[study {spec.name}] multirun '{name}' exited with {returncode}: see the runs' metrics.json")
