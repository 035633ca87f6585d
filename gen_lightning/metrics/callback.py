"""``ImageMetrics``: FID / IS / KID / precision-recall of an image module during training, and its protocol.

Generated sample ``i`` belongs to batch ``c = i // batch_size``, drawn with a generator seeded from
``SeedSequence([seed, c])``; process ``r`` of ``W`` draws batches ``r, r + W, ...``. The images, and so the
numbers, do not depend on the number of processes, and re-evaluating a checkpoint gives the same value.
The global RNG is restored bit for bit afterwards (exact resume relies on it).

Values are logged as ``val/<metric>`` (``val/<metric>_clf`` with classifier features) every ``every_n_epochs``
validation epochs and once more when training ends; ``last_result`` holds ``{"metrics", "protocol"}`` for
``metrics.json``, and the card goes to every logger as ``protocol/<key>`` hyperparameters.
"""

from __future__ import annotations

import contextlib
import time

import numpy as np
import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.utilities import rank_zero_warn

from gen_lightning.metrics.extractors import ClassifierSettings, build_extractor, dist_info
from gen_lightning.metrics.image import SUBSET_SEED, ImageFidelity, load_or_extract_reference, protocol_card

FEATURES = ("inception", "classifier")
SPLITS = ("train", "val")
PER_EVALUATION = ("global_step", "seconds", "nonfinite_samples")  # in metrics.json, not in the logged config


def batch_seed(seed: int, batch: int) -> int:
    """A well-mixed 64-bit seed for generated batch ``batch`` (NumPy's SeedSequence)."""
    high, low = np.random.SeedSequence([seed, batch]).generate_state(2)
    return (int(high) << 32) | int(low)


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
                f"{owner}.sample() drew from torch's global RNG during metric evaluation (restored): its "
                "samples depend on the training state, not only on the metric seed; pass `generator` through."
            )


class ImageMetrics(Callback):
    """Evaluates image modules (``modality == "image"``) against a cached real reference; skips text modules.

    Args:
        features: ``inception`` (torch-fidelity's Inception-v3, comparable with published numbers) or
            ``classifier`` (a CNN trained on the dataset's labels, offline).
        num_samples: generated samples per evaluation.
        every_n_epochs: evaluate after every n-th validation epoch (0: only when training ends).
        reference_split: real split the samples are compared with.
        batch_size: generation and feature-extraction batch size (part of the sampling protocol).
        seed: sampling seed.
        is_splits, kid_subsets, kid_subset_size, pr_k: metric settings (torch-fidelity's defaults).
        inception_weights: path of the Inception weights file (default: torch hub's cache, downloaded once).
        classifier: ``ClassifierSettings`` fields for the classifier extractor.
        cache_dir: classifier and reference cache (``$GEN_LIGHTNING_CACHE`` or ``~/.cache/gen_lightning``).
    """

    # The scores it logs, with either feature set; the spreads (val/is_std, val/kid_std, ...) are diagnostics.
    metric_directions = {
        **{f"val/{name}{suffix}": "min" for name in ("fid", "kid") for suffix in ("", "_clf")},
        **{f"val/{name}{suffix}": "max" for name in ("is", "precision", "recall") for suffix in ("", "_clf")},
        "val/clf_acc": "max",
    }

    def __init__(
        self,
        features: str = "inception",
        num_samples: int = 10_000,
        every_n_epochs: int = 1,
        reference_split: str = "train",
        batch_size: int = 250,
        seed: int = 0,
        is_splits: int = 10,
        kid_subsets: int = 100,
        kid_subset_size: int = 1000,
        pr_k: int = 3,
        inception_weights: str | None = None,
        classifier: dict | None = None,
        cache_dir: str | None = None,
    ) -> None:
        if features not in FEATURES:
            raise ValueError(f"metrics.features must be one of {FEATURES}, got {features!r}")
        if reference_split not in SPLITS:
            raise ValueError(f"metrics.reference_split must be one of {SPLITS}, got {reference_split!r}")
        if num_samples < max(2, is_splits, pr_k + 1):
            raise ValueError(f"metrics.num_samples={num_samples} is too small for IS splits / k-NN / FID")
        if every_n_epochs < 0 or batch_size < 1:
            raise ValueError("metrics.every_n_epochs must be >= 0 and metrics.batch_size >= 1")
        self.features, self.reference_split = features, reference_split
        self.num_samples, self.batch_size, self.seed = num_samples, batch_size, seed
        self.every_n_epochs = every_n_epochs
        self.metric_settings = dict(
            is_splits=is_splits, kid_subsets=kid_subsets, kid_subset_size=kid_subset_size, pr_k=pr_k
        )
        self.inception_weights = inception_weights
        self.classifier = ClassifierSettings(**(classifier or {}))
        feature_dim = 2048 if features == "inception" else self.classifier.feature_dim
        if num_samples < feature_dim:
            rank_zero_warn(
                f"FID from {num_samples} samples of {feature_dim} features: the covariance is rank-deficient "
                "and FID strongly biased; compare only numbers made with the same num_samples."
            )
        self.cache_dir = cache_dir
        self.suffix = "" if features == "inception" else "_clf"
        self.last_result: dict | None = None
        self._fidelity: ImageFidelity | None = None
        self._fidelity_key: tuple | None = None
        self._last_eval_step: int | None = None
        self._logged_card: dict | None = None

    # ------------------------------------------------------------ Lightning hooks

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking or getattr(pl_module, "modality", None) != "image" or self.every_n_epochs == 0:
            return
        if (trainer.current_epoch + 1) % self.every_n_epochs or self._last_eval_step == trainer.global_step:
            return
        result = self._evaluate_in_fit(trainer, pl_module)
        for name, value in result["metrics"].items():
            pl_module.log(name, value, sync_dist=True)  # equal on every process already

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # The model is still on its device here (it is moved to CPU before on_fit_end).
        if getattr(pl_module, "modality", None) != "image" or self._last_eval_step == trainer.global_step:
            return
        result = self._evaluate_in_fit(trainer, pl_module)
        # The step Lightning gives the last epoch's metrics: later (resumed) logs never go below it.
        step = getattr(trainer.fit_loop.epoch_loop, "_batches_that_stepped", trainer.global_step + 1) - 1
        for logger in trainer.loggers:
            logger.log_metrics(result["metrics"], step=step)

    def _evaluate_in_fit(self, trainer: Trainer, pl_module: LightningModule) -> dict:
        if trainer.datamodule is None or not hasattr(trainer.datamodule, "reference_loader"):
            raise RuntimeError("ImageMetrics needs trainer.fit(datamodule=...) with an image data module")
        result = self.evaluate(pl_module, trainer.datamodule)
        self._last_eval_step = trainer.global_step
        result["protocol"]["global_step"] = trainer.global_step
        self.last_result = result
        card = {k: v for k, v in result["protocol"].items() if k not in PER_EVALUATION}
        if card != self._logged_card:
            for logger in trainer.loggers:
                logger.log_hyperparams({f"protocol/{k}": v for k, v in card.items()})
            self._logged_card = card
        return result

    # ------------------------------------------------------------ evaluation

    def evaluate(self, module: LightningModule, datamodule) -> dict:
        """``{"metrics": {"val/fid": ...}, "protocol": {...}}`` for ``module``; call on every process."""
        if getattr(module, "modality", None) != "image":
            raise ValueError(
                f"ImageMetrics evaluates image modules, got modality {getattr(module, 'modality', None)!r}"
            )
        start = time.perf_counter()
        device = module.device
        with global_rng_preserved(device, type(module).__name__), torch.no_grad():
            fidelity = self._fidelity_for(datamodule, device)
            was_training = module.training
            module.eval()
            try:
                fidelity.reset()
                for first, count, generator in self._batches(device):
                    images = module.sample(count, generator=generator)
                    fidelity.update(images, torch.arange(first, first + count))
                values = fidelity.compute()
            finally:
                module.train(was_training)
                fidelity.reset()  # free the generated features
        return self._result(fidelity, values, module, time.perf_counter() - start)

    def _batches(self, device: torch.device):
        """(first index, count, generator) of this process's generated batches."""
        rank, world = dist_info()
        for batch in range(rank, -(-self.num_samples // self.batch_size), world):
            first = batch * self.batch_size
            generator = torch.Generator(device=device).manual_seed(batch_seed(self.seed, batch))
            yield first, min(self.batch_size, self.num_samples - first), generator

    def _fidelity_for(self, datamodule, device: torch.device) -> ImageFidelity:
        key = (datamodule.dataset_key, str(device))
        if self._fidelity_key != key:
            extractor = build_extractor(
                self.features,
                datamodule,
                device=device,
                inception_weights=self.inception_weights,
                classifier=self.classifier,
                cache_dir=self.cache_dir,
            )
            reference = load_or_extract_reference(
                extractor, datamodule, self.reference_split, self.batch_size, self.cache_dir
            )
            self._fidelity = ImageFidelity(extractor, reference, **self.metric_settings, seed=SUBSET_SEED)
            self._fidelity_key = key

        return self._fidelity

    def _result(self, fidelity: ImageFidelity, values: dict, module: LightningModule, seconds: float) -> dict:
        names = ("fid", "is", "is_std", "kid", "kid_std", "precision", "recall")
        metrics = {f"val/{name}{self.suffix}": values[name] for name in names}
        if self.features == "classifier":
            metrics["val/clf_acc"] = fidelity.extractor.accuracy
        settings = {
            "features": self.features,
            "num_samples": self.num_samples,
            "batch_size": self.batch_size,
            "seed": self.seed,
            "sample_seeds": "torch.Generator per batch b, seeded from SeedSequence([seed, b])",
            **self.metric_settings,
        }
        sample_info = module.sample_info() if hasattr(module, "sample_info") else {}
        card = protocol_card(fidelity.extractor, fidelity.reference_meta, values, settings, sample_info)
        card.update(nonfinite_samples=values["nonfinite_samples"], device=str(module.device), seconds=seconds)
        return {"metrics": metrics, "protocol": card}
