"""``train.fit``: trainer options that Lightning type-checks reach it as plain Python values."""

from __future__ import annotations

import time

from conftest import tiny_overrides

from gen_lightning.config import compose
from gen_lightning.run import train


def test_max_time_as_a_mapping_stops_training_on_the_clock(tmp_path):
    # Lightning accepts max_time as "DD:HH:MM:SS", a timedelta or a dict of timedelta arguments; an OmegaConf
    # DictConfig is none of these (its Timer calls .total_seconds() on it).
    cfg = compose(tiny_overrides(tmp_path / "run", "trainer.max_epochs=-1", "+trainer.max_time={seconds:3}"))
    summary = train.fit(cfg)
    assert summary["status"] == "completed"
    assert summary["global_step"] > 0
    assert summary["train_time_s"] < 60  # stopped by the clock, not by max_epochs=-1 (never)


def test_training_time_leaves_out_the_final_evaluation(tmp_path):
    """train_time_s is the training loop's time; the final image metrics (here with the digit classifier trained
    first) are reported in the protocol card's own seconds."""
    overrides = ["trainer.max_steps=5", "trainer.max_epochs=-1", "metrics=classifier", "metrics.num_samples=256"]
    start = time.perf_counter()
    summary = train.fit(compose(tiny_overrides(tmp_path / "run", *overrides)))
    wall = time.perf_counter() - start
    evaluation = summary["protocol"]["seconds"]
    assert evaluation > 0 and summary["train_time_s"] <= wall - evaluation, (summary["train_time_s"], wall, evaluation)


# ---- when a run validates (callbacks/validation.py) ---------------------------------------------------------------
# The tiny text preset: 26 batches per epoch of the embedded text.


def test_a_budget_that_ends_inside_an_epoch_ends_with_a_validation_and_samples(tmp_path):
    cfg = compose(tiny_overrides(tmp_path / "run", "trainer.max_steps=5", "trainer.max_epochs=-1", model="lstm"))
    summary = train.fit(cfg)
    assert [row["step"] for row in summary["history"]] == [5]  # no epoch ended
    assert {"val/loss", "val/bpc"} <= summary["final"].keys()
    assert (tmp_path / "run" / "samples" / "text" / "step0000005.txt").read_text().strip()


def test_long_epochs_validate_on_a_step_schedule_and_at_the_end(tmp_path):
    extra = ["trainer.max_steps=25", "trainer.max_epochs=-1", "validation.every_n_steps=10"]
    summary = train.fit(compose(tiny_overrides(tmp_path / "run", *extra, model="lstm")))
    assert [row["step"] for row in summary["history"]] == [10, 20, 25]
    # an epoch not longer than every_n_steps keeps Lightning's schedule (epoch ends): 26 batches, one epoch
    extra = ["trainer.max_steps=26", "trainer.max_epochs=-1", "validation.every_n_steps=26"]
    summary = train.fit(compose(tiny_overrides(tmp_path / "other", *extra, model="lstm")))
    assert [row["step"] for row in summary["history"]] == [26]


def test_the_last_epoch_validates_when_the_schedule_skips_it(tmp_path):
    # digits: 23 batches per epoch; validation every 2nd epoch, training ends after the 3rd
    extra = ["trainer.max_epochs=3", "trainer.check_val_every_n_epoch=2"]
    summary = train.fit(compose(tiny_overrides(tmp_path / "run", *extra)))
    assert [row["step"] for row in summary["history"]] == [46, 69]
    assert summary["final"]["val/elbo"] == summary["history"][-1]["val/elbo"]


def test_callbacks_are_configured_removed_and_added_by_config(tmp_path):
    """conf/callbacks/default.yaml: one override configures, removes or adds a callback; the ones every run needs
    cannot be removed; a resume's change of checkpoint.every_n_train_steps reaches the callback (config.yaml keeps
    the callbacks' references unresolved)."""
    import pytest
    import torch
    import yaml

    from gen_lightning.run.resume_policy import resolve_for_resume

    run_dir = tmp_path / "run"
    given = ["trainer.max_steps=6", "trainer.max_epochs=-1", "callbacks.sample_logger=null",
             "+callbacks.timer._target_=lightning.pytorch.callbacks.Timer"]  # fmt: skip
    cfg = compose(tiny_overrides(run_dir, *given))
    names = [type(cb).__name__ for cb in train.build_callbacks(cfg, run_dir, _Monitored(), _Monitored.monitor)]
    assert "SampleLogger" not in names and names[-1] == "Timer"
    assert names.index("LastCheckpoint") < names.index("StopOnSignal")
    train.fit(cfg)
    assert not (run_dir / "samples").exists()
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert saved["callbacks"]["last_checkpoint"]["every_n_train_steps"] == "${checkpoint.every_n_train_steps}"
    with pytest.raises(ValueError, match=r"callbacks.run_summary is part of every run"):
        removed = compose(tiny_overrides(tmp_path / "x", "callbacks.run_summary=null"))
        train.build_callbacks(removed, run_dir, _Monitored(), _Monitored.monitor)
    # The resume asks for a checkpoint every 3 steps: the last periodic save of steps 7-11 is at step 9.
    cont = [
        "trainer.max_steps=11",
        "checkpoint.every_n_train_steps=3",
        "callbacks.last_checkpoint.every_n_train_steps=3",
    ]
    cfg, changes = resolve_for_resume(compose(tiny_overrides(run_dir, "resume=true", *cont)), ["resume=true", *cont])
    seen = []

    class Spy(train.L.Callback):
        def on_save_checkpoint(self, trainer, pl_module, checkpoint):
            seen.append(trainer.global_step)

    original = train.build_callbacks
    train.build_callbacks = lambda *a: [*original(*a), Spy()]
    try:
        train.fit(cfg, resume_changes=changes)
    finally:
        train.build_callbacks = original
    assert 9 in seen and 8 not in seen, seen
    assert torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 11


class _Monitored:
    monitor = ("val/loss", "min")

    def parameters(self):
        return iter(())


def test_a_config_saved_before_the_callbacks_group_gets_the_default_callbacks(tmp_path):
    """Run configs saved before conf/callbacks/ held only extra callbacks under ``callbacks``: a resume of one builds
    every default callback (their ${...} resolved against that config), then its extras."""
    from omegaconf import OmegaConf

    cfg = compose(tiny_overrides(tmp_path / "run", "metrics=classifier"))
    old = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    old.callbacks = {"timer": {"_target_": "lightning.pytorch.callbacks.Timer"}}
    configs = train.callback_configs(old)
    assert list(configs)[-1] == "timer" and list(configs)[:2] == ["exact_resume", "finite_loss_guard"]
    assert configs["metric_protocol"]["_target_"] == "gen_lightning.metrics.callback.ImageMetrics"
    assert configs["exact_resume"]["validation_seed"] == cfg.seed
