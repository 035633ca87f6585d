"""The in-process launcher (``launcher=inprocess``, the default): the planned runs here, one after another
(``jobs=1``), or several at a time, each in a process of its own (``jobs=N``, ``jobs=auto``: ``jobs.py``).

Each run is ``train.fit`` of its planned config: a completed run is skipped, an interrupted or failed one resumes
from ``checkpoints/last.ckpt`` (``resume=true``), the rest start. A run that fails (a non-finite loss, a model
that is not installed, any error) is recorded with its error (``study.json``, ``RUN_DIR/error.txt``) and the study
goes on; Ctrl-C stops the study after recording the run as interrupted.

With ``jobs=1`` the runs share this process, so what the first run loads stays loaded for the others: the
libraries, the W&B service, the metric protocol's classifier and reference features (cached on disk, read once per
run) and the embedded data sets. Each run writes what it prints (Lightning's messages, the model summary, library
warnings) to ``RUN_DIR/train.log`` instead of the terminal, which shows one line per run (``index.progress``).
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
import traceback
import warnings
from collections import deque
from pathlib import Path

from gen_lightning.run_dir import RunDir
from gen_lightning.studies.index import StudyIndex, duration, progress, run_state
from gen_lightning.studies.plan import PlannedRun
from gen_lightning.studies.spec import StudySpec


def _console_handlers() -> list[logging.StreamHandler]:
    """Handlers of every logger that write to the terminal (Lightning installs its own on its loggers)."""
    loggers = [logging.getLogger(), *(lg for lg in logging.Logger.manager.loggerDict.values())]
    terminal = {sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__}
    return [
        h
        for lg in loggers
        if isinstance(lg, logging.Logger)
        for h in lg.handlers
        if type(h) is logging.StreamHandler and h.stream in terminal
    ]


@contextlib.contextmanager
def output_to(path: Path):
    """Print statements, logging to the terminal and warnings go to ``path`` (appended) inside the block. Warnings
    are shown again in every run's file (``catch_warnings`` forgets which ones were already shown)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as log, warnings.catch_warnings():
        warnings.simplefilter("default")
        handlers = _console_handlers()
        streams = [h.setStream(log) for h in handlers]
        try:
            with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
                yield
        finally:
            for handler, stream in zip(handlers, streams):
                handler.setStream(stream)


def train_one(pr: PlannedRun, resume: bool) -> dict:
    from gen_lightning.run import train

    cfg = pr.cfg.copy()
    cfg.resume = resume
    cfg.trainer.enable_progress_bar = False  # the study prints one line per run instead
    with output_to(RunDir(pr.run_dir).log):
        return train.fit(cfg)


def outcome(spec: StudySpec, summary: dict, wall: float) -> str:
    """``completed in 1m02s (step 940), val/fid_clf 81.3``: the report's first metric, where the run logged it."""
    text = f"completed in {duration(wall)} (step {summary['global_step']})"
    metric = next(iter((spec.report or {}).get("metrics") or []), None)
    value = summary.get("final", {}).get(metric)
    return text + (f", {metric} {value:.4g}" if value is not None else "")


def settle(spec: StudySpec, index: StudyIndex, planned: list[PlannedRun]) -> tuple[deque, list]:
    """Record the completed runs and those that cannot train; ``(runs to train as (i, run, state), lines of the
    others as (i, run, what))``."""
    queue, settled = deque(), []
    for i, pr in enumerate(planned, start=1):
        state = run_state(pr.run_dir) if pr.error is None else "error"
        if state == "error":
            index.update(pr.key, status="failed", error=pr.error)
            settled.append((i, pr, f"failed: {pr.error.splitlines()[0]}"))
        elif state == "completed":
            index.update(pr.key, status="completed", error=None)
            settled.append((i, pr, "completed before, skipped"))
        else:
            queue.append((i, pr, state))
    return queue, settled


def train_here(spec: StudySpec, index: StudyIndex, i: int, pr: PlannedRun, state: str) -> None:
    entry = index.data["runs"][pr.key]
    resumed = "resumed from checkpoints/last.ckpt, " if state == "resume" else ""
    progress(spec, index, i, pr, "resuming from checkpoints/last.ckpt" if resumed else "training", final=False)
    index.update(pr.key, status="running", attempts=entry.get("attempts", 0) + 1)
    start = time.perf_counter()
    try:
        summary = train_one(pr, resume=state == "resume")
    except Exception as err:
        wall = entry.get("wall_s", 0.0) + time.perf_counter() - start
        pr.run_dir.mkdir(parents=True, exist_ok=True)
        RunDir(pr.run_dir).error.write_text(traceback.format_exc())
        index.update(pr.key, status="failed", error=f"{type(err).__name__}: {err}", wall_s=round(wall, 3))
        progress(spec, index, i, pr, f"{resumed}failed after {duration(wall)}: {type(err).__name__}: {err}")
        return
    except BaseException:  # Ctrl-C (Lightning turns it into SystemExit): the study stops here
        index.update(pr.key, status="interrupted")
        print(f"\n[study {spec.name}] interrupted in {pr.key}: run the same command again to continue", flush=True)
        raise
    wall = entry.get("wall_s", 0.0) + time.perf_counter() - start
    index.update(pr.key, status="completed", error=None, wall_s=round(wall, 3), global_step=summary["global_step"])
    progress(spec, index, i, pr, resumed + outcome(spec, summary, wall))
