"""``EvaluationCallback``: what every metric protocol shares (docs/CONTRACT.md, "Evaluation").

A protocol scores one kind of model (a task, a source modality, an output modality) with one fixed procedure. The
base class does the rest the same way for every protocol:

- scheduling in training: after every ``every_n_epochs``-th validation epoch (0: never) and once more when
  training ends, unless the last evaluation was at the same step; values are logged as ``<split>/<metric>``;
- ``last_result`` (``{"metrics", "protocol"}``) for ``metrics.json``, and the protocol card as ``protocol/<key>``
  hyperparameters of every logger (logged again only when it changes);
- figures a protocol returns (e.g. a confusion matrix) saved under ``RUN_DIR/figures/<name>/`` and logged;
- the model is evaluated in eval mode without gradients, and torch's global RNG is restored bit for bit
  afterwards (exact resume relies on it);
- a model of another task is refused up front, naming the protocols that fit it.

``evaluate(module, datamodule, split)`` serves training and ``gen-lightning evaluate`` alike, so a checkpoint
re-evaluated gives the number it logged. Under DDP every process calls it; each protocol gathers what it needs.

``num_items`` (a fixed subset: the first N examples of the split) keeps the periodic validation in training cheap.
A report of another split (``gen-lightning evaluate split=test``) means the whole split: ``for_split`` gives the
protocol for it, without the subset unless the user asked for one (metrics/evaluate.py). The card says
``num_items`` and, from each protocol, how many examples were scored of how many (``split_items``).
"""

from __future__ import annotations

import contextlib
import copy
import time

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.utilities import rank_zero_warn

from gen_lightning.metrics.extractors import dist_info
from gen_lightning.nn.eval_mode import evaluating
from gen_lightning.run_dir import RunDir
from gen_lightning.tasks import describe, task_of

PER_EVALUATION = ("global_step", "seconds", "nonfinite_samples", "device")  # in metrics.json, not the logged config


@contextlib.contextmanager
def global_rng_preserved(device: torch.device, owner: str):
    """Restore torch's global CPU (and CUDA) RNG on exit; warn if something drew from it."""
    cuda = device.type == "cuda"
    cpu_state = torch.get_rng_state()
    cuda_state = torch.cuda.get_rng_state(device) if cuda else None
    try:
        yield
    finally:
        drawn = not torch.equal(cpu_state, torch.get_rng_state())
        drawn |= cuda and not torch.equal(cuda_state, torch.cuda.get_rng_state(device))
        torch.set_rng_state(cpu_state)
        if cuda:
            torch.cuda.set_rng_state(cuda_state, device)
        if drawn:
            rank_zero_warn(
                f"{owner} drew from torch's global RNG during metric evaluation (restored): its outputs depend "
                "on the training state, not only on the metric seed; pass `generator` through."
            )


def gather_objects(items: list) -> list:
    """Every process's ``items`` concatenated in rank order (this process's list without DDP)."""
    rank, world = dist_info()
    if world == 1:
        return list(items)
    gathered: list = [None] * world
    torch.distributed.all_gather_object(gathered, list(items))
    return [x for part in gathered for x in part]


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def split_items(loader) -> int | None:
    """How many examples the evaluated split holds (an ``evaluation_loader``'s dataset; None when it cannot tell)."""
    try:
        return len(loader.dataset)
    except (AttributeError, TypeError):
        return None


def plain(card: dict) -> dict:
    """Card values as logger-friendly scalars (other values as their string)."""
    return {k: (v if isinstance(v, (int, float, str, bool)) or v is None else str(v)) for k, v in card.items()}


class EvaluationCallback(Callback):
    """Base of the metric protocols. Subclasses set ``tasks``, ``metric_directions`` and implement ``compute``.

    Args:
        every_n_epochs: evaluate after every n-th validation epoch during training (0: only when training ends).
        split: the data split evaluated in training (``gen-lightning evaluate split=...`` chooses another).
        num_items: examples of the split evaluated (a fixed subset: the first ``num_items``; None: all).
        batch_size: evaluation batch size (part of the protocol: it fixes which examples share a seeded batch).
        seed: seeds the per-batch generators of stochastic models.
    """

    tasks: tuple[tuple[str, str | None, str], ...] = ()
    metric_directions: dict[str, str] = {}
    protocol_name = "protocol"
    # The setting that takes a subset of the evaluated split (None: the protocol scores no subset of a split, e.g.
    # a count of generated samples).
    subset_setting: str | None = "num_items"

    def __init__(
        self,
        every_n_epochs: int = 1,
        split: str = "val",
        num_items: int | None = None,
        batch_size: int = 64,
        seed: int = 0,
    ) -> None:
        if not _is_int(every_n_epochs) or every_n_epochs < 0:
            raise ValueError(
                f"metrics.every_n_epochs must be an integer >= 0 (0: only at the end), got {every_n_epochs!r}"
            )
        if not _is_int(batch_size) or batch_size < 1:
            raise ValueError(f"metrics.batch_size must be a positive integer, got {batch_size!r}")
        if num_items is not None and (not _is_int(num_items) or num_items < 1):
            raise ValueError(f"metrics.num_items must be a positive integer or null (all), got {num_items!r}")
        self.every_n_epochs, self.split, self.num_items = every_n_epochs, split, num_items
        self.batch_size, self.seed = batch_size, seed
        self.last_result: dict | None = None
        self._last_eval_step: int | None = None
        self._logged_card: dict | None = None

    # ------------------------------------------------------------ what a protocol provides

    def compute(self, module: LightningModule, datamodule, split: str) -> dict:
        """``{"metrics": {name: value}, "protocol": {...}}`` plus optionally ``"outputs"`` (one per example, in
        order, e.g. hypotheses) and ``"figures"`` (name -> (C, H, W) image in [0, 1]). Names without split."""
        raise NotImplementedError

    def settings(self) -> dict:
        """The protocol's own settings, for its card."""
        return {}

    # ------------------------------------------------------------ checks

    def for_split(self, split: str, keep_subset: bool = False) -> EvaluationCallback:
        """The protocol that scores ``split``: for a split other than the one it validates on in training (a test
        report), a copy that scores the whole split unless ``keep_subset`` (the user gave ``num_items``)."""
        if split == self.split or keep_subset or self.subset_setting is None:
            return self
        if getattr(self, self.subset_setting) is None:
            return self
        whole = copy.copy(self)
        setattr(whole, self.subset_setting, None)
        return whole

    def accepts(self, module) -> bool:
        return task_of(module) in self.tasks

    def check(self, module) -> None:
        """Raise a ValueError naming what this protocol scores and what fits the module."""
        if self.accepts(module):
            return
        from gen_lightning.tasks import protocols_for

        fits = protocols_for(task_of(module))
        raise ValueError(
            f"metrics={self.protocol_name} scores {' or '.join(describe(t) for t in self.tasks)} models, but "
            f"{type(module).__name__} does {describe(task_of(module))}; "
            + (f"choose metrics={' or metrics='.join(fits)}, or metrics=none" if fits else "choose metrics=none")
        )

    # ------------------------------------------------------------ evaluation

    def evaluate(self, module: LightningModule, datamodule, split: str | None = None) -> dict:
        """Evaluate ``module`` on ``split`` (default: the protocol's); call on every process under DDP."""
        self.check(module)
        split = split or self.split
        start = time.perf_counter()
        with global_rng_preserved(module.device, type(module).__name__), evaluating(module):
            result = self.compute(module, datamodule, split)
        metrics = {f"{self.prefix(split)}/{k}": float(v) for k, v in result["metrics"].items()}
        card = {
            "protocol": self.protocol_name,
            "split": split,
            "num_items": self.num_items,
            "batch_size": self.batch_size,
            "seed": self.seed,
            **self.settings(),
            **{f"sample_{k}": v for k, v in (module.sample_info() if hasattr(module, "sample_info") else {}).items()},
            **result.get("protocol", {}),
            "world_size": dist_info()[1],
            "device": str(module.device),
            "seconds": round(time.perf_counter() - start, 3),
        }
        out = {"metrics": metrics, "protocol": plain(card)}
        for key in ("outputs", "figures"):
            if key in result:
                out[key] = result[key]
        return out

    def prefix(self, split: str) -> str:
        return split

    def directions(self, split: str | None = None) -> dict[str, str]:
        """``metric_directions`` with the split prefix of the logged names."""
        prefix = self.prefix(split or self.split)
        return {f"{prefix}/{k}": v for k, v in self.metric_directions.items()}

    # ------------------------------------------------------------ Lightning hooks

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        self.check(pl_module)

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking or self.every_n_epochs == 0 or not self.accepts(pl_module):
            return
        if (trainer.current_epoch + 1) % self.every_n_epochs or self._last_eval_step == trainer.global_step:
            return
        result = self._evaluate_in_fit(trainer, pl_module)
        for name, value in result["metrics"].items():
            pl_module.log(name, value, sync_dist=True)  # equal on every process already

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # The model is still on its device here (it is moved to CPU before on_fit_end).
        if not self.accepts(pl_module) or self._last_eval_step == trainer.global_step:
            return
        result = self._evaluate_in_fit(trainer, pl_module)
        # The step Lightning gives the last epoch's metrics: later (resumed) logs never go below it.
        step = getattr(trainer.fit_loop.epoch_loop, "_batches_that_stepped", trainer.global_step + 1) - 1
        for logger in trainer.loggers:
            logger.log_metrics(result["metrics"], step=step)

    def stale_names(self, trainer: Trainer) -> set[str]:
        """The names of the last evaluation when it was not made at this step (the run summary skips them), but
        not those the model logs itself at every validation (a model may log a protocol's name, e.g. val/l1)."""
        if self.last_result is None or self._last_eval_step == trainer.global_step:
            return set()
        own = getattr(trainer.lightning_module, "metric_directions", {})
        return set(self.last_result["metrics"]) - set(own)

    def _evaluate_in_fit(self, trainer: Trainer, pl_module: LightningModule) -> dict:
        if trainer.datamodule is None:
            raise RuntimeError(f"metrics={self.protocol_name} needs trainer.fit(datamodule=...)")
        result = self.evaluate(pl_module, trainer.datamodule)
        self._last_eval_step = trainer.global_step
        result["protocol"]["global_step"] = trainer.global_step
        self.last_result = {"metrics": result["metrics"], "protocol": result["protocol"]}
        if trainer.is_global_zero:
            self._save_figures(trainer, result.get("figures", {}))
        card = {k: v for k, v in result["protocol"].items() if k not in PER_EVALUATION}
        if card != self._logged_card:
            for logger in trainer.loggers:
                logger.log_hyperparams({f"protocol/{k}": v for k, v in card.items()})
            self._logged_card = card
        return result

    def _save_figures(self, trainer: Trainer, figures: dict) -> None:
        from torchvision.utils import save_image

        from gen_lightning import tracking

        for name, image in figures.items():
            path = RunDir(trainer.default_root_dir).figure(name, trainer.global_step)
            path.parent.mkdir(parents=True, exist_ok=True)
            save_image(image, path)
            tracking.log_image(trainer, f"figures/{name}", image)


def batch_generator(seed: int, batch: int, device: torch.device) -> torch.Generator:
    """The generator of evaluation batch ``batch``: a function of (seed, batch) only, whatever the world size."""
    import numpy as np

    high, low = np.random.SeedSequence([seed, batch]).generate_state(2)
    return torch.Generator(device=device).manual_seed((int(high) << 32) | int(low))
