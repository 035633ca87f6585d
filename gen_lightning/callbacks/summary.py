"""The run summary ``metrics.json``: final and best value of every validation metric, and the history.

Its state (history, bests, training time) is saved in checkpoints, so a resumed run's summary covers the
whole run. Written on every validation end (status "running"); ``train.fit`` writes "completed" once the final
evaluation and the final checkpoint are written too, so a run killed in between is resumed, not taken as done.

"Best" needs a direction, which the code that logs a metric declares (docs/CONTRACT.md): the module's
``metric_directions`` class attribute, ``{"val/<name>": "min" | "max"}``, and each metric protocol's (names
without the split; its ``directions()`` adds it). The same name can mean opposite things (a codebook's perplexity
is better high, a text model's low), so nothing is guessed from names: a metric without a declared direction is a
diagnostic, with a final value and no best. The directions are written into ``metrics.json`` (``"directions"``)
for the study reports (``read_directions``); callbacks/directions.py merges and compares them.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import lightning as L
import torch

from gen_lightning.callbacks.directions import improves, metric_directions
from gen_lightning.files import write_json
from gen_lightning.run_dir import RunDir


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

    def finish_evaluations(self, trainer, model, protocols) -> None:
        """Record the final evaluation of the run's metric ``protocols`` (metrics/protocol.py); run it if training
        ended without one (a run resumed from a checkpoint of its last step ends without ``on_train_end``, so a run
        killed during its final evaluation would otherwise never get one)."""
        for cb in protocols:
            if not cb.accepts(model):
                continue
            if cb.last_result is None or cb.last_result["protocol"].get("global_step") != trainer.global_step:
                model.to(trainer.strategy.root_device)
                cb.on_train_end(trainer, model)
            if cb.last_result:
                self.record(trainer, cb.last_result["metrics"])
                self.extra["protocol"] = cb.last_result["protocol"]

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
