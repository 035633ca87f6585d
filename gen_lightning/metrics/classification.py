"""``classification``: predictions of a prediction-task model against the labels of a whole split.

Accuracy, macro-averaged F1 (the unweighted mean of the per-class F1 scores, torchmetrics) and the confusion matrix
(rows: true class, columns: predicted class), drawn as a figure. Predictions are gathered from every process and
ordered by example index, so one process and many give the same numbers. The predicted class names come back as
``outputs`` (``gen-lightning evaluate`` writes them, one per example).
"""

from __future__ import annotations

import numpy as np
import torch
from torchmetrics.functional.classification import multiclass_confusion_matrix, multiclass_f1_score

from gen_lightning.metrics.protocol import EvaluationCallback, gather_objects, split_items


def confusion_figure(matrix: torch.Tensor, names: list[str]) -> torch.Tensor:
    """The confusion matrix as a (3, H, W) image in [0, 1]: counts in the cells, rows normalised for colour."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    k = len(names)
    fig = Figure(figsize=(1.2 + 0.45 * k, 1.0 + 0.45 * k), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    rates = matrix.double() / matrix.sum(1, keepdim=True).clamp_min(1)
    ax.imshow(rates.numpy(), cmap="Blues", vmin=0, vmax=1)
    for i in range(k):
        for j in range(k):
            ax.text(j, i, int(matrix[i, j]), ha="center", va="center", fontsize=7, color="black")
    ax.set_xticks(range(k), names, rotation=90, fontsize=7)
    ax.set_yticks(range(k), names, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    fig.tight_layout()
    fig.canvas.draw()
    rgba = np.asarray(fig.canvas.buffer_rgba())
    return torch.from_numpy(rgba[..., :3].copy()).permute(2, 0, 1).float() / 255


class ClassificationMetrics(EvaluationCallback):
    """Accuracy, macro F1 and the confusion matrix of a prediction-task model; see the file docstring."""

    protocol_name = "classification"
    tasks = (("prediction", "text", "label"), ("prediction", "image", "label"))
    metric_directions = {"acc": "max", "f1_macro": "max"}

    def __init__(
        self,
        every_n_epochs: int = 0,
        split: str = "val",
        num_items: int | None = None,
        batch_size: int = 64,
        seed: int = 0,
    ) -> None:
        super().__init__(every_n_epochs, split, num_items, batch_size, seed)

    def compute(self, module, datamodule, split: str) -> dict:
        rows = []
        loader = datamodule.evaluation_loader(split, self.num_items, self.batch_size)
        for batch in loader:
            source = batch["source"]
            probs = module.predict(source.to(module.device) if torch.is_tensor(source) else list(source))
            rows += zip(batch["index"].tolist(), probs.argmax(-1).tolist(), batch["target"].tolist())
        rows = sorted(gather_objects(rows))
        names = list(module.hparams["class_names"])
        preds = torch.tensor([p for _, p, _ in rows])
        target = torch.tensor([t for _, _, t in rows])
        k = len(names)
        matrix = multiclass_confusion_matrix(preds, target, num_classes=k)
        metrics = {
            "acc": float((preds == target).double().mean()),
            "f1_macro": float(multiclass_f1_score(preds, target, num_classes=k, average="macro")),
        }
        return {
            "metrics": metrics,
            "protocol": {"examples": len(rows), "split_items": split_items(loader), "classes": ",".join(names)},
            "outputs": [names[p] for p in preds.tolist()],
            "figures": {"confusion_matrix": confusion_figure(matrix, names)},
        }
