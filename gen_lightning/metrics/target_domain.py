"""What the ``paired_image`` protocol scores beyond pixel distances: realism in the target domain and content.

- ``TargetDomainScores``: the classifier-feature FID (``fid_clf``, Heusel et al. 2017 on the offline digit
  classifier of ``extractors.py``, trained on the target domain's labels) of the outputs against the target
  domain's reference split, the number PSNR misses (Ledig et al. 2017: SRGAN loses PSNR and wins realism); and
  ``content_acc``, the accuracy of that classifier on the outputs against the *source* image's label (a
  translated 3 must still read as a 3; CycleGAN's "FCN score" idea, Zhu et al. 2017 section 5.1.1, with a digit
  classifier). Under DDP the reference is sharded and torchmetrics sums the FID states; counts are all-reduced.
- ``LPIPS`` (Zhang et al. 2018) from torchmetrics where its backbone's ImageNet weights can be loaded (torchvision's
  download cache); images smaller than 64 pixels are upsampled bilinearly to 64 first (AlexNet's first stages
  need that much); offline, a clear error says where to put the weights file.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchmetrics.image.fid import FrechetInceptionDistance

from gen_lightning.metrics.extractors import ClassifierSettings, build_extractor, dist_info, to_uint8_rgb
from gen_lightning.metrics.image import _Given, load_or_extract_reference

LPIPS_NETS = ("alex", "vgg", "squeeze")
LPIPS_MIN_SIZE = 64
_LPIPS_WEIGHTS = {  # torchvision's file names, for the offline message
    "alex": "alexnet-owt-7be5be79.pth",
    "vgg": "vgg16-397923af.pth",
    "squeeze": "squeezenet1_1-b8a52dc0.pth",
}


class TargetDomainScores:
    """FID of outputs against the target set and content preservation, on the target domain's classifier."""

    def __init__(
        self, datamodule, device: torch.device, reference_split: str, batch_size: int, settings, cache_dir=None
    ) -> None:
        self.extractor = build_extractor(
            "classifier", datamodule, device=device, classifier=settings or ClassifierSettings(), cache_dir=cache_dir
        )
        reference = load_or_extract_reference(self.extractor, datamodule, reference_split, batch_size, cache_dir)
        self.fid = FrechetInceptionDistance(feature=_Given(self.extractor.feature_dim), reset_real_features=False)
        self.fid.to(device)
        rank, world = dist_info()
        self.fid.update(reference.features[rank::world].to(device), real=True)
        self.card = {
            "fid_features": "classifier (target domain)",
            "fid_reference_split": reference_split,
            "fid_reference_size": reference.meta["size"],
            "fid_reference_sha256": reference.sha256,
            "classifier_val_accuracy": self.extractor.accuracy,
        }
        self.device = device
        self.reset()

    def reset(self) -> None:
        self.fid.reset()  # the real features stay (reset_real_features=False)
        self.counts = torch.zeros(2, dtype=torch.float64, device=self.device)  # correct, labelled

    @torch.no_grad()
    def update(self, outputs: torch.Tensor, source_labels: torch.Tensor | None) -> None:
        """outputs ``(B, C, H, W)`` in [-1, 1] (finite); source_labels ``(B,)``, -1 where unknown."""
        features, logits = self.extractor(to_uint8_rgb(outputs))
        self.fid.update(features.float(), real=False)
        if source_labels is not None:
            labels = source_labels.to(self.device)
            known = labels >= 0
            self.counts[0] += (logits.argmax(1)[known] == labels[known]).sum()
            self.counts[1] += known.sum()

    def compute(self) -> dict[str, float]:
        values = {"fid_clf": float(self.fid.compute())}
        if dist_info()[1] > 1:
            torch.distributed.all_reduce(self.counts)
        if self.counts[1] > 0:
            values["content_acc"] = float(self.counts[0] / self.counts[1])
        return values


class LPIPS:
    """Mean LPIPS of (output, target) pairs with torchmetrics' implementation; see the file docstring."""

    def __init__(self, net: str, device: torch.device) -> None:
        if net not in LPIPS_NETS:
            raise ValueError(f"metrics.lpips must be one of {LPIPS_NETS} or null, got {net!r}")
        from torchmetrics.image.lpip import LearnedPerceptualImagePatchSimilarity

        try:
            with torch.random.fork_rng(devices=[]):  # the backbone's random init must not draw from the global RNG
                self.metric = LearnedPerceptualImagePatchSimilarity(net_type=net, reduction="mean").to(device)
        except Exception as err:  # no network, proxy, DNS, HTTP error: all end the same way
            target = f"{torch.hub.get_dir()}/checkpoints/{_LPIPS_WEIGHTS[net]}"
            raise RuntimeError(
                f"LPIPS ({net}) needs torchvision's ImageNet weights for its backbone, which are not cached at "
                f"{target} and could not be downloaded ({type(err).__name__}: {err}). Download that file on a "
                f"machine with internet access and copy it to {target} (the directory follows $TORCH_HOME), or "
                "set metrics.lpips=null."
            ) from err
        self.net = net

    @staticmethod
    def prepare(images: torch.Tensor) -> torch.Tensor:
        x = images.float().clamp(-1, 1).expand(-1, 3, -1, -1)
        if min(x.shape[-2:]) < LPIPS_MIN_SIZE:
            x = F.interpolate(x, size=(LPIPS_MIN_SIZE, LPIPS_MIN_SIZE), mode="bilinear", align_corners=False)
        return x

    def reset(self) -> None:
        self.metric.reset()

    @torch.no_grad()
    def update(self, outputs: torch.Tensor, targets: torch.Tensor) -> None:
        self.metric.update(self.prepare(outputs), self.prepare(targets))

    def compute(self) -> float:
        return float(self.metric.compute())  # synchronised over processes
