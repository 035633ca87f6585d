"""What a file may make the project do, and what a kill, a full disk or a signal leaves behind (issue 24).

- A checkpoint or a run's config.yaml may name only classes the project declares (gen_lightning/run/declared.py):
  a payload naming ``os.system``, another module's function or a real class outside the families is refused in
  ``sample``, ``evaluate``, a resume, ``init_from`` and a study's evaluation, and the file it would create is not
  there afterwards.
- Checkpoints are written beside their target and renamed once whole (callbacks/checkpointing.AtomicCheckpointIO):
  a write that fails half way (a full disk) or a writer killed mid-write leaves the previous ``last.ckpt``, and the
  run resumes from it; a cut-short ``last.ckpt`` makes a resume fall back to the newest readable checkpoint.
- SIGTERM ends ``gen-lightning fit`` with a checkpoint at a batch boundary, status "interrupted" and exit 143,
  and ``resume=true`` continues exactly (the weights equal an uninterrupted run's).
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import tiny_overrides
from helpers import module_weights

from gen_lightning import cli
from gen_lightning.callbacks.checkpointing import AtomicCheckpointIO
from gen_lightning.config import compose
from gen_lightning.run import declared, train
from gen_lightning.run.resume_policy import checkpoint_to_resume, resolve_for_resume

CMD = [sys.executable, "-m", "gen_lightning.cli"]


def fit(run_dir: Path, *extra: str, steps: int = 4, model: str = "vae") -> dict:
    given = [f"trainer.max_steps={steps}", *extra]
    cfg = compose(tiny_overrides(run_dir, "trainer.max_epochs=-1", *given, model=model))
    changes = None
    if cfg.resume:
        cfg, changes = resolve_for_resume(cfg, given)
    return train.fit(cfg, resume_changes=changes)


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("trust") / "run"
    fit(run_dir)
    return run_dir


def payloads(marker: Path) -> dict[str, tuple[str, dict]]:
    """Targets a crafted file could name, each with arguments that would create ``marker`` if it were called."""
    return {
        "os.system": ("os.system", {"command": f"touch {marker}"}),
        "a function of the project": ("gen_lightning.files.write_text", {"path": str(marker), "text": "x"}),
        "a class outside the families": ("subprocess.Popen", {"args": ["touch", str(marker)]}),
    }


def crafted_copy(run_dir: Path, dest: Path, target: str, hparams: dict) -> Path:
    """A copy of the run whose last.ckpt names ``target`` with ``hparams`` (plain values: weights_only loads it)."""
    shutil.copytree(run_dir, dest, ignore=shutil.ignore_patterns(".lock"))
    path = dest / "checkpoints" / "last.ckpt"
    ckpt = torch.load(path, weights_only=True)
    ckpt["gen_lightning"]["target"] = target
    ckpt["hyper_parameters"] = hparams
    torch.save(ckpt, path)
    return path


@pytest.mark.parametrize("payload", ["os.system", "a function of the project", "a class outside the families"])
def test_a_checkpoint_naming_undeclared_code_runs_nothing(finished, tmp_path, payload):
    marker = tmp_path / "PWNED"
    target, hparams = payloads(marker)[payload]
    ckpt = crafted_copy(finished, tmp_path / "run", target, hparams)
    for command in (["sample", f"ckpt={ckpt}", "n=2"], ["evaluate", f"ckpt={ckpt}", "metrics=classifier"]):
        with pytest.raises(SystemExit) as info:
            cli.main(command)
        assert f"names '{target}'" in str(info.value) and "does not declare" in str(info.value), info.value
    with pytest.raises(Exception, match="does not declare"):
        fit(tmp_path / "fine_tuned", f"init_from={ckpt}")
    with pytest.raises(Exception, match=r"holds a .*but this run builds"):
        fit(tmp_path / "run", "resume=true", steps=8)
    from gen_lightning.studies.evaluations import evaluate_variant

    result = evaluate_variant(tmp_path / "run", "crafted", [])
    assert result["status"] == "failed" and "does not declare" in result["error"]
    assert not marker.exists(), "the payload ran"


def test_a_saved_config_naming_undeclared_code_is_refused(finished, tmp_path):
    marker = tmp_path / "PWNED"
    shutil.copytree(finished, tmp_path / "run", ignore=shutil.ignore_patterns(".lock"))
    config = tmp_path / "run" / "config.yaml"
    genuine = "_target_: gen_lightning.data.images.ImageDataModule"
    config.write_text(config.read_text().replace(genuine, f"_target_: os.system\n  command: touch {marker}", 1))
    assert "os.system" in config.read_text()
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    with pytest.raises(SystemExit, match=r"config.yaml names 'os.system'.*does not declare"):
        cli.main(["evaluate", f"ckpt={ckpt}", "metrics=classifier"])
    with pytest.raises(declared.UndeclaredTarget):
        fit(tmp_path / "run", "resume=true", steps=8)
    assert not marker.exists()


def test_declared_classes_and_moved_ones():
    assert declared.is_declared("gen_lightning.vae.module.VAE")
    assert declared.is_declared("lightning.pytorch.profilers.AdvancedProfiler")  # trainer.profiler._target_=...
    assert not declared.is_declared("gen_lightning.files.write_text")
    assert declared.check("gen_lightning.search.TrialPruning", "x") == "gen_lightning.commands.search.TrialPruning"
    declared.declare("my_package.models.MyModel")  # a family registered in this process
    assert declared.is_declared("my_package.models.MyModel")


# ---- writes that are cut short -----------------------------------------------------------------------------
def test_a_full_disk_during_a_checkpoint_write_keeps_the_previous_one(finished, tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    shutil.copytree(finished, run_dir, ignore=shutil.ignore_patterns(".lock"))
    last = run_dir / "checkpoints" / "last.ckpt"
    before = last.read_bytes()
    real_save = torch.save

    def disk_full(obj, f, *args, **kwargs):
        if str(getattr(f, "name", f)).endswith(".tmp"):
            f.write(b"x" * 1000)  # half a file, then no space left
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(OSError, match="No space left"):
        fit(run_dir, "resume=true", steps=8)
    monkeypatch.undo()
    assert last.read_bytes() == before, "the previous last.ckpt was touched"
    assert not list(last.parent.glob("*.tmp")), "the temporary file was left behind"
    assert fit(run_dir, "resume=true", steps=8)["global_step"] == 8


def test_a_cut_short_last_ckpt_resumes_from_the_newest_readable_checkpoint(finished, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(finished, run_dir, ignore=shutil.ignore_patterns(".lock"))
    last, best = run_dir / "checkpoints" / "last.ckpt", run_dir / "checkpoints" / "best.ckpt"
    assert best.is_file()
    last.write_bytes(last.read_bytes()[:5000])  # a copy that was killed half way
    (run_dir / "checkpoints" / "last.ckpt.123.tmp").write_bytes(b"partial")
    cfg = compose(tiny_overrides(run_dir, "resume=true"))
    with pytest.warns(UserWarning, match=r"resuming from .*best\.ckpt.*last\.ckpt: checkpoint .* corrupt or truncated"):
        path, ckpt = checkpoint_to_resume(cfg)
    assert path == best and ckpt["global_step"] == 4
    assert not (run_dir / "checkpoints" / "last.ckpt.123.tmp").exists()


SLOW_WRITER = """
import sys, time, torch
from gen_lightning.callbacks.checkpointing import AtomicCheckpointIO

class Slow:  # a checkpoint whose pickling takes seconds: the writer is killed inside torch.save
    def __reduce__(self):
        print("writing", flush=True)
        time.sleep(60)
        return (int, (0,))

AtomicCheckpointIO().save_checkpoint({"state_dict": {"w": torch.ones(1000)}, "slow": Slow()}, sys.argv[1])
"""


def test_a_writer_killed_mid_write_leaves_the_previous_checkpoint(tmp_path):
    """The run directory on another file system than $TMPDIR when one is at hand (/dev/shm): the move of a
    temporary file across file systems was the copy that truncated last.ckpt."""
    folder = Path("/dev/shm") if Path("/dev/shm").is_dir() and os.access("/dev/shm", os.W_OK) else tmp_path
    target = Path(folder) / f"gen-lightning-test-{os.getpid()}" / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"state_dict": {"w": torch.zeros(1000)}}, target)
    before = target.read_bytes()
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    command = [sys.executable, "-c", SLOW_WRITER, str(target)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout.readline().strip() == "writing"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        assert target.read_bytes() == before
        assert torch.load(target, weights_only=True)["state_dict"]["w"].sum() == 0
    finally:
        proc.kill()
        shutil.rmtree(target.parent, ignore_errors=True)


# ---- signals ----------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_sigterm_saves_exits_143_and_the_resume_is_exact(tmp_path):
    common = [*tiny_overrides(tmp_path / "x"), "trainer.max_epochs=-1", "checkpoint.every_n_train_steps=1000"]
    common = [o for o in common if not o.startswith("run_dir=")]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    full = subprocess.run([*CMD, "fit", *common, f"run_dir={tmp_path / 'full'}", "trainer.max_steps=60"], env=env,
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert full.returncode == 0, full.stderr[-2000:]
    cut = tmp_path / "cut"
    proc = subprocess.Popen([*CMD, "fit", *common, f"run_dir={cut}", "trainer.max_steps=60"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.time() + 300
    while not (cut / "metrics.json").is_file() and time.time() < deadline:  # the first validation (step 23) is done
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 143, err[-2000:]
    assert "interrupted by SIGTERM" in err and "resume=true" in err
    status = json.loads((cut / "metrics.json").read_text())
    assert status["status"] == "interrupted" and status["error"].startswith("SIGTERM"), status
    step = torch.load(cut / "checkpoints" / "last.ckpt", weights_only=True)["global_step"]
    assert 0 < step < 60
    resumed = subprocess.run([*CMD, "fit", f"run_dir={cut}", "resume=true"], env=env, capture_output=True, text=True,
                             timeout=600)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    a = module_weights(tmp_path / "full" / "checkpoints" / "last.ckpt")
    b = module_weights(cut / "checkpoints" / "last.ckpt")
    assert all(torch.equal(a[k], b[k]) for k in a)


# ---- values refused in one line, before anything is written ----------------------------------------------
BAD = {
    "a width of 0": (["model.hidden_dim=0"], r"model.hidden_dim=0: a size"),
    "no heads": (["model=gpt", "data=text_embedded", "model.num_heads=0"], r"model.num_heads=0: a size"),
    "a latent size of 0": (["model.latent_dim=0"], r"model.latent_dim=0: a size"),
    "a learning rate that is text": (["model.lr=abc"], r"model.lr='abc': expected a number"),
    "dropout above 1": (["model=gpt", "data=text_embedded", "model.dropout=1.5"], r"model.dropout=1.5: a dropout"),
    "a batch size of 0": (["data.batch_size=0"], r"data: .*batch_size"),
    "an unknown model key": (["model.hiden_dim=8"], r"hiden_dim"),
    "an unknown sampler": (["model=ddpm", "model.sampler=nope"], r"model: sampler must be one of .*got 'nope'"),
    "a validation fraction above 1": (["data.val_fraction=1.5"], r"data.val_fraction must be in \(0, 1\)"),
    "a super-resolution factor the images do not allow": (
        ["model=srgan", "data=paired", "data.transform=downscale:3"],
        r"downscale:3 needs square images",
    ),
    "a text without its path": (["model=lstm", "data=text"], r"Missing mandatory value: data.path"),
    "an unknown encoding": (
        ["model=lstm", "data=text", "data.path=tests/presets/vae.yaml", "data.encoding=nope"],
        r"data.encoding='nope' is not an encoding",
    ),
    "a GPU where there is none": (["trainer=gpu"], r"no CUDA GPU is available here"),
    "heads that do not divide the width": (
        ["model=gpt", "data=text_embedded", "model.hidden_dim=30", "model.num_heads=4"],
        r"model: .*head",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_bad_value_is_refused_in_one_line_and_writes_nothing(tmp_path, case):
    overrides, match = BAD[case]
    if case == "a GPU where there is none" and torch.cuda.is_available():
        pytest.skip("a GPU is available here")
    run_dir = tmp_path / "run"
    with pytest.raises(SystemExit) as info:
        cli.main(["fit", f"run_dir={run_dir}", "logger=none", "metrics=none", *overrides])
    message = str(info.value)
    assert message.startswith("gen-lightning fit: ") and "\n" not in message and "HYDRA_FULL_ERROR" not in message
    assert re.search(match, message), message
    assert not run_dir.exists(), "a refused command wrote the run directory"


def test_a_resume_below_the_steps_done_is_refused_and_the_config_stays(finished, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(finished, run_dir, ignore=shutil.ignore_patterns(".lock"))
    config = (run_dir / "config.yaml").read_text()
    with pytest.raises(SystemExit, match=r"trainer.max_steps=2 is below the 4 steps this run has done"):
        cli.main(["fit", f"run_dir={run_dir}", "resume=true", "trainer.max_steps=2"])
    assert (run_dir / "config.yaml").read_text() == config


def test_data_changed_in_place_refuses_the_resume(tmp_path, shakespeare_path):
    text = tmp_path / "corpus.txt"
    text.write_text(shakespeare_path.read_text(encoding="utf-8")[:20000], encoding="utf-8")
    run_dir = tmp_path / "run"
    fit(run_dir, "data=text", f"data.path={text}", steps=2, model="lstm")
    lines = text.read_text(encoding="utf-8").splitlines(keepends=True)
    text.write_text("".join(reversed(lines)), encoding="utf-8")  # the same characters, another order
    with pytest.raises(ValueError, match=r"training data differ .*changed: .*corpus.txt"):
        fit(run_dir, "data=text", f"data.path={text}", "resume=true", steps=4, model="lstm")


def test_init_from_a_run_still_training_is_refused(finished, tmp_path):
    from gen_lightning import run_dir as run_dirs

    busy = tmp_path / "busy"
    shutil.copytree(finished, busy, ignore=shutil.ignore_patterns(".lock"))
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from gen_lightning.run_dir import lock; lock(sys.argv[1]); "
         "print('locked', flush=True); time.sleep(60)", str(busy)], stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert run_dirs.is_locked(busy)
        with pytest.raises(Exception, match=r"still training"):
            fit(tmp_path / "new", f"init_from={busy / 'checkpoints' / 'last.ckpt'}")
    finally:
        holder.kill()
