"""``jobs=N``: N runs of a study at once, each in a process of its own with its share of the machine.

``jobs=auto`` (the default) trains one run per GPU when the runs use GPUs (``gpus // trainer.devices`` at once),
otherwise one run per CPU: the models of a CPU study are small enough that one thread each is their fastest
(``run/threads.py``; ``benchmarks/study_parallel.py`` measures the quick study both ways); never more jobs than
runs left to train. ``jobs=1`` trains in the study's own process (``launch.py``).

Each run is ``python -m gen_lightning.studies.jobs`` training exactly what ``launch.train_one`` trains in process
(the same composed config, the same resume from ``checkpoints/last.ckpt``), with ``CUDA_VISIBLE_DEVICES`` set to
its GPUs and ``run.threads.CPU_SHARE_ENV`` to its share of the CPUs (``cpus // jobs``). Everything it prints goes
to its ``RUN_DIR/train.log``; it hands its outcome back through a pipe. Only this process writes ``study.json``,
and the terminal shows one line per finished run and, on a terminal, one line saying which runs are training.

Ctrl-C (or SIGTERM) stops every run in flight at a checkpoint (``StopOnSignal``); a study killed outright takes
its runs with it (each asks the kernel for SIGTERM when its parent dies). The same command again continues every
unfinished run exactly, as with ``jobs=1``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import traceback
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from gen_lightning.run_dir import RunDir
from gen_lightning.studies.index import StudyIndex, duration, progress
from gen_lightning.studies.launch import outcome, settle, train_here, train_one
from gen_lightning.studies.plan import PlannedRun
from gen_lightning.studies.spec import StudyError, StudySpec

CPU_SHARE_ENV = "GEN_LIGHTNING_CPU_SHARE"  # run/threads.py reads it (the same name there)


def parse_jobs(value) -> int | str:
    """``auto`` or a positive integer, or one error naming the key, the value and what is allowed."""
    if value == "auto" or (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
        return value
    raise StudyError(
        f"jobs={value!r}: jobs must be a positive integer (the runs trained at once) or auto (one per GPU, "
        "or one per CPU core without GPUs)"
    )


def cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def visible_gpus() -> list[str]:
    """The GPUs this process may use, as ``CUDA_VISIBLE_DEVICES`` names them."""
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    given = [g for g in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if g.strip()]
    return given[:count] if given else [str(i) for i in range(count)]


def uses_gpu(pr: PlannedRun, gpus: list[str]) -> bool:
    accelerator = str(pr.cfg.trainer.get("accelerator", "auto"))
    return bool(gpus) and accelerator in ("gpu", "cuda", "auto")


def gpus_per_run(pr: PlannedRun, gpus: list[str]) -> int:
    devices = pr.cfg.trainer.get("devices", 1)
    if isinstance(devices, int) and devices >= 1:
        return min(devices, len(gpus))
    if isinstance(devices, (list, tuple)) or str(devices).count(","):
        return min(len(devices) if isinstance(devices, (list, tuple)) else len(str(devices).split(",")), len(gpus))
    return len(gpus)  # "auto", -1: every GPU


def shares(jobs: int | str, to_train: list[PlannedRun]) -> list[dict[str, str]]:
    """The environment of each job slot (its GPUs, its CPUs); as many slots as runs train at once."""
    if not to_train:
        return [{}]
    gpus = visible_gpus()
    on_gpu = any(uses_gpu(pr, gpus) for pr in to_train)
    per_run = max(gpus_per_run(pr, gpus) for pr in to_train) if on_gpu else 0
    if jobs == "auto":
        jobs = len(gpus) // per_run if on_gpu else cpus()
    jobs = max(1, min(jobs, len(to_train)))
    slots = []
    for i in range(jobs):
        env = {CPU_SHARE_ENV: str(max(1, cpus() // jobs))}
        if on_gpu:  # more jobs than GPUs (jobs=N given): they share the GPUs in turn
            env["CUDA_VISIBLE_DEVICES"] = ",".join(gpus[(i * per_run + k) % len(gpus)] for k in range(per_run))
        slots.append(env)
    return slots


@dataclass
class Job:
    number: int  # the run's place in the plan (run i/N)
    pr: PlannedRun
    process: subprocess.Popen
    result: int  # read end of the pipe the run writes its outcome to
    started: float
    resumed: bool


def start(number: int, pr: PlannedRun, resume: bool, env: dict[str, str]) -> Job:
    read, write = os.pipe()
    task = {"key": pr.key, "run": pr.run, "seed": pr.seed, "run_dir": str(pr.run_dir), "overrides": pr.overrides,
            "resume": resume, "result_fd": write, "parent": os.getpid()}  # fmt: skip
    pr.run_dir.mkdir(parents=True, exist_ok=True)
    with open(RunDir(pr.run_dir).log, "a", encoding="utf-8") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "gen_lightning.studies.jobs", json.dumps(task)],
            env={**os.environ, **env},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            pass_fds=(write,),
        )
    os.close(write)
    os.set_blocking(read, False)  # data-loader workers of the run may keep the write end open after it exits
    return Job(number, pr, process, read, time.perf_counter(), resume)


def outcome_of(job: Job) -> dict:
    chunks = []
    try:
        while chunk := os.read(job.result, 65536):
            chunks.append(chunk)
    except BlockingIOError:
        pass
    os.close(job.result)
    try:
        return json.loads(b"".join(chunks))
    except ValueError:
        code = job.process.returncode
        how = f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited with status {code}"
        return {"status": "failed", "error": f"the run's process {how} (see {RunDir(job.pr.run_dir).log})"}


def record(spec: StudySpec, index: StudyIndex, job: Job, jobs: int) -> None:
    result = outcome_of(job)
    entry = index.data["runs"][job.pr.key]
    wall = entry.get("wall_s", 0.0) + time.perf_counter() - job.started
    resumed = "resumed from checkpoints/last.ckpt, " if job.resumed else ""
    if result["status"] == "completed":
        index.update(
            job.pr.key, status="completed", error=None, wall_s=round(wall, 3), global_step=result["global_step"]
        )
        progress(spec, index, job.number, job.pr, resumed + outcome(spec, result, wall), jobs=jobs)
    elif result["status"] == "interrupted":
        index.update(job.pr.key, status="interrupted")
        progress(spec, index, job.number, job.pr, "interrupted (stopped at a checkpoint)", jobs=jobs)
    else:
        index.update(job.pr.key, status="failed", error=result["error"], wall_s=round(wall, 3))
        progress(
            spec, index, job.number, job.pr, f"{resumed}failed after {duration(wall)}: {result['error']}", jobs=jobs
        )


def execute_parallel(spec: StudySpec, index: StudyIndex, queue: deque, slots: list[dict[str, str]]) -> None:
    """Train ``queue`` (``(number, run, state)``) with one run per slot at a time."""
    running: dict[int, Job] = {}
    free = deque(range(len(slots)))
    try:
        while queue or running:
            while queue and free:
                number, pr, state = queue.popleft()
                slot = free.popleft()
                entry = index.data["runs"][pr.key]
                index.update(pr.key, status="running", attempts=entry.get("attempts", 0) + 1)
                running[slot] = start(number, pr, state == "resume", slots[slot])
                in_flight = ", ".join(j.pr.key for j in running.values())
                progress(spec, index, number, pr, f"training ({in_flight})", final=False, jobs=len(slots))
            time.sleep(0.2)
            for slot, job in list(running.items()):
                if job.process.poll() is not None:
                    del running[slot]
                    free.append(slot)
                    record(spec, index, job, len(slots))
    except BaseException:  # Ctrl-C: every run in flight stops at a checkpoint (a killed study: die_with_parent)
        for job in running.values():
            job.process.send_signal(signal.SIGTERM)
        for job in running.values():
            try:
                job.process.wait(timeout=300)
            except subprocess.TimeoutExpired:
                job.process.kill()
            index.update(job.pr.key, status="interrupted")
        keys = ", ".join(job.pr.key for job in running.values())
        print(f"\n[study {spec.name}] interrupted in {keys}: run the same command again to continue", flush=True)
        raise


def execute(spec: StudySpec, index: StudyIndex, planned: list[PlannedRun], jobs: int | str = 1) -> None:
    """Skip the completed runs, record the ones that cannot train, and train the rest: in this process one after
    another (``jobs=1``, ``launch.train_here``), or ``jobs`` at a time in processes of their own."""

    queue, settled = settle(spec, index, planned)
    slots = shares(jobs, [pr for _, pr, _ in queue]) if jobs != 1 else [{}]
    at_once = f", {len(slots)} at a time" if len(slots) > 1 else ""
    print(
        f"[study {spec.name}] {len(planned)} runs ({', '.join(spec.runs)} x seeds {', '.join(map(str, spec.seeds))}) "
        f"in {index.path.parent}{at_once}; each run's messages go to its {RunDir(index.path.parent).log.name}",
        flush=True,
    )
    for i, pr, what in settled:
        progress(spec, index, i, pr, what)
    if len(slots) > 1:
        execute_parallel(spec, index, queue, slots)
    else:
        for i, pr, state in queue:
            train_here(spec, index, i, pr, state)


# ---- the run's process ------------------------------------------------------------------------------------------


def die_with_parent(parent: int) -> None:
    """SIGTERM when the study's process dies (Linux), so a killed study leaves no run training without it."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # it died before the request
        os.kill(os.getpid(), signal.SIGTERM)


def work(task: dict) -> tuple[dict, int]:
    """Train one planned run as ``launch.train_one`` does; ``(outcome, exit status)``."""
    from gen_lightning.config import compose

    run_dir = Path(task["run_dir"])
    try:
        pr = PlannedRun(task["key"], task["run"], task["seed"], run_dir, task["overrides"], compose(task["overrides"]))
        summary = train_one(pr, resume=task["resume"])
    except Exception as err:
        RunDir(run_dir).error.write_text(traceback.format_exc())
        return {"status": "failed", "error": f"{type(err).__name__}: {err}"}, 1
    except BaseException:  # SIGTERM (StopOnSignal saved a checkpoint), Ctrl-C
        return {"status": "interrupted"}, 143
    if summary.get("status") != "completed":
        return {"status": "interrupted"}, 143
    return {"status": "completed", "global_step": summary["global_step"], "final": summary.get("final", {})}, 0


def main() -> None:
    task = json.loads(sys.argv[1])
    die_with_parent(task["parent"])
    result, code = work(task)
    with os.fdopen(task["result_fd"], "w") as out:
        json.dump(result, out)
    sys.exit(code)


if __name__ == "__main__":
    main()
