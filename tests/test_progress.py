"""The progress bar counts the run's batches to the first budget that ends it (gen_lightning/callbacks/progress.py)."""

from __future__ import annotations

import math

import pytest
from conftest import tiny_overrides

from gen_lightning.callbacks.progress import RichBudgetProgressBar, TQDMBudgetProgressBar, budget, description
from gen_lightning.config import compose
from gen_lightning.run import train


def test_the_first_budget_to_end_sets_the_total_and_the_last_epoch():
    # max_steps=2000 on a corpus of 13,077 batches an epoch and max_epochs=50: the steps end the run in epoch 0.
    b = budget(0, 0, 13077.0, 50, 2000, 1.0, None, None)
    assert (b.total, b.last_epoch, b.ends_by) == (2000, 0, "max_steps")
    assert description(0, b, 2000, None) == "Epoch 0/0 (max_steps 2000)"
    # Epochs end first: 3 epochs of 23 batches, 500 steps allowed.
    b = budget(1, 30, 23.0, 3, 470, 1.0, None, None)
    assert (b.total, b.last_epoch, b.ends_by) == (69, 2, "max_epochs")
    assert description(1, b, 500, None) == "Epoch 1/2"
    # Two optimizer steps a batch (a GAN): 100 steps left are 50 batches.
    b = budget(0, 10, 1000.0, 50, 100, 2.0, None, None)
    assert (b.total, b.ends_by) == (60, "max_steps")
    # The clock ends first: 60 s left at 10 batches/s = 600 batches, before 5,000 steps and 50 epochs of 1,000.
    b = budget(0, 100, 1000.0, 50, 5000, 1.0, 60.0, 10.0)
    assert (b.total, b.last_epoch, b.ends_by) == (700, 0, "max_time")
    assert description(0, b, 5100, 300.0) == "Epoch 0/0 (max_time 00:05:00)"
    # No budget known (max_epochs=-1, max_steps=-1, an iterable data set): no total.
    assert math.isinf(budget(0, 5, math.inf, -1, None, 1.0, None, None).total)


RICH, TQDM = RichBudgetProgressBar, TQDMBudgetProgressBar


@pytest.mark.parametrize(
    ("bar_class", "model", "extra", "batches", "ends_by"),
    [
        # the digits: 23 batches an epoch at the tiny preset; 30 steps end the run in epoch 1
        (RICH, "vae", ["trainer.max_steps=30", "trainer.max_epochs=50"], 30, "max_steps 30"),
        (TQDM, "vae", ["trainer.max_steps=30", "trainer.max_epochs=50"], 30, "max_steps 30"),
        (RICH, "vae", ["trainer.max_steps=-1", "trainer.max_epochs=2"], 46, None),
        # WGAN-GP steps its two optimizers on successive batches (n_critic=2): 3 steps every 2 batches
        (RICH, "wgan_gp", ["trainer.max_steps=30", "trainer.max_epochs=50"], 20, "max_steps 30"),
    ],
)
def test_the_bar_of_a_run_ends_full_at_its_budget(tmp_path, monkeypatch, bar_class, model, extra, batches, ends_by):
    shown = []
    original = bar_class._show

    def record(self, trainer):
        original(self, trainer)
        b = self.meter.measure(trainer)
        shown.append((b.done, b.total, description(trainer.current_epoch, b, trainer.max_steps, None)))

    monkeypatch.setattr(bar_class, "_show", record)
    monkeypatch.setattr("gen_lightning.callbacks.progress.BudgetProgressBar", bar_class)
    overrides = tiny_overrides(tmp_path / "run", *extra, "trainer.enable_progress_bar=true", model=model)
    summary = train.fit(compose(overrides))
    assert summary["status"] == "completed"
    done, total, text = shown[-1]
    assert done == total == batches  # the bar ends full: it counted the batches the budget allowed
    # Once the ratio of steps to batches is measured, the total stays (the ETA is the run's, not an epoch's). A GAN's
    # steps alternate batch to batch (one critic step, then critic and generator): its estimate moves by one batch.
    if model == "wgan_gp":
        assert {t for _, t, _ in shown[len(shown) // 2 :]} <= {batches, batches + 1}
    else:
        assert {t for _, t, _ in shown[2:]} == {batches}
    assert text.endswith(f"({ends_by})") if ends_by else text == "Epoch 1/1"


def test_a_disabled_progress_bar_leaves_the_callback_out(tmp_path):
    summary = train.fit(compose(tiny_overrides(tmp_path / "run", "trainer.max_steps=3")))  # enable_progress_bar=false
    assert summary["status"] == "completed"
