"""The quality/diversity frontier of text generators (Caccia et al., "Language GANs Falling Short", ICLR 2020).

BLEU-5 of generated sentences against the references (quality) and their Self-BLEU-5 (each against the others:
lower is more diverse) move together with the sampling temperature: a cooler model writes better and more alike
sentences. One point per model says little; a model's temperatures trace a curve, and a model is better than
another only where its point lies above the other's curve at the same Self-BLEU-5 ("beyond"), worse where below
("inside").

``metrics=sentences`` (gen_lightning/metrics/sentences.py) writes ``<split>/bleu5`` and ``<split>/self_bleu5`` at
its main temperature (the protocol card's ``temperature``) and ``<split>/bleu5_t0.8``, ``<split>/self_bleu5_t0.8``
for each extra temperature of ``metrics.temperatures``. This file reads those names and places points against
curves; ``collect`` averages the seeds, ``plots`` draws the figure, ``markdown`` writes the verdicts.
"""

from __future__ import annotations

import re

FIGURE = "plots/frontier_bleu5.png"  # relative to the study directory, beside the learning curves
SWEPT = re.compile(r"^(?P<split>[^/]+)/bleu5_t(?P<t>[0-9.eE+-]+)$")
CARD_KEYS = ("hypotheses", "references", "self_bleu_hypotheses")  # the protocol the figure's title states


def temperature_points(final: dict, card: dict) -> dict[float, tuple[float, float]]:
    """One seed's ``temperature -> (Self-BLEU-5, BLEU-5)`` from its final metrics and protocol card; empty when the
    run was not scored by ``metrics=sentences`` (no ``temperature`` on its card)."""
    if "temperature" not in card:
        return {}
    split = card.get("split", "test")
    swept = {float(m["t"]): m["t"] for k in final if (m := SWEPT.match(k)) and m["split"] == split}
    points = {t: (final.get(f"{split}/self_bleu5_t{s}"), final.get(f"{split}/bleu5_t{s}")) for t, s in swept.items()}
    # The main temperature last: it is the tables' number where it is swept again too.
    points[float(card["temperature"])] = (final.get(f"{split}/self_bleu5"), final.get(f"{split}/bleu5"))
    return {t: p for t, p in sorted(points.items()) if None not in p}


def curve_bleu(curve: list[tuple[float, float]], self_bleu: float) -> float | None:
    """BLEU-5 of ``curve`` (its ``(Self-BLEU-5, BLEU-5)`` points in temperature order, joined by straight lines) at
    ``self_bleu``; None outside the curve's Self-BLEU-5 range (no extrapolation). Where the line crosses that
    Self-BLEU-5 more than once (Self-BLEU-5 not monotone in temperature, seed noise), its highest crossing: the
    curve's best quality at that diversity."""
    if len(curve) == 1:
        return curve[0][1] if curve[0][0] == self_bleu else None
    found = []
    for (x0, y0), (x1, y1) in zip(curve, curve[1:]):
        if min(x0, x1) <= self_bleu <= max(x0, x1):
            found.append(max(y0, y1) if x0 == x1 else y0 + (y1 - y0) * (self_bleu - x0) / (x1 - x0))
    return max(found, default=None)


def place(point: tuple[float, float], curve: list[tuple[float, float]]) -> dict:
    """Where ``point`` (Self-BLEU-5, BLEU-5) lies against ``curve``: beyond (above it), inside (below), on it, or
    outside its Self-BLEU-5 range, with the curve's interpolated BLEU-5 and the difference."""
    at = curve_bleu(curve, point[0])
    xs = [x for x, _ in curve]
    if at is None:
        verdict = "outside"
    else:
        verdict = "beyond" if point[1] > at else "inside" if point[1] < at else "on"
    return {
        "verdict": verdict,
        "curve_bleu5": at,
        "difference": None if at is None else point[1] - at,
        "curve_self_bleu5_range": [min(xs), max(xs)],
    }


def pairs(runs: list[str], baselines: list[str]) -> list[tuple[str, str]]:
    """``(run, against)``: every other run against each baseline, or, without baselines, every run against every
    other run; in study order."""
    if baselines:
        return [(r, b) for r in runs if r not in baselines for b in runs if b in baselines]
    return [(r, other) for r in runs for other in runs if other != r]
