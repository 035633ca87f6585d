"""Bad input and faults, as a careless or hostile user meets them: one clear message, no code run from a file,
nothing already written changed, and a run that can always be resumed to the result of an uninterrupted one.

Each refusal is checked for its message and for leaving the run directory byte for byte as it was (hashed before
and after). Subprocess cases (a second writer, a full disk, a killed process) run the real command line.
"""

from __future__ import annotations

import hashlib
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
from conftest import tiny_overrides
from helpers import module_weights

from gen_lightning import cli
from gen_lightning.config import compose
from gen_lightning.run import train
from gen_lightning.run.resume_policy import resolve_for_resume

CMD = [sys.executable, "-m", "gen_lightning.cli"]


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (the lock file aside) and its sha256."""
    if not folder.exists():
        return {}
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


def fit(run_dir: Path, *extra: str, model: str = "vae") -> dict:
    cfg = compose(tiny_overrides(run_dir, "trainer.max_steps=6", "trainer.max_epochs=-1", *extra, model=model))
    changes = None
    if cfg.resume:
        cfg, changes = resolve_for_resume(cfg, list(extra))
    return train.fit(cfg, resume_changes=changes)


def refused(args: list[str], match: str, folder: Path) -> None:
    """``gen-lightning ARGS`` ends in one message matching ``match`` and leaves ``folder`` unchanged."""
    before = snapshot(folder)
    with pytest.raises(SystemExit) as info:
        cli.main(args)
    message = str(info.value)
    assert message.startswith("gen-lightning") and "Traceback" not in message, message
    assert re.search(match, message), message
    assert snapshot(folder) == before, "a refused command changed files"


@pytest.fixture(scope="module")
def done_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("faults") / "run"
    fit(run_dir)
    return run_dir


# ---------------------------------------------------------------- no code runs from a file


class Payload:
    """Unpickling this writes a file: what a crafted checkpoint would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "code ran"))


def evil_checkpoint(path: Path, marker: Path, target: str = "gen_lightning.vae.module.VAE") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": {}, "gen_lightning": {"target": target}, "x": Payload(marker)}, path, pickle_protocol=2)
    return path


def test_a_crafted_checkpoint_runs_no_code_in_any_command(done_run, tmp_path):
    marker = tmp_path / "pwned"
    evil = evil_checkpoint(tmp_path / "evil" / "checkpoints" / "last.ckpt", marker)
    (tmp_path / "evil" / "config.yaml").write_text((done_run / "config.yaml").read_text())
    for args in (["sample", f"ckpt={evil}"], ["evaluate", f"ckpt={evil}", "metrics=classifier"]):
        refused(args, "not a checkpoint this tool trusts", tmp_path / "evil")
    refused(
        ["fit", f"run_dir={tmp_path / 'evil'}", "resume=true"], "not a checkpoint this tool trusts", tmp_path / "evil"
    )
    assert not marker.exists(), "unpickling the checkpoint ran code"
    # The project's own checkpoints load that way (every family: tests/test_contract.py round-trips them).
    assert torch.load(done_run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 6


# ---------------------------------------------------------------- refusals write nothing


def test_fit_refusals_are_one_message_and_write_nothing(done_run, tmp_path):
    d = str(done_run)
    refused(["fit", f"run_dir={d}", "logger=none"], "already holds a run", done_run)
    refused(["fit", f"run_dir={d}", "resume=true", "model=dcgan"], "cannot change the config group 'model'", done_run)
    refused(["fit", f"run_dir={d}", "resume=true", "seed=3"], "seed.*another seed would be another run", done_run)
    refused(["fit", f"run_dir={d}", "resume=true", "data.val_fraction=0.3"], "other data", done_run)
    missing = tmp_path / "missing"
    refused(["fit", f"run_dir={missing}", "resume=true"], "does not exist.*a run directory", tmp_path)
    assert not missing.exists()
    refused(
        ["fit", f"run_dir={tmp_path / 'x'}", "trainer.max_steps=abc"], "trainer.max_steps must be an integer", tmp_path
    )
    refused(["fit", f"run_dir={tmp_path / 'x'}", "seed=-1"], "seed must be an integer", tmp_path)
    refused(
        ["fit", f"run_dir={tmp_path / 'x'}", "model.lr=0"], "model.lr=0: a learning rate must be positive", tmp_path
    )
    refused(["fit", f"run_dir={tmp_path / 'x'}", "model=gpt"], "GPT does unconditional text.*data=text", tmp_path)
    (tmp_path / "afile").write_text("x")
    refused(["fit", "run_dir=" + str(tmp_path / "afile")], "is a file, not a directory", tmp_path)
    readonly = tmp_path / "ro"
    readonly.mkdir()
    readonly.chmod(0o500)
    try:
        if not os.access(readonly, os.W_OK):  # root can write anywhere: nothing to check then
            refused(["fit", f"run_dir={readonly / 'run'}"], "cannot be written", readonly)
    finally:
        readonly.chmod(0o700)


def test_resume_repeating_its_own_groups_is_accepted_and_changes_are_recorded(tmp_path):
    run_dir = tmp_path / "run"
    fit(run_dir, "model.hidden_dim=16")
    summary = fit(run_dir, "resume=true", "model.hidden_dim=16", "trainer.max_steps=9")
    assert summary["global_step"] == 9
    entries = [json.loads(line) for line in (run_dir / "resumes.jsonl").read_text().splitlines()]
    assert entries[-1]["changes"] == {"trainer.max_steps": [6, 9]}
    assert "max_steps: 9" in (run_dir / "config.yaml").read_text()


def test_resume_with_a_new_learning_rate_applies_it_to_the_restored_optimizer(tmp_path):
    run_dir = tmp_path / "run"
    fit(run_dir)
    fit(run_dir, "resume=true", "model.lr=0.0005", "trainer.max_steps=8")
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["hyper_parameters"]["lr"] == 0.0005
    assert all(g["lr"] == 0.0005 for g in ckpt["optimizer_states"][0]["param_groups"])
    assert ckpt["optimizer_states"][0]["state"], "the restored Adam moments were kept"


def test_resume_refuses_a_vocabulary_changed_under_the_model(tmp_path):
    text = tmp_path / "a.txt"
    text.write_text("abcabcabc " * 400)
    run_dir = tmp_path / "run"
    fit(run_dir, "data=text", f"data.path={text}", "data.block_size=8", "data.batch_size=4", model="lstm")
    text.write_text("xyzxyz " * 400)  # the file changes under the run: another vocabulary
    with pytest.raises(Exception, match="tokenizer"):
        fit(run_dir, "resume=true", model="lstm")


# ---------------------------------------------------------------- bad data, bad values


def test_a_wrong_label_column_is_an_error_not_unlabelled_data(tmp_path, mnist_dir):
    from helpers import write_mnist_parquet

    from gen_lightning.data.images import ImageDataModule
    from gen_lightning.data.sources import DataSourceError

    path = write_mnist_parquet(mnist_dir, tmp_path, 64).parent
    with pytest.raises(DataSourceError, match="label column 'digit' not found.*'label'"):
        ImageDataModule(source="parquet", path=str(path), label_column="digit").setup()
    dm = ImageDataModule(source="parquet", path=str(path))  # auto: 'label' where it exists
    dm.setup()
    assert dm.num_classes == 10


def test_sample_arguments_are_checked(done_run, tmp_path):
    ckpt = done_run / "checkpoints" / "last.ckpt"
    for bad in ("n=0", "n=-1", "n=abc"):
        refused(["sample", f"ckpt={ckpt}", bad], "n must be a positive integer", done_run)
    refused(["sample", "n=4"], "usage: gen-lightning sample ckpt=PATH", done_run)


def test_the_non_finite_guard_says_what_exists(tmp_path):
    from gen_lightning.callbacks.finite import NonFiniteLossError

    with pytest.raises(NonFiniteLossError, match="No checkpoint was written, so the run cannot be resumed"):
        fit(tmp_path / "run", "model.lr=1e30", "checkpoint.every_n_train_steps=100")


# ---------------------------------------------------------------- processes: a second writer, kills, a full disk


def start_fit(run_dir: Path, *extra: str) -> subprocess.Popen:
    args = tiny_overrides(run_dir, *extra)
    return subprocess.Popen([*CMD, "fit", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(path: Path, timeout: float = 120) -> None:
    end = time.time() + timeout
    while time.time() < end:
        if path.is_file() and path.stat().st_size > 0:
            return
        time.sleep(0.2)
    raise AssertionError(f"{path} did not appear")


@pytest.mark.slow  # three processes importing torch: ~1 min on the shared 2-core machine
def test_a_second_writer_is_refused_and_a_dead_writers_lock_is_taken_over(tmp_path):
    run_dir = tmp_path / "run"
    first = start_fit(run_dir, "trainer.max_steps=100000", "trainer.max_epochs=-1", "checkpoint.every_n_train_steps=20")
    try:
        wait_for(run_dir / "checkpoints" / "last.ckpt")
        second = subprocess.run([*CMD, "fit", *tiny_overrides(run_dir, "resume=true")], capture_output=True, text=True)
        assert second.returncode != 0
        assert f"in use by another gen-lightning process (pid {first.pid})" in second.stderr, second.stderr[-2000:]
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()

    # The kernel released the dead process's lock: a resume takes it over and continues (a few steps past where
    # the killed run stopped, however far a loaded machine let it get).
    def steps_done() -> int:
        return torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["global_step"]

    done = steps_done()
    more = f"trainer.max_steps={done + 10}"
    again = subprocess.run([*CMD, "fit", *tiny_overrides(run_dir, "resume=true", more)], capture_output=True, text=True)
    assert again.returncode == 0, again.stderr[-2000:]
    assert steps_done() == done + 10


@pytest.mark.slow  # a fresh process under a file-size limit
def test_a_full_disk_during_a_save_is_one_message_and_keeps_the_last_good_checkpoint(tmp_path):
    run_dir = tmp_path / "run"
    fit(run_dir, "model.hidden_dim=256")  # ~2 MB checkpoints
    good = module_weights(run_dir / "checkpoints" / "last.ckpt")
    args = " ".join(tiny_overrides(run_dir, "resume=true", "trainer.max_steps=12", "model.hidden_dim=256"))
    proc = subprocess.run(
        ["bash", "-c", f"ulimit -f 1000; exec {sys.executable} -m gen_lightning.cli fit {args}"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode != 0
    assert "File too large" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    after = module_weights(run_dir / "checkpoints" / "last.ckpt")  # still loadable, still the good state
    assert all(torch.equal(good[k], after[k]) for k in good)


def test_a_run_killed_during_its_final_evaluation_is_not_completed_and_resumes_to_it(tmp_path, monkeypatch):
    from gen_lightning.metrics.callback import ImageMetrics

    metrics = [
        "metrics=classifier",
        "metrics.num_samples=100",
        "metrics.every_n_epochs=0",
        "metrics.classifier.steps=20",
    ]
    original = ImageMetrics.on_train_end

    def killed(self, trainer, pl_module):
        raise RuntimeError("killed")  # what a kill in the final evaluation leaves: no metrics, no "completed"

    monkeypatch.setattr(ImageMetrics, "on_train_end", killed)
    run_dir = tmp_path / "run"
    with pytest.raises(RuntimeError, match="killed"):
        fit(run_dir, *metrics)
    assert json.loads((run_dir / "metrics.json").read_text())["status"] != "completed"
    monkeypatch.setattr(ImageMetrics, "on_train_end", original)
    summary = fit(run_dir, "resume=true")
    assert summary["status"] == "completed" and "val/fid_clf" in summary["final"]
    assert json.loads((run_dir / "metrics.json").read_text())["final"]["val/fid_clf"] == summary["final"]["val/fid_clf"]


def test_an_unknown_sampling_option_names_the_accepted_ones(tmp_path):
    fit(tmp_path / "gan", model="dcgan")
    ckpt = tmp_path / "gan" / "checkpoints" / "last.ckpt"
    refused(["sample", f"ckpt={ckpt}", "steps=3"], "GAN.sample does not take steps; it takes labels", tmp_path / "gan")


# ---------------------------------------------------------------- issue 24, cases tested beside their code
# Honest exits of studies (tests/test_study.py, tests/test_study_eval.py):
#   test_runs_that_cannot_be_trained_refuse_the_study_before_any_trains: a model that does not exist, a model that
#     does not fit the data, model.lr=0, a misspelt key: all runs named in one message, nothing written
#   test_failing_runs_are_recorded_the_others_run_and_the_study_exits_non_zero: a NaN run, exit 1 after the report
#   test_interrupted_study_resumes_and_equals_the_uninterrupted_one: a crashed run, exit 1 until resumed
#   test_an_evaluation_naming_no_parameter_of_the_model_refuses_the_study; a failed evaluation variant exits 1
#     (test_evaluation_variants_of_one_trained_model)
# Resume messages and epochs (tests/test_summary.py):
#   test_a_budget_extended_mid_epoch_continues_the_epoch_quietly_and_exactly: neither of Lightning's two warnings,
#     one "Resuming mid-epoch at batch K" line, the real epoch in metrics.json, the weights of the uninterrupted run
#   test_a_fresh_run_into_a_used_checkpoint_folder_still_warns: what the project does not handle stays
# Searches (tests/test_search.py):
#   test_every_search_space_runs_with_a_short_budget (slow): every conf/hparams_search/*.yaml completes a trial
#   test_a_search_whose_trials_all_fail_says_why_in_one_line: no Optuna "No trials are completed yet" traceback
#   test_a_search_whose_objective_is_never_computed_at_a_validation_is_refused_before_any_trial
# Test reports on the whole split (tests/test_protocols.py):
#   test_another_split_is_scored_whole_unless_the_subset_is_asked_for (text, paired images, classification)
#   test_evaluate_split_test_on_a_run_scores_the_whole_test_split (the command line)
# Per-item output formats (tests/test_music.py):
#   test_midi_files_write_every_tune_that_renders_and_name_the_others
#   test_sample_format_midi_exits_0_when_some_tunes_render_and_1_when_none_do
