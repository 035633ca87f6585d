"""``train.fit``: trainer options that Lightning type-checks reach it as plain Python values."""

from __future__ import annotations

import time

from conftest import tiny_overrides

from gen_lightning import train
from gen_lightning.config import compose


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
