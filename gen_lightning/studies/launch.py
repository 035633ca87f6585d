"""The in-process launcher (``launcher=inprocess``, the default): the planned runs, one after another, here.

Each run is ``train.fit`` of its planned config: a completed run is skipped, an interrupted or failed one resumes
from ``checkpoints/last.ckpt`` (``resume=true``), the rest start. A run that fails (a non-finite loss, a model
that is not installed, any error) is recorded with its error (``study.json``, ``RUN_DIR/error.txt``) and the study
goes on; Ctrl-C stops the study after recording the run as interrupted.
"""

from __future__ import annotations

import time
import traceback

from gen_lightning.run_dir import RunDir
from gen_lightning.studies.index import StudyIndex, duration, progress, run_state
from gen_lightning.studies.plan import PlannedRun
from gen_lightning.studies.spec import StudySpec


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
            RunDir(pr.run_dir).error.write_text(traceback.format_exc())
            index.update(pr.key, status="failed", error=f"{type(err).__name__}: {err}", wall_s=round(wall, 3))
            progress(spec, index, i, pr, f"failed after {duration(wall)}: {type(err).__name__}: {err}")
            continue
        except BaseException:  # Ctrl-C (Lightning turns it into SystemExit): the study stops here
            index.update(pr.key, status="interrupted")
            print(f"[study {spec.name}] interrupted in {pr.key}: run the same command again to continue", flush=True)
            raise
        wall = entry.get("wall_s", 0.0) + time.perf_counter() - start
        index.update(pr.key, status="completed", error=None, wall_s=round(wall, 3), global_step=summary["global_step"])
        progress(spec, index, i, pr, f"completed in {duration(wall)} (step {summary['global_step']})")
