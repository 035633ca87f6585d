"""Where a study's time goes, per run: start-up, set-up, W&B, training steps, validation, metric evaluations, sample
grids, checkpoints, finishing. The runs of ``experiments/image_families_quick.yaml`` (or another study) are trained
in this process as ``gen-lightning study`` trains them (the in-process launcher), with a timer around each phase.

    PYTHONPATH=. OMP_NUM_THREADS=1 python benchmarks/study_overhead.py [--study FILE] [--seeds 0] [--out DIR]

Each phase's time excludes the phases timed inside it (a checkpoint written at a validation counts as checkpoint,
not validation). CPU seconds (this process; W&B's service process is apart) are the robust number on a shared
machine; wall seconds follow the load.

Measured 2026-11-30 19:26 on the idle 2-core development machine (load 0.01 -> 0.74), one thread, ``--seeds 0``
(the first seed of each run of image_families_quick.yaml); CPU seconds per phase (wall in brackets):

    start-up (imports): 5.1 CPU s (6.9 s wall), once per study
    phase                 vae_seed0    dcgan_seed0  wgan_gp_seed0   ddpm_seed0
    data                  0.6 ( 0.6)   0.0 ( 0.0)    0.0 ( 0.0)     0.0 ( 0.0)
    W&B start             1.3 ( 1.6)   0.1 ( 0.1)    0.1 ( 0.1)     0.1 ( 0.1)
    training steps        4.9 ( 5.0)  12.4 (12.4)   14.6 (14.7)    17.6 (17.6)
    validation            0.1 ( 0.1)   0.1 ( 0.1)    0.1 ( 0.1)     0.5 ( 0.5)
    metric evaluations    0.7 ( 0.7)   0.8 ( 0.8)    0.8 ( 0.8)     9.9 ( 9.9)
    sample grids          0.0 ( 0.0)   0.1 ( 0.1)    0.1 ( 0.1)     0.8 ( 0.8)
    checkpoints           0.1 ( 0.1)   0.1 ( 0.2)    0.1 ( 0.2)     0.3 ( 0.3)
    launcher, set-up, finish: 0.0-0.1 each
    total                 7.8 ( 8.3)  13.7 (13.7)   15.9 (16.0)    29.3 (29.3)

Training steps are 63-92% of a run. The data are decoded once and W&B's service starts once per study (the first
run pays both), and every run after the first spends ~0.4 s outside training, evaluation and checkpoints. The
only large other phase is DDPM's metric evaluations (4 x 1,000 samples of 20 DDIM steps: 34% of its run).

Start-up of the process (imports of torch, Lightning, Hydra, W&B: about 5 CPU seconds) and the digit classifier of
the metric protocol (trained once, then read from its disk cache) are paid once per study, not per run.
"""

from __future__ import annotations

import argparse
import contextlib
import time
from collections import defaultdict
from pathlib import Path

from cli_runs import ROOT, load_average

PHASES = ("launcher", "set-up", "data", "W&B start", "training steps", "validation", "metric evaluations",
          "sample grids", "checkpoints", "finish")  # fmt: skip


class PhaseTimer:
    """Exclusive wall and CPU seconds per phase: time in a phase minus the time in phases entered inside it."""

    def __init__(self) -> None:
        self.totals: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
        self.stack: list[list] = []  # [phase, wall start, cpu start, wall in children, cpu in children]

    @contextlib.contextmanager
    def phase(self, name: str):
        self.stack.append([name, time.perf_counter(), time.process_time(), 0.0, 0.0])
        try:
            yield
        finally:
            phase, wall0, cpu0, wall_in, cpu_in = self.stack.pop()
            wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
            self.totals[phase][0] += wall - wall_in
            self.totals[phase][1] += cpu - cpu_in
            if self.stack:
                self.stack[-1][3] += wall
                self.stack[-1][4] += cpu

    def wrap(self, owner, attribute: str, name: str) -> None:
        original = getattr(owner, attribute)

        def timed(*args, **kwargs):
            with self.phase(name):
                return original(*args, **kwargs)

        setattr(owner, attribute, timed)


def instrument(timer: PhaseTimer) -> None:
    """Timers around the phases of ``train.fit`` (patched in this process only)."""
    import lightning as L
    from lightning.pytorch.loops.evaluation_loop import _EvaluationLoop

    from gen_lightning import loggers, tracking
    from gen_lightning.callbacks.samples import SampleLogger
    from gen_lightning.callbacks.summary import RunSummary
    from gen_lightning.data.images import ImageDataModule
    from gen_lightning.data.text import TextDataModule
    from gen_lightning.metrics.callback import ImageMetrics
    from gen_lightning.metrics.protocol import EvaluationCallback
    from gen_lightning.run import train

    timer.wrap(train, "fit", "set-up")  # what no inner phase claims: checks, model, callbacks, trainer
    timer.wrap(L.Trainer, "fit", "training steps")  # the loop, less validation and what runs inside it
    for datamodule in (ImageDataModule, TextDataModule):
        timer.wrap(datamodule, "setup", "data")
    timer.wrap(loggers, "build_loggers", "W&B start")
    timer.wrap(_EvaluationLoop, "run", "validation")
    timer.wrap(EvaluationCallback, "evaluate", "metric evaluations")
    timer.wrap(ImageMetrics, "evaluate", "metric evaluations")  # its own, not the base class's
    timer.wrap(SampleLogger, "on_validation_epoch_end", "sample grids")
    timer.wrap(L.Trainer, "save_checkpoint", "checkpoints")
    timer.wrap(RunSummary, "finish_evaluations", "finish")
    timer.wrap(RunSummary, "write", "finish")
    timer.wrap(tracking, "finish", "finish")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", default=str(ROOT / "experiments" / "image_families_quick.yaml"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "study_overhead")
    args = parser.parse_args()

    start_wall, start_cpu = time.perf_counter(), time.process_time()
    from gen_lightning.studies.launch import train_one
    from gen_lightning.studies.plan import plan
    from gen_lightning.studies.spec import load_spec

    spec = load_spec(args.study)
    import_wall, import_cpu = time.perf_counter() - start_wall, time.process_time() - start_cpu
    timer = PhaseTimer()
    instrument(timer)
    planned = [pr for pr in plan(spec, args.out.resolve(), []) if pr.seed in args.seeds]
    print(f"start-up (imports): {import_cpu:.1f} CPU s ({import_wall:.1f} s wall); load {load_average()}")
    columns = {}
    for pr in planned:
        timer.totals.clear()
        wall, cpu = time.perf_counter(), time.process_time()
        with timer.phase("launcher"):  # around train.fit: config checks, run lock, output to train.log
            train_one(pr, resume=False)
        totals = dict(timer.totals)
        totals["total"] = [time.perf_counter() - wall, time.process_time() - cpu]
        columns[pr.key] = totals
        print(f"{pr.key}: {totals['total'][1]:.1f} CPU s ({totals['total'][0]:.1f} s wall), load {load_average()}")
    print(f"\n{'phase':20s}" + "".join(f"{k:>18s}" for k in columns))
    for phase in (*PHASES, "total"):
        cells = [columns[k].get(phase, [0.0, 0.0]) for k in columns]
        print(f"{phase:20s}" + "".join(f"{cpu:9.1f} ({wall:5.1f})" for wall, cpu in cells))


if __name__ == "__main__":
    main()
