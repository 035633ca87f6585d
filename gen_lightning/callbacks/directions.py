"""Which way each logged metric is better: ``{"val/<name>": "min" | "max"}``, declared by the code that logs it (a
module's ``metric_directions`` class attribute, a metric protocol's ``directions()``), merged for a run (the run
summary's bests, W&B's run summary), and read back from run summaries (the study reports). A contradiction is an
error naming both owners.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

DIRECTIONS = ("min", "max")


def merge_directions(sources: Iterable[tuple[str, Mapping[str, str]]]) -> dict[str, str]:
    """One ``{metric: "min" | "max"}`` from ``(owner, directions)`` pairs; a bad or contradicting one is an error
    naming its owners."""
    merged: dict[str, str] = {}
    owners: dict[str, str] = {}
    for owner, directions in sources:
        for name, direction in directions.items():
            if direction not in DIRECTIONS:
                raise ValueError(f"{owner} declares direction {direction!r} for {name}; use one of {DIRECTIONS}")
            if merged.get(name, direction) != direction:
                raise ValueError(
                    f"{owner} ranks {name} by {direction!r} but {owners[name]} by {merged[name]!r}: one metric "
                    "name must mean one quantity; rename one of them"
                )
            merged[name], owners[name] = direction, owners.get(name, owner)
    return merged


def metric_directions(module, callbacks: Iterable = ()) -> dict[str, str]:
    """The directions of the metrics a run logs: ``module.metric_directions`` (a module or its class), and those of
    every callback with ``directions()`` (a metric protocol, metrics/protocol.py) or ``metric_directions``."""
    sources = [(_name(module), getattr(module, "metric_directions", {}))]
    for cb in callbacks:
        if callable(getattr(cb, "directions", None)):
            sources.append((_name(cb), cb.directions()))
        elif hasattr(cb, "metric_directions"):
            sources.append((_name(cb), cb.metric_directions))
    return merge_directions(sources)


def _name(obj) -> str:
    return obj.__name__ if isinstance(obj, type) else type(obj).__name__


def read_directions(summaries: Iterable[Mapping]) -> dict[str, str]:
    """The directions recorded in run summaries (parsed ``metrics.json`` files, e.g. the runs of a study),
    merged; a summary written before directions were recorded contributes none."""
    return merge_directions((f"run summary {i}", s.get("directions", {})) for i, s in enumerate(summaries))


def improves(value: float, best: float | None, direction: str) -> bool:
    """Whether ``value`` beats ``best`` (None: nothing yet) for a metric ranked by ``direction``."""
    return best is None or (value > best if direction == "max" else value < best)
