"""``paired_image``: outputs of an image -> image model against their targets, pair by pair.

On a fixed subset of a split (the first ``num_items`` pairs, in order), every output ``y^ = G(x)`` is compared with
its target ``y``, both mapped from ``[-1, 1]`` to ``[0, 1]``, per image, then averaged over images:

- PSNR = 10 log10(1 / MSE(y^, y)) over all channels and pixels (data range 1). Super-resolution papers often report
  it on the luminance (Y) channel of RGB images with a border cropped; this protocol does not, so compare only with
  numbers made under it (its card says so).
- SSIM (Wang et al. 2004) with a Gaussian window (sigma 1.5) of ``ssim_kernel`` pixels, or the largest odd size
  that fits smaller images (8x8 digits: 7), averaged over the positions where the window fits, as the authors'
  code and scikit-image do (torchmetrics' map, cropped).
- L1 = mean |y^ - y|.
- ``fid_clf``: FID of the outputs against the target domain's reference split on the features of the target
  domain's digit classifier, and ``content_acc``: that classifier's accuracy on the outputs against the source
  image's label (``target_domain.py``). ``features: auto`` computes them where the target data has class labels.
- ``lpips`` (optional, ``lpips: alex|vgg|squeeze``): LPIPS where its backbone's weights are available.

Unpaired data (``datamodule.paired`` False, CycleGAN's two domains) have no aligned targets: only ``fid_clf`` and
``content_acc`` are computed there.

Per-image sums are all-reduced in float64, so the numbers do not depend on the number of processes. Batches are
seeded per batch number (``BatchShardSampler``), so a stochastic generator gives the same outputs on any world size.
"""

from __future__ import annotations

import torch
from torchmetrics.functional.image import structural_similarity_index_measure

from gen_lightning.metrics.extractors import ClassifierSettings, dist_info
from gen_lightning.metrics.protocol import EvaluationCallback, batch_generator, split_items
from gen_lightning.metrics.target_domain import LPIPS, TargetDomainScores

NAMES = ("psnr", "ssim", "l1")
FEATURES = ("auto", "classifier", None)


def ssim_window(size: int, requested: int) -> int:
    """The largest odd window <= ``requested`` that fits an image side of ``size``."""
    k = min(requested, size if size % 2 else size - 1)
    if k < 3:
        raise ValueError(f"images of {size} pixels are too small for SSIM (a window of at least 3)")
    return k


def ssim_valid(x: torch.Tensor, y: torch.Tensor, kernel: int) -> torch.Tensor:
    """Mean SSIM over the positions where the whole window fits (Wang et al.'s reference code filters 'valid'),
    (B,). torchmetrics 1.9 averages its map over the reflection-padded full image instead; its map is cropped."""
    _, full = structural_similarity_index_measure(
        x, y, data_range=1.0, kernel_size=kernel, reduction="none", return_full_image=True
    )
    pad = (kernel - 1) // 2
    return full[..., pad : full.shape[-2] - pad, pad : full.shape[-1] - pad].flatten(1).mean(1)


def per_image(output: torch.Tensor, target: torch.Tensor, kernel: int) -> dict[str, torch.Tensor]:
    """PSNR, SSIM and L1 of each pair, (B,) each; inputs (B, C, H, W) in [-1, 1]."""
    x = ((output.float() + 1) / 2).clamp(0, 1)
    y = ((target.float() + 1) / 2).clamp(0, 1)
    mse = (x - y).pow(2).flatten(1).mean(1)
    return {
        "psnr": 10 * torch.log10(1.0 / mse.clamp_min(1e-10)),  # identical images: 100 dB, not infinity
        "ssim": ssim_valid(x, y, kernel),
        "l1": (x - y).abs().flatten(1).mean(1),
    }


class PairedImageMetrics(EvaluationCallback):
    """PSNR / SSIM / L1 of a conditional image model on a fixed subset; see the file docstring.

    Args (besides ``EvaluationCallback``'s): ``ssim_kernel`` (Gaussian window, 11 as Wang et al.),
    ``options`` (keyword arguments of the model's ``generate``, part of the protocol)."""

    protocol_name = "paired_image"
    tasks = (("conditional", "image", "image"),)
    metric_directions = {"psnr": "max", "ssim": "max", "l1": "min", "fid_clf": "min", "content_acc": "max",
                         "lpips": "min"}  # fmt: skip

    def __init__(
        self,
        every_n_epochs: int = 1,
        split: str = "val",
        num_items: int | None = 1000,
        batch_size: int = 100,
        seed: int = 0,
        ssim_kernel: int = 11,
        options: dict | None = None,
        features: str | None = "auto",
        reference_split: str = "train",
        lpips: str | None = None,
        classifier: dict | None = None,
        cache_dir: str | None = None,
    ) -> None:
        super().__init__(every_n_epochs, split, num_items, batch_size, seed)
        if features not in FEATURES:
            raise ValueError(f"metrics.features must be one of {FEATURES}, got {features!r}")
        self.ssim_kernel = ssim_kernel
        self.options = dict(options or {})
        self.features, self.reference_split, self.lpips = features, reference_split, lpips
        self.classifier, self.cache_dir = ClassifierSettings(**(classifier or {})), cache_dir
        self._target: tuple | None = None  # (key, TargetDomainScores), rebuilt for other data or devices
        self._lpips: LPIPS | None = None

    def settings(self) -> dict:
        return {
            "ssim_kernel": self.ssim_kernel,
            "options": self.options,
            "psnr": "per image on [0, 1], all channels, no border crop, mean over images",
            "features": self.features,
            "lpips": self.lpips,
        }

    def target_scores(self, datamodule, device) -> TargetDomainScores | None:
        """The FID / content scorer of the target domain (cached per data set and device), or None."""
        if self.features is None:
            return None
        if self.features == "auto" and int(datamodule.model_kwargs().get("num_classes", 0)) < 2:
            return None  # unlabelled targets: no classifier to train
        key = (datamodule.dataset_key, str(device), self.reference_split)
        if self._target is None or self._target[0] != key:
            scores = TargetDomainScores(
                datamodule, device, self.reference_split, self.batch_size, self.classifier, self.cache_dir
            )
            self._target = (key, scores)
        self._target[1].reset()
        return self._target[1]

    def lpips_metric(self, device) -> LPIPS | None:
        if self.lpips is None:
            return None
        if self._lpips is None or self._lpips.metric.device != device:
            self._lpips = LPIPS(self.lpips, device)
        self._lpips.reset()
        return self._lpips

    def compute(self, module, datamodule, split: str) -> dict:
        device = module.device
        paired = getattr(datamodule, "paired", True)
        domain, lpips = self.target_scores(datamodule, device), self.lpips_metric(device) if paired else None
        sums = torch.zeros(len(NAMES) + 2, dtype=torch.float64, device=device)  # metrics, count, non-finite
        kernel = None
        loader = datamodule.evaluation_loader(split, self.num_items, self.batch_size)
        for batch in loader:
            generator = batch_generator(self.seed, batch["batch"], device)
            output = module.generate(batch["source"].to(device), generator=generator, **self.options)
            target = batch["target"].to(device)
            if paired and output.shape != target.shape:
                raise ValueError(
                    f"{type(module).__name__}.generate returned {tuple(output.shape)} for targets of "
                    f"{tuple(target.shape)}: outputs and targets must have the same shape"
                )
            finite = torch.isfinite(output).flatten(1).all(1)
            output = torch.where(finite[:, None, None, None], output, torch.zeros_like(output))
            sums[-2] += finite.sum()
            sums[-1] += (~finite).sum()
            if domain is not None:
                labels = batch.get("source_label")
                domain.update(output[finite], None if labels is None else labels[finite.to(labels.device)])
            if not paired:
                continue
            if lpips is not None:
                lpips.update(output[finite], target[finite])
            kernel = kernel or ssim_window(min(target.shape[-2:]), self.ssim_kernel)
            values = per_image(output, target, kernel)
            for i, name in enumerate(NAMES):
                sums[i] += values[name][finite].double().sum()
        result = self._result(sums, domain, lpips, paired)
        result["protocol"]["split_items"] = split_items(loader)  # the pairs scored, of the split's
        return result

    def _result(self, sums: torch.Tensor, domain, lpips, paired: bool) -> dict:
        if dist_info()[1] > 1:
            torch.distributed.all_reduce(sums)
        count, nonfinite = int(sums[-2]), int(sums[-1])
        valid = count and not nonfinite
        metrics = {name: (float(sums[i] / count) if valid else float("nan")) for i, name in enumerate(NAMES)}
        metrics = metrics if paired else {}
        card = {"pairs": count + nonfinite, "nonfinite_samples": nonfinite, "paired": paired}
        if domain is not None:
            metrics.update({k: (v if valid else float("nan")) for k, v in domain.compute().items()})
            card.update(domain.card)
        if lpips is not None:
            metrics["lpips"] = lpips.compute() if valid else float("nan")
        return {"metrics": metrics, "protocol": card}
