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
