"""``ImageMetrics``: FID / IS / KID / precision-recall of an image module during training, and its protocol.

Generated sample ``i`` belongs to batch ``c = i // batch_size``, drawn with a generator seeded from
``SeedSequence([seed, c])``; process ``r`` of ``W`` draws batches ``r, r + W, ...``. The images, and so the
numbers, do not depend on the number of processes, and re-evaluating a checkpoint gives the same value.
Scheduling, logging and the global RNG's restoration are ``EvaluationCallback``'s (metrics/protocol.py).

Values are logged as ``val/<metric>`` (``val/<metric>_clf`` with classifier features) every ``every_n_epochs``
validation epochs and once more when training ends; ``last_result`` holds ``{"metrics", "protocol"}`` for
``metrics.json``, and the card goes to every logger as ``protocol/<key>`` hyperparameters.
"""

from __future__ import annotations

import time

import torch
from lightning.pytorch import LightningModule
from lightning.pytorch.utilities import rank_zero_warn

from gen_lightning.metrics.extractors import ClassifierSettings, build_extractor, dist_info
from gen_lightning.metrics.image import SUBSET_SEED, ImageFidelity, load_or_extract_reference, protocol_card
from gen_lightning.metrics.protocol import EvaluationCallback, batch_generator, evaluating, global_rng_preserved

FEATURES = ("inception", "classifier")
SPLITS = ("train", "val")


class ImageMetrics(EvaluationCallback):
    """Generated images of an unconditional image module against a cached real reference set.

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

    tasks = (("unconditional", None, "image"),)

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
        super().__init__(every_n_epochs=every_n_epochs, split="val", batch_size=batch_size, seed=seed)
        self.protocol_name = features
        self.features, self.reference_split, self.num_samples = features, reference_split, num_samples
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
        scores = {"fid": "min", "kid": "min", "is": "max", "precision": "max", "recall": "max"}
        self.metric_directions = {f"{k}{self.suffix}": v for k, v in scores.items()}
        if features == "classifier":
            self.metric_directions["clf_acc"] = "max"
        self._fidelity: ImageFidelity | None = None
        self._fidelity_key: tuple | None = None

    # ------------------------------------------------------------ evaluation

    def evaluate(self, module: LightningModule, datamodule, split: str | None = None) -> dict:
        """``{"metrics": {"val/fid": ...}, "protocol": {...}}`` for ``module``; call on every process.

        ``split`` chooses the real reference split (default ``reference_split``); the names stay ``val/``."""
        self.check(module)
        if not hasattr(datamodule, "reference_loader"):
            raise ValueError(f"metrics={self.features} needs an image data module with real reference images")
        reference_split = split or self.reference_split
        if reference_split not in SPLITS:
            raise ValueError(f"metrics={self.features} compares with the train or val split, got {reference_split!r}")
        start = time.perf_counter()
        device = module.device
        with global_rng_preserved(device, type(module).__name__), evaluating(module):
            fidelity = self._fidelity_for(datamodule, device, reference_split)
            try:
                fidelity.reset()
                for first, count, generator in self._batches(device):
                    images = module.sample(count, generator=generator)
                    fidelity.update(images, torch.arange(first, first + count))
                values = fidelity.compute()
            finally:
                fidelity.reset()  # free the generated features
        return self._result(fidelity, values, module, time.perf_counter() - start)

    def prefix(self, split: str) -> str:
        return "val"

    def _batches(self, device: torch.device):
        """(first index, count, generator) of this process's generated batches."""
        rank, world = dist_info()
        for batch in range(rank, -(-self.num_samples // self.batch_size), world):
            first = batch * self.batch_size
            generator = batch_generator(self.seed, batch, device)
            yield first, min(self.batch_size, self.num_samples - first), generator

    def _fidelity_for(self, datamodule, device: torch.device, reference_split: str) -> ImageFidelity:
        key = (datamodule.dataset_key, str(device), reference_split)
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
                extractor, datamodule, reference_split, self.batch_size, self.cache_dir
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
            "protocol": self.features,
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
