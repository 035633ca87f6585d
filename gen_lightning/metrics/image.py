"""FID, IS, KID and precision/recall of generated images from one pass of features, and their protocol card.

- FID (Heusel et al. 2017, "GANs trained by a two time-scale update rule"), the Frechet distance of Gaussians
  fitted to the features: ``|mu_r - mu_g|^2 + Tr(S_r + S_g - 2 (S_r S_g)^1/2)``; torchmetrics'
  ``FrechetInceptionDistance`` (float64 sums, eigenvalue square root, as torch-fidelity).
- IS (Salimans et al. 2016, "Improved techniques for training GANs"): ``exp E_x KL(p(y|x) || p(y))``,
  mean over 10 splits.
- KID (Binkowski et al. 2018, "Demystifying MMD GANs"): unbiased MMD^2 with the cubic kernel
  ``(x.y / d + 1)^3``, mean over 100 random subsets of 1,000.
- Precision / recall (Kynkaanniemi et al. 2019, "Improved precision and recall metric for assessing generative
  models"): a sample is inside a set's manifold if it lies in the k-NN ball (k = 3) of a set member.
  Computed on the FID features; the paper and torch-fidelity's default use VGG-16 features instead, so
  Inception precision/recall are comparable only with numbers made on Inception pool features.

IS and KID keep torchmetrics' states (and so its DDP synchronisation), but draw their splits / subsets like
torch-fidelity, from a seeded NumPy generator over samples sorted by index: torchmetrics 1.9 draws them with
``torch.randperm`` from the global RNG (which would break exact resume), splits IS with ``chunk`` and reports
a sample std. Sorting by index makes the numbers independent of the number of processes.
"""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn
from torchmetrics.aggregation import SumMetric
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.inception import InceptionScore
from torchmetrics.image.kid import KernelInceptionDistance
from torchmetrics.utilities.data import dim_zero_cat
from torchmetrics.utilities.distributed import gather_all_tensors

from gen_lightning.files import save_torch
from gen_lightning.metrics.extractors import (
    QUANTIZATION,
    cache_root,
    digest,
    dist_info,
    tensors_sha256,
    to_uint8_rgb,
)

SUBSET_SEED = 2020  # torch-fidelity's default rng_seed for IS splits and KID subsets


@contextlib.contextmanager
def full_fp32_matmul():
    """Exact float32 products (no TF32 / bf16 shortcuts) for kernel and distance matrices."""
    previous = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(previous)


# ---------------------------------------------------------------- metric functions (torch-fidelity protocol)


def inception_score(logits: Tensor, splits: int = 10, seed: int = SUBSET_SEED) -> tuple[float, float]:
    """IS mean and population std over ``splits`` parts of a seeded permutation. logits: (N, K)."""
    n = logits.shape[0]
    if n < splits:
        raise ValueError(f"inception score needs at least is_splits={splits} samples, got {n}")
    logits = logits[torch.from_numpy(np.random.RandomState(seed).permutation(n)).to(logits.device)].double()
    p, log_p = logits.softmax(dim=1), logits.log_softmax(dim=1)
    scores = []
    for i in range(splits):
        part = slice(i * n // splits, (i + 1) * n // splits)
        p_y = p[part].mean(dim=0, keepdim=True)  # marginal p(y) of the split, (1, K)
        kl = (p[part] * (log_p[part] - p_y.log())).sum(dim=1)  # KL(p(y|x) || p(y)), (n_i,)
        scores.append(kl.mean().exp())
    scores = torch.stack(scores)
    return scores.mean().item(), scores.std(unbiased=False).item()


def _cubic_kernel(a: Tensor, b: Tensor) -> Tensor:
    """k(x, y) = (x.y / d + 1)^3: the product in float32, the power (and later sums) in float64."""
    return (a @ b.T / a.shape[1] + 1).double() ** 3


def _unbiased_mmd2(k_xx: Tensor, k_xy: Tensor, k_yy: Tensor) -> Tensor:
    # The unbiased MMD^2 estimator (Gretton et al. 2012): diagonals of k_xx and k_yy are left out.
    m = k_xx.shape[0]
    within = (k_xx.sum() - k_xx.diagonal().sum() + k_yy.sum() - k_yy.diagonal().sum()) / (m * (m - 1))
    return within - 2 * k_xy.sum() / (m * m)


# Largest number of kernel entries (all three matrices) held at once for the one-pass KID: 16M float64, 128 MB.
KID_FULL_KERNEL_ENTRIES = 1 << 24


def _subset_sums(kernel: Tensor, rows: Tensor, cols: Tensor) -> Tensor:
    """``kernel[r][:, c].sum()`` for every subset: ``rows (S, N)`` and ``cols (S, M)`` are 0/1 indicators."""
    return ((rows @ kernel) * cols).sum(dim=1)  # (S,)


def kernel_inception_distance(
    real: Tensor,
    fake: Tensor,
    subsets: int = 100,
    subset_size: int = 1000,
    seed: int = SUBSET_SEED,
    max_kernel_entries: int = KID_FULL_KERNEL_ENTRIES,
) -> tuple[float, float, int]:
    """KID mean and population std over subsets drawn as torch-fidelity draws them, and the subset size.

    When the three kernel matrices of all samples fit in ``max_kernel_entries``, they are computed once and each
    subset's sums are read from them with 0/1 indicator vectors (``s^T K s``): the same estimator, about 10x faster
    than a kernel per subset (KID was most of an evaluation's time on small images)."""
    rng = np.random.RandomState(seed)
    m = min(subset_size, len(real), len(fake))
    if m < 2:
        raise ValueError(f"KID needs at least 2 samples per set, got {len(real)} real, {len(fake)} fake")
    draws = []
    for _ in range(subsets):  # the order of torch-fidelity's draws: fake subset, then real subset
        draws.append((rng.choice(len(fake), m, replace=False), rng.choice(len(real), m, replace=False)))
    with full_fp32_matmul():
        n_f, n_r = len(fake), len(real)
        if n_f * n_f + n_f * n_r + n_r * n_r <= max_kernel_entries:
            s_f = torch.zeros(subsets, n_f, dtype=torch.float64, device=fake.device)
            s_r = torch.zeros(subsets, n_r, dtype=torch.float64, device=real.device)
            for i, (f, r) in enumerate(draws):
                s_f[i, torch.from_numpy(f).to(fake.device)] = 1.0
                s_r[i, torch.from_numpy(r).to(real.device)] = 1.0
            k_ff, k_rr = _cubic_kernel(fake, fake), _cubic_kernel(real, real)
            within = _subset_sums(k_ff, s_f, s_f) - s_f @ k_ff.diagonal()
            within = within + _subset_sums(k_rr, s_r, s_r) - s_r @ k_rr.diagonal()
            mmds = within / (m * (m - 1)) - 2 * _subset_sums(_cubic_kernel(fake, real), s_f, s_r) / (m * m)
        else:
            mmds = []
            for f_idx, r_idx in draws:
                f = fake[torch.from_numpy(f_idx).to(fake.device)]
                r = real[torch.from_numpy(r_idx).to(real.device)]
                mmds.append(_unbiased_mmd2(_cubic_kernel(f, f), _cubic_kernel(f, r), _cubic_kernel(r, r)))
            mmds = torch.stack(mmds)
    return mmds.mean().item(), mmds.std(unbiased=False).item(), m


def _knn_radii(x: Tensor, k: int, chunk: int) -> Tensor:
    """Distance to the k-th nearest other member: the k + 1-th smallest, the point itself is at distance 0."""
    radii = []
    for i in range(0, len(x), chunk):
        # topk (sorted ascending) gives kthvalue's value ~10x faster on CPU.
        radii.append(torch.cdist(x[i : i + chunk], x).topk(k + 1, dim=1, largest=False).values[:, k])
    return torch.cat(radii)


def precision_recall(real: Tensor, fake: Tensor, k: int = 3, chunk: int = 1024) -> tuple[float, float]:
    """Precision: share of fake samples inside the real manifold; recall: real samples inside the fake one.

    One pass over the fake-real distances, ``chunk`` rows at a time, serves both.
    """
    if min(len(real), len(fake)) <= k:
        raise ValueError(f"precision/recall with k={k} needs more than {k} samples per set")
    with full_fp32_matmul():
        real_radii, fake_radii = _knn_radii(real, k, chunk), _knn_radii(fake, k, chunk)
        precise = []  # per fake sample: within the k-NN ball of some real sample
        recalled = torch.zeros(len(real), dtype=torch.bool, device=real.device)
        for i in range(0, len(fake), chunk):
            dist = torch.cdist(fake[i : i + chunk], real)  # (chunk, N_real)
            precise.append((dist <= real_radii).any(dim=1))
            recalled |= (dist <= fake_radii[i : i + chunk, None]).any(dim=0)
    return torch.cat(precise).sum().item() / len(fake), recalled.sum().item() / len(real)


# ---------------------------------------------------------------- torchmetrics states


class _Given(nn.Module):
    """Identity 'feature network': the features are extracted once, outside the metrics."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = num_features

    def forward(self, features: Tensor) -> Tensor:
        return features


def _ordered(values: list[Tensor] | Tensor, index: list[Tensor] | Tensor) -> Tensor:
    values, index = dim_zero_cat(values), dim_zero_cat(index)
    return values[index.argsort()]


class InceptionScoreByIndex(InceptionScore):
    """torchmetrics IS states (logits) plus each sample's index; splits as torch-fidelity."""

    def __init__(self, splits: int = 10, seed: int = SUBSET_SEED) -> None:
        with warnings.catch_warnings():  # "will save all extracted features": that is the state we need
            warnings.simplefilter("ignore")
            super().__init__(feature=_Given(0), splits=splits)
        self.seed = seed
        # "cat", not torchmetrics' None: None gathers one tensor per update() call, so processes that made
        # different numbers of updates run mismatched collectives (a crash or a hang under DDP).
        self.add_state("features", [], dist_reduce_fx="cat")
        self.add_state("index", [], dist_reduce_fx="cat")

    def update(self, logits: Tensor, index: Tensor) -> None:
        self.features.append(logits)
        self.index.append(index)

    def compute(self) -> tuple[float, float]:
        return inception_score(_ordered(self.features, self.index), self.splits, self.seed)


class KIDPrecisionRecall(KernelInceptionDistance):
    """torchmetrics KID states (all features of both sets) plus indices; KID and precision/recall from them.

    Both metrics need every feature vector, so they share one copy. Real features survive ``reset``.
    """

    def __init__(self, subsets: int = 100, subset_size: int = 1000, k: int = 3, seed: int = SUBSET_SEED) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            super().__init__(feature=_Given(0), subsets=subsets, subset_size=subset_size, reset_real_features=False)
        self.k, self.seed = k, seed
        for name in ("real_features", "fake_features", "real_index", "fake_index"):
            self.add_state(name, [], dist_reduce_fx="cat")  # see InceptionScoreByIndex

    def update(self, features: Tensor, index: Tensor, real: bool) -> None:
        (self.real_features if real else self.fake_features).append(features)
        (self.real_index if real else self.fake_index).append(index)

    def compute(self) -> dict[str, float]:
        real = _ordered(self.real_features, self.real_index)
        fake = _ordered(self.fake_features, self.fake_index)
        kid, kid_std, m = kernel_inception_distance(real, fake, self.subsets, self.subset_size, self.seed)
        precision, recall = precision_recall(real, fake, self.k)
        return {
            "kid": kid,
            "kid_std": kid_std,
            "kid_subset_size": m,
            "precision": precision,
            "recall": recall,
        }

    def reset(self) -> None:
        kept = {name: self._defaults.pop(name) for name in ("real_features", "real_index")}
        super(KernelInceptionDistance, self).reset()
        self._defaults.update(kept)


# ---------------------------------------------------------------- one evaluation


@dataclass
class Reference:
    """Features of the real images of one split, in dataset order, and what produced them."""

    features: Tensor  # (N, feature_dim) float32
    logits: Tensor  # (N, num_logits)
    sha256: str
    meta: dict


class ImageFidelity(nn.Module):
    """Accumulates generated images batch by batch against a fixed reference; every process calls compute().

    Under DDP each process holds a strided shard of the reference and its own generated samples; torchmetrics
    gathers the states in ``compute``, and sorting by sample index makes the result equal to one process's.
    """

    def __init__(
        self,
        extractor: nn.Module,
        reference: Reference,
        *,
        is_splits: int = 10,
        kid_subsets: int = 100,
        kid_subset_size: int = 1000,
        pr_k: int = 3,
        seed: int = SUBSET_SEED,
    ) -> None:
        super().__init__()
        self.extractor = extractor
        self.fid = FrechetInceptionDistance(feature=_Given(extractor.feature_dim), reset_real_features=False)
        self.kid_pr = KIDPrecisionRecall(kid_subsets, kid_subset_size, pr_k, seed)
        self.isc = InceptionScoreByIndex(is_splits, seed)
        self.nonfinite = SumMetric()
        device = next(extractor.parameters()).device
        self.to(device)
        self.reference_meta = {**reference.meta, "sha256": reference.sha256}  # for the protocol card
        rank, world = dist_info()
        shard = torch.arange(rank, len(reference.features), world)
        features = reference.features[shard].to(device)
        self.fid.update(features, real=True)
        self.kid_pr.update(features, shard.to(device), real=True)
        self.reset()

    def reset(self) -> None:
        """Forget the generated samples. Empty (0, d) entries keep the state shapes right on a process that
        generates nothing (fewer batches than processes)."""
        for metric in (self.fid, self.kid_pr, self.isc, self.nonfinite):
            metric.reset()
        device = self.fid.fake_features_sum.device
        d, k = self.extractor.feature_dim, self.extractor.num_logits
        self._update_features(torch.zeros(0, d, device=device), torch.zeros(0, k, device=device), torch.zeros(0))
        self.nonfinite.update(torch.zeros((), device=device))

    def _update_features(self, features: Tensor, logits: Tensor, index: Tensor) -> None:
        index = index.to(features.device, torch.long)
        self.fid.update(features, real=False)
        self.kid_pr.update(features, index, real=False)
        self.isc.update(logits, index)

    @torch.no_grad()
    def update(self, images: Tensor, index: Tensor) -> None:
        """images: (B, C, H, W) in [-1, 1]; index: (B,) global sample indices."""
        finite = torch.isfinite(images).flatten(1).all(dim=1)
        self.nonfinite.update((~finite).sum().float())
        features, logits = self.extractor(to_uint8_rgb(torch.nan_to_num(images)))
        self._update_features(features.float(), logits.float(), index)

    def compute(self) -> dict[str, float]:
        values = {"fid": self.fid.compute().item()}
        values["is"], values["is_std"] = self.isc.compute()
        values.update(self.kid_pr.compute())
        if self.nonfinite.compute().item() > 0:  # NaN images make every number meaningless
            values = {k: float("nan") for k in values}
        values["nonfinite_samples"] = int(self.nonfinite.compute().item())
        return values


# ---------------------------------------------------------------- reference features


@torch.no_grad()
def extract_features(extractor: nn.Module, loader) -> tuple[Tensor, Tensor]:
    """Features and logits of every image of an ordered, possibly DDP-sharded loader, in dataset order."""
    device = next(extractor.parameters()).device
    features, logits, index = [], [], []
    for batch_index, (images, _) in zip(loader.batch_sampler, loader):
        f, l = extractor(to_uint8_rgb(images.to(device)))
        features.append(f.float())
        logits.append(l.float())
        index.append(torch.as_tensor(batch_index, device=device))
    features, logits, index = torch.cat(features), torch.cat(logits), torch.cat(index)
    if dist_info()[1] > 1:
        features, logits, index = (torch.cat(gather_all_tensors(t)) for t in (features, logits, index))
    order = index.argsort()
    return features[order].cpu(), logits[order].cpu()


def _on_every_process(flag: bool) -> bool:
    if dist_info()[1] == 1:
        return flag
    flags = [None] * dist_info()[1]
    torch.distributed.all_gather_object(flags, flag)
    return all(flags)


def load_or_extract_reference(
    extractor: nn.Module, datamodule, split: str, batch_size: int, cache_dir=None
) -> Reference:
    """Real features of ``split``, cached on disk per (dataset, split, extractor, image size)."""
    meta = {
        "dataset": datamodule.dataset_key,
        "split": split,
        "image_size": int(datamodule.model_kwargs()["image_size"]),
    }
    key = {
        **meta,
        "extractor": extractor.name,
        "weights": extractor.weights_sha256,
        "resize": extractor.resize,
    }
    path = cache_root(cache_dir) / "reference" / f"{digest({**key, 'quantization': QUANTIZATION})}.pt"
    # Every process must take the same branch: extraction is collective under DDP.
    if _on_every_process(path.is_file()):
        saved = torch.load(path, map_location="cpu", weights_only=True)
    else:
        features, logits = extract_features(extractor, datamodule.reference_loader(split, batch_size))
        saved = {"features": features, "logits": logits, "sha256": tensors_sha256({"features": features})}
        if dist_info()[0] == 0:
            save_torch({**saved, "key": key}, path)
    meta["size"] = len(saved["features"])
    if meta["size"] >= 10:  # the IS of real data, the ceiling for generated samples
        meta["is"] = inception_score(saved["logits"])[0]
    return Reference(saved["features"], saved["logits"], saved["sha256"], meta)


def protocol_card(extractor: nn.Module, reference_meta: dict, values: dict, settings: dict, sample_info: dict) -> dict:
    """Everything a metric value depends on, flat (so it can go into a logger's config as protocol/<key>)."""
    import torch_fidelity
    import torchmetrics

    card = {
        "extractor": extractor.name,
        "extractor_weights_sha256": extractor.weights_sha256,
        **extractor.info,
        "resize": extractor.resize,
        "quantization": QUANTIZATION,
        **{f"reference_{k}": v for k, v in reference_meta.items()},
        **settings,
        "kid_subset_size_used": values["kid_subset_size"],
        "kid_kernel": "(x.y / d + 1)^3",
        "subset_seed": SUBSET_SEED,
        **{f"sample_{k}": v for k, v in sample_info.items()},
        "world_size": dist_info()[1],
        "torchmetrics": torchmetrics.__version__,
        "torch_fidelity": torch_fidelity.__version__,
    }
    return {k: (v if isinstance(v, (int, float, str, bool)) or v is None else str(v)) for k, v in card.items()}
