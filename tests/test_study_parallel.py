"""Parallel studies (``jobs=N``: studies/jobs.py) and the thread policy of single runs (run/threads.py).

A study trained 2 runs at a time gives the same runs (metrics, weights) as the same study trained one after another
in its own process; a parallel study killed outright (the whole process group, kill -9) continues every unfinished
run exactly when run again; each run gets its share of the machine; bad ``jobs`` and ``threads`` values are refused
in one line."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from helpers import module_weights
from omegaconf import OmegaConf
from test_study import metrics, snapshot, write_study

from gen_lightning import cli
from gen_lightning.config import compose
from gen_lightning.run import threads
from gen_lightning.run import train as train_module
from gen_lightning.studies import jobs
from gen_lightning.studies.plan import PlannedRun

ROOT = Path(__file__).resolve().parents[1]
KEYS = ["mlp_seed0", "conv_seed0", "mlp_seed1", "conv_seed1"]


def study(spec: Path, study_dir: Path, *args: str) -> str:
    """``gen-lightning study`` in this process; what it printed."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        cli.main(["study", str(spec), f"study_dir={study_dir}", "report=false", *args])
    return printed.getvalue()


def assert_same_runs(a: Path, b: Path) -> None:
    for key in KEYS:
        ma, mb = metrics(a / key), metrics(b / key)
        assert ma["status"] == mb["status"] == "completed", key
        assert ma["final"] == mb["final"], key
        assert [r["step"] for r in ma["history"]] == [r["step"] for r in mb["history"]] == [4, 8], key
        wa = module_weights(a / key / "checkpoints" / "last.ckpt")
        wb = module_weights(b / key / "checkpoints" / "last.ckpt")
        assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wb), key


@pytest.fixture(scope="module")
def one_job(tmp_path_factory) -> Path:
    """The miniature study of test_study.py trained one run after another in this process."""
    root = tmp_path_factory.mktemp("one_job")
    study(write_study(root / "mini.yaml"), root / "out", "jobs=1")
    return root / "out"


def test_two_jobs_train_the_same_runs_as_one(one_job, tmp_path):
    out = study(write_study(tmp_path / "mini.yaml"), tmp_path / "out", "jobs=2")
    assert_same_runs(tmp_path / "out", one_job)
    assert "4 runs (mlp, conv x seeds 0, 1) in " in out and ", 2 at a time; each run's messages go to" in out
    # One line per run, whatever order they finish in; Lightning's messages are in each run's train.log.
    lines = [line for line in out.splitlines() if line.startswith("[study mini] run ")]
    assert sorted(re.search(r"run \d/4 (\w+): completed in", line)[1] for line in lines) == sorted(KEYS)
    assert lines[-1].endswith("| [############] 4 completed, 0 failed | ETA -")
    assert "Epoch" not in out and "GPU available" in (tmp_path / "out" / "conv_seed1" / "train.log").read_text()
    index = json.loads((tmp_path / "out" / "study.json").read_text())
    assert all(index["runs"][k]["status"] == "completed" and index["runs"][k]["attempts"] == 1 for k in KEYS)
    # each run had one CPU of this machine's two (or fewer cores: OMP_NUM_THREADS=1 of conftest wins anyway)
    assert metrics(tmp_path / "out" / "mlp_seed0")["threads"]["threads"] == 1
    assert (
        "torch threads: 1 (OMP_NUM_THREADS=1 set in the environment)"
        in (tmp_path / "out" / "mlp_seed0" / "train.log").read_text()
    )


@pytest.mark.slow  # a study in a subprocess, then again: 50 s on an idle 2-core machine, minutes on a busy one
def test_a_killed_parallel_study_continues_every_run_exactly(one_job, tmp_path):
    """The study's process group is killed (SIGKILL) once its first run has completed and another one has
    written a checkpoint; the same command again resumes that run, starts the rest and skips the completed one."""
    spec, study_dir = write_study(tmp_path / "mini.yaml"), tmp_path / "out"
    command = [sys.executable, "-m", "gen_lightning.cli", "study", str(spec), f"study_dir={study_dir}", "jobs=2",
               "report=false"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def state(key: str) -> str:
        summary = study_dir / key / "metrics.json"
        if summary.is_file() and json.loads(summary.read_text()).get("status") == "completed":
            return "completed"
        return "resume" if (study_dir / key / "checkpoints" / "last.ckpt").is_file() else "fresh"

    with open(tmp_path / "first.log", "w") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 600
        try:
            while time.monotonic() < deadline and process.poll() is None:
                states = [state(k) for k in KEYS]
                if "completed" in states and "resume" in states:
                    break
                time.sleep(0.05)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)  # the study and every run it started
            process.wait()
    states = {k: state(k) for k in KEYS}
    assert "completed" in states.values() and "resume" in states.values(), (tmp_path / "first.log").read_text()
    assert list(states.values()).count("completed") < len(KEYS)
    done = {k: snapshot(study_dir / k) for k, s in states.items() if s == "completed"}

    out = study(spec, study_dir, "jobs=2")
    for key, s in states.items():
        expected = {"completed": "completed before, skipped", "resume": "resumed from checkpoints/last.ckpt, completed"}
        assert re.search(rf"run \d/4 {key}: {expected.get(s, 'completed in')}", out), (key, s, out)
    for key, files in done.items():
        assert snapshot(study_dir / key) == files, f"{key} was touched although it had completed"
    assert_same_runs(study_dir, one_job)
    index = json.loads((study_dir / "study.json").read_text())
    assert all(index["runs"][k]["attempts"] == 2 for k, s in states.items() if s == "resume")


@pytest.mark.parametrize("value", ["0", "-1", "x", "1.5", "true"])
def test_a_bad_jobs_value_is_one_clear_error(value, tmp_path):
    spec = write_study(tmp_path / "mini.yaml")
    with pytest.raises(
        SystemExit, match=r"jobs=.*: jobs must be a positive integer \(the runs trained at once\) or auto"
    ):
        cli.main(["study", str(spec), f"study_dir={tmp_path / 'out'}", f"jobs={value}"])
    assert not (tmp_path / "out").exists()
    with pytest.raises(SystemExit, match="jobs=... is for launcher=inprocess; with launcher=hydra"):
        cli.main(["study", str(spec), f"study_dir={tmp_path / 'out'}", "jobs=2", "launcher=hydra"])


def planned(trainer: dict) -> PlannedRun:
    return PlannedRun("a_seed0", "a", 0, Path("unused"), [], cfg=OmegaConf.create({"trainer": trainer}))


def test_each_job_gets_its_share_of_the_gpus_or_the_cpus(monkeypatch):
    monkeypatch.setattr(jobs, "cpus", lambda: 16)
    monkeypatch.setattr(jobs, "visible_gpus", lambda: [])
    cpu_runs = [planned({"accelerator": "cpu", "devices": 1})] * 6
    assert jobs.shares("auto", cpu_runs) == [{jobs.CPU_SHARE_ENV: "2"}] * 6  # one job per core, at most one per run
    assert jobs.shares(4, cpu_runs) == [{jobs.CPU_SHARE_ENV: "4"}] * 4
    monkeypatch.setattr(jobs, "visible_gpus", lambda: ["4", "5", "6", "7"])  # CUDA_VISIBLE_DEVICES=4,5,6,7
    gpu_runs = [planned({"accelerator": "gpu", "devices": 1})] * 6
    slots = jobs.shares("auto", gpu_runs)
    assert [s["CUDA_VISIBLE_DEVICES"] for s in slots] == ["4", "5", "6", "7"] and slots[0][jobs.CPU_SHARE_ENV] == "4"
    ddp_runs = [planned({"accelerator": "auto", "devices": 2})] * 6
    assert [s["CUDA_VISIBLE_DEVICES"] for s in jobs.shares("auto", ddp_runs)] == ["4,5", "6,7"]
    assert [s.get("CUDA_VISIBLE_DEVICES") for s in jobs.shares("auto", cpu_runs)] == [None] * 6  # trainer=cpu
    assert jobs.CPU_SHARE_ENV == threads.CPU_SHARE_ENV


def test_the_eta_counts_the_runs_in_flight():
    from gen_lightning.studies.index import eta

    class Index:
        data = {"runs": {f"r{i}": {"run": "r", "status": "pending"} for i in range(4)}}

    Index.data["runs"]["r0"].update(status="completed", wall_s=10.0)
    assert eta(Index, 1) == 30.0 and eta(Index, 2) == 15.0 and eta(Index, 8) == 10.0  # never less than one run


# ---- the thread policy ------------------------------------------------------------------------------------------


def test_thread_policy_gives_small_models_one_thread_and_large_ones_their_cpus():
    threads_now = torch.get_num_threads()
    tiny, why = threads.choose("auto", 303_000, {"batch_size": 32}, env={})  # the quick study's VAE
    assert tiny == 1 and "0.3M parameters" in why
    big = {"batch_size": 32, "block_size": 256}  # 10M parameters x 8,192 tokens per step
    assert threads.choose("auto", 10_000_000, big, env={})[0] == threads.cpu_share({})
    assert threads.choose("auto", 10_000_000, big, env={threads.CPU_SHARE_ENV: "1"})[0] == 1  # a study's share
    assert threads.choose("auto", 10_000_000, big, env={}, processes=64)[0] == 1  # CPU DDP: the processes share
    # What the user chose is kept: the config key, then OMP_NUM_THREADS, then torch.set_num_threads.
    assert threads.choose(3, 303_000, {"batch_size": 32}, env={}) == (3, "threads=3 in the config")
    assert threads.choose("auto", 10_000_000, big, env={"OMP_NUM_THREADS": "1"}) == (
        threads_now,
        "OMP_NUM_THREADS=1 set in the environment",
    )
    torch.set_num_threads(threads_now + 1)
    try:
        assert threads.choose("auto", 303_000, {"batch_size": 32}, env={})[0] == threads_now + 1
    finally:
        torch.set_num_threads(threads_now)


def test_a_run_uses_and_records_the_threads_of_its_config(tmp_path, monkeypatch):
    threads_now = torch.get_num_threads()
    monkeypatch.delenv("OMP_NUM_THREADS")
    cfg = compose(["model=vae", "model.hidden_dim=16", "logger=none", "metrics=none", "trainer.max_steps=2",
                   "trainer.enable_progress_bar=false", f"run_dir={tmp_path / 'run'}", "threads=2"])  # fmt: skip
    try:
        summary = train_module.fit(cfg)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads_now)
    assert summary["threads"] == {"threads": 2, "why": "threads=2 in the config"}
    assert metrics(tmp_path / "run")["threads"]["threads"] == 2


@pytest.mark.parametrize("value", [0, -1, "x", 1.5])
def test_a_bad_threads_value_is_one_clear_error(value, tmp_path):
    with pytest.raises(SystemExit, match=rf"threads={value!r}: threads must be auto .* or a positive integer"):
        cli.main(["fit", "logger=none", f"run_dir={tmp_path / 'run'}", f"threads={value}"])
