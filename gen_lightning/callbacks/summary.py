"""The run summary ``metrics.json``: final and best value of every validation metric, and the history.

Its state (history, bests, training time) is saved in checkpoints, so a resumed run's summary covers the
whole run. Written on every validation end (status "running"); ``train.fit`` writes "completed" once the final
evaluation and the final checkpoint are written too, so a run killed in between is resumed, not taken as done.

"Best" needs a direction, which the code that logs a metric declares (docs/CONTRACT.md): the module's
``metric_directions`` class attribute, ``{"val/<name>": "min" | "max"}``, and each metric protocol's (names
without the split; its ``directions()`` adds it). The same name can mean opposite things (a codebook's perplexity
is better high, a text model's low), so nothing is guessed from names: a metric without a declared direction is a
diagnostic, with a final value and no best. The directions are written into ``metrics.json`` (``"directions"``)
for the study reports (``read_directions``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

import lightning as L
import torch

from gen_lightning.files import write_json
from gen_lightning.run_dir import RunDir

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


class RunSummary(L.Callback):
    """Writes ``metrics.json``; the directions of its module and callbacks decide which values are "best"."""

    def __init__(self, run_dir: str | Path, extra: dict | None = None) -> None:
        self.path = RunDir(run_dir).metrics
        self.extra = extra or {}
        self.directions: dict[str, str] = {}
        self.history: list[dict] = []
        self.train_seconds = 0.0
        self._t0: float | None = None

    def setup(self, trainer, pl_module, stage: str) -> None:
        self.directions = metric_directions(pl_module, trainer.callbacks)

    def on_train_start(self, trainer, pl_module) -> None:
        self._t0 = time.perf_counter()

    def _elapsed(self) -> float:
        return self.train_seconds + (time.perf_counter() - self._t0 if self._t0 else 0.0)

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking:
            return
        # Lightning keeps a metric in callback_metrics until it is logged again: a metric protocol that did not
        # evaluate at this validation would otherwise repeat its last values in the history (flat steps in plots).
        stale = set().union(*(cb.stale_names(trainer) for cb in trainer.callbacks if hasattr(cb, "stale_names")))
        values = {
            k: float(v)
            for k, v in trainer.callback_metrics.items()
            if k.startswith("val/") and torch.is_tensor(v) and k not in stale
        }
        self.record(trainer, values)
        if trainer.is_global_zero:
            self.write(trainer, "running")

    def record(self, trainer, values: dict[str, float]) -> None:
        """Add validation values at the current step (merged into the last row if it has the same step)."""
        if not values:
            return
        if self.history and self.history[-1]["step"] == trainer.global_step:
            self.history[-1].update(values)
            return
        row = {"step": trainer.global_step, "epoch": trainer.current_epoch, "time_s": round(self._elapsed(), 3)}
        self.history.append({**row, **values})

    def summary(self, trainer, status: str, error: str | None = None) -> dict:
        final, best = {}, {}
        for row in self.history:
            for k, v in row.items():
                # Evaluated metrics of any split (val/, and test/ of a protocol evaluating the test split).
                if "/" not in k or k.startswith("train/") or not math.isfinite(v):
                    continue
                final[k] = v
                direction = self.directions.get(k)
                if direction and improves(v, best.get(k, {}).get("value"), direction):
                    best[k] = {"value": v, "step": row["step"], "epoch": row["epoch"]}
        out = {
            "status": status,
            "final": final,
            "best": best,
            "directions": self.directions,
            "global_step": trainer.global_step,
            "epochs": trainer.current_epoch,
            "train_time_s": round(self._elapsed(), 3),
            "history": self.history,
            **self.extra,
        }
        if error:
            out["error"] = error
        return out

    def write(self, trainer, status: str, error: str | None = None) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_json(self.path, self.summary(trainer, status, error))

    def on_train_end(self, trainer, pl_module) -> None:
        # The clock stops with the training loop: the final image metrics (the metrics callback's on_train_end,
        # which runs after this one) are not training time; their own seconds are in the protocol card.
        self.train_seconds, self._t0 = self._elapsed(), None
        if trainer.is_global_zero:  # "completed" only once every file is written (train.fit, at its very end)
            self.write(trainer, "running")

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        if trainer.is_global_zero:
            self.write(trainer, "failed", f"{type(exception).__name__}: {exception}")

    def state_dict(self) -> dict:
        return {"history": self.history, "train_seconds": self._elapsed()}

    def load_state_dict(self, state_dict: dict) -> None:
        self.history = list(state_dict["history"])
        self.train_seconds = float(state_dict["train_seconds"])
