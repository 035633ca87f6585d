"""The layout of a run directory, in one place (README, "Every run directory").

    RUN_DIR/
      config.yaml            the resolved config the run was made with
      metrics.json           final and best value of every validation metric, history, status, protocol card
      checkpoints/last.ckpt  the newest state (resume); checkpoints/best.ckpt by the monitored metric
      samples/<name>/        preview grids, texts or tables, one file a validation (stepNNNNNNN.png|txt|tsv)
      figures/<name>/        figures of the metric protocols (e.g. a confusion matrix)
      evaluations/<name>.*   evaluation variants of a study
      wandb/                 the W&B run (offline-run-* by default); wandb_run_id.txt keeps its id for resume
      error.txt              the traceback of a run that failed inside a study

Every module that reads or writes one of these names asks this object.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RunDir:
    path: Path

    def __init__(self, path: str | Path) -> None:
        object.__setattr__(self, "path", Path(path))

    @classmethod
    def of_checkpoint(cls, ckpt: str | Path) -> RunDir:
        """The run directory of ``RUN_DIR/checkpoints/<name>.ckpt``."""
        return cls(Path(ckpt).resolve().parent.parent)

    @property
    def config(self) -> Path:
        return self.path / "config.yaml"

    @property
    def metrics(self) -> Path:
        return self.path / "metrics.json"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    def checkpoint(self, name: str = "last") -> Path:
        """``checkpoints/<name>.ckpt`` (``last`` or ``best``)."""
        return self.checkpoints / f"{name}.ckpt"

    @property
    def last(self) -> Path:
        return self.checkpoint("last")

    @property
    def best(self) -> Path:
        return self.checkpoint("best")

    @property
    def samples(self) -> Path:
        return self.path / "samples"

    @property
    def figures(self) -> Path:
        return self.path / "figures"

    @property
    def evaluations(self) -> Path:
        return self.path / "evaluations"

    def evaluation(self, name: str, suffix: str = ".json") -> Path:
        return self.evaluations / f"{name}{suffix}"

    @property
    def wandb_id(self) -> Path:
        return self.path / "wandb_run_id.txt"

    @property
    def error(self) -> Path:
        return self.path / "error.txt"
