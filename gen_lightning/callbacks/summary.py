"""The run summary ``metrics.json``: final and best value of every validation metric, and the history.

Its state (history, bests, training time) is saved in checkpoints, so a resumed run's summary covers the
whole run. Written on every validation end (status "running"); ``train.fit`` writes "completed" once the final
evaluation and the final checkpoint are written too, so a run killed in between is resumed, not taken as done.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import lightning as L
import torch

# Metrics where larger is better; every other metric is minimised.
HIGHER_IS_BETTER = ("elbo", "is", "precision", "recall", "acc")


def higher_is_better(name: str) -> bool:
    """``val/elbo``, ``val/is_clf``, ``val/precision_clf``; also ``val/mlm_acc``, ``val/clf_acc`` (suffix)."""
    leaf = name.rsplit("/", 1)[-1]
    if "_std" in leaf:  # spreads (val/is_std_clf, val/kid_std_clf) are not scores
        return False
    return any(leaf == k or leaf.startswith(k + "_") or leaf.endswith("_" + k) for k in HIGHER_IS_BETTER)


def write_json(path: Path, data: dict) -> None:
    """Write through a temporary file and rename, so a reader never sees half a file."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str))
    os.replace(tmp, path)


class RunSummary(L.Callback):
    def __init__(self, path: str | Path, extra: dict | None = None) -> None:
        self.path = Path(path)
        self.extra = extra or {}
        self.history: list[dict] = []
        self.train_seconds = 0.0
        self._t0: float | None = None

    def on_train_start(self, trainer, pl_module) -> None:
        self._t0 = time.perf_counter()

    def _elapsed(self) -> float:
        return self.train_seconds + (time.perf_counter() - self._t0 if self._t0 else 0.0)

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking:
            return
        values = {
            k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/") and torch.is_tensor(v)
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
                if not k.startswith("val/") or not math.isfinite(v):
                    continue
                final[k] = v
                old = best.get(k, {}).get("value")
                if old is None or (v > old if higher_is_better(k) else v < old):
                    best[k] = {"value": v, "step": row["step"], "epoch": row["epoch"]}
        out = {
            "status": status,
            "final": final,
            "best": best,
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
