"""The run summary (gen_lightning/callbacks/summary.py): metric directions come from the code that logs the
metrics, "best" follows them, and a metric without one is a diagnostic (a final value, no best). A whole run's
metrics.json is checked in tests/test_cli.py, the W&B summaries in tests/test_study.py."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from gen_lightning.callbacks.directions import metric_directions, read_directions
from gen_lightning.callbacks.summary import RunSummary
from gen_lightning.metrics.callback import ImageMetrics
from gen_lightning.transformer.bert import BERT
from gen_lightning.vae.module import VAE


class Codebook:
    """A model whose perplexity is better high (codebook usage), unlike a language model's."""

    metric_directions = {"val/ppl": "max"}


def test_directions_come_from_the_module_and_the_metric_callbacks():
    directions = metric_directions(VAE, [ImageMetrics(features="classifier"), object()])
    assert directions["val/elbo"] == "max" and directions["val/nll_iw"] == "min"
    assert directions["val/fid_clf"] == "min" and directions["val/precision_clf"] == "max"
    assert "val/kl" not in directions and "val/kid_std_clf" not in directions  # diagnostics
    assert metric_directions(BERT)["val/ppl"] == "min" and metric_directions(Codebook())["val/ppl"] == "max"


def test_contradicting_or_malformed_directions_are_named():
    with pytest.raises(ValueError, match=r"Codebook ranks val/ppl by 'max' but BERT by 'min'"):
        metric_directions(BERT, [Codebook()])
    bad = SimpleNamespace(metric_directions={"val/fid": "lower"})
    with pytest.raises(ValueError, match=r"SimpleNamespace declares direction 'lower' for val/fid"):
        metric_directions(VAE, [bad])


def history_summary(directions: dict[str, str], rows: list[dict]) -> dict:
    summary = RunSummary("unused.json")
    summary.directions = directions
    for step, values in enumerate(rows):
        summary.record(SimpleNamespace(global_step=step, current_epoch=0), values)
    return summary.summary(SimpleNamespace(global_step=len(rows), current_epoch=1), "completed")


def test_best_follows_the_declared_direction_and_skips_diagnostics():
    rows = [{"val/ppl": 5.0, "val/d_real": 0.1}, {"val/ppl": 3.0, "val/d_real": 0.9}, {"val/ppl": 4.0}]
    text = history_summary({"val/ppl": "min"}, rows)
    codebook = history_summary({"val/ppl": "max"}, rows)
    assert text["best"]["val/ppl"] == {"value": 3.0, "step": 1, "epoch": 0}
    assert codebook["best"]["val/ppl"] == {"value": 5.0, "step": 0, "epoch": 0}
    assert "val/d_real" not in text["best"] and text["final"]["val/d_real"] == 0.9
    assert text["directions"] == {"val/ppl": "min"}
    assert read_directions([text, {"final": {}}]) == {"val/ppl": "min"}  # an older summary has none
    with pytest.raises(ValueError, match="run summary 1 ranks val/ppl by 'max' but run summary 0 by 'min'"):
        read_directions([text, codebook])


# ---------------------------------------------------------------- a resumed run's log and epochs (issue 24)

VALIDATE_EVERY_5 = ["trainer.val_check_interval=5", "trainer.check_val_every_n_epoch=null", "trainer.max_epochs=-1"]


def fit_steps(run_dir, steps: int, *extra: str) -> dict:
    from conftest import tiny_overrides

    from gen_lightning.config import compose
    from gen_lightning.run import train
    from gen_lightning.run.resume_policy import resolve_for_resume

    overrides = [*VALIDATE_EVERY_5, f"trainer.max_steps={steps}", *extra]
    cfg = compose(tiny_overrides(run_dir, *overrides))
    changes = None
    if cfg.resume:
        cfg, changes = resolve_for_resume(cfg, overrides)
    return train.fit(cfg, resume_changes=changes)


def test_a_budget_extended_mid_epoch_continues_the_epoch_quietly_and_exactly(tmp_path, caplog):
    """A 10-step run (23 batches per epoch) resumed to 20 steps: Lightning had closed epoch 0 at the stop, so the
    resume started "epoch 1" from its first batch (another data order) and metrics.json said epoch 1 at step 15.
    Now it equals the uninterrupted 20-step run, its log names where the epoch continues, and Lightning's two
    warnings about what the project handles (a non-empty checkpoint directory, a non-resumable loader) are gone."""
    import warnings

    import torch
    from helpers import module_weights

    fit_steps(tmp_path / "a", 10)
    with warnings.catch_warnings(record=True) as caught, caplog.at_level("INFO"):
        warnings.simplefilter("always")
        summary = fit_steps(tmp_path / "a", 20, "resume=true")
    shown = [str(w.message) for w in caught]
    assert not [m for m in shown if "exists and is not empty" in m or "dataloader is not resumable" in m], shown
    assert caplog.text.count("Resuming mid-epoch at batch 10 of 23 (epoch 0)") == 1, caplog.text
    assert [(row["step"], row["epoch"]) for row in summary["history"]] == [(5, 0), (10, 0), (15, 0), (20, 0)]

    straight = fit_steps(tmp_path / "b", 20)

    def untimed(history):
        return [{k: v for k, v in row.items() if k != "time_s"} for row in history]

    assert untimed(summary["history"]) == untimed(straight["history"])
    wa = module_weights(tmp_path / "a" / "checkpoints" / "last.ckpt")
    wb = module_weights(tmp_path / "b" / "checkpoints" / "last.ckpt")
    assert all(torch.equal(wa[k], wb[k]) for k in wb)


def test_a_fresh_run_into_a_used_checkpoint_folder_still_warns(tmp_path):
    """What the project does not handle stays: a fresh run whose checkpoints/ holds other files (no last.ckpt,
    which would refuse the run) still gets Lightning's warning that best.ckpt may overwrite them."""
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    (tmp_path / "run" / "checkpoints" / "best.ckpt").write_text("someone else's")
    with pytest.warns(UserWarning, match="exists and is not empty"):
        fit_steps(tmp_path / "run", 5)
