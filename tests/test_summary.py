"""The run summary (gen_lightning/callbacks/summary.py): metric directions come from the code that logs the
metrics, "best" follows them, and a metric without one is a diagnostic (a final value, no best). A whole run's
metrics.json is checked in tests/test_cli.py, the W&B summaries in tests/test_study.py."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from gen_lightning.callbacks.summary import RunSummary, metric_directions, read_directions
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
