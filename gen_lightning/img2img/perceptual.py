"""Feature networks for SRGAN's perceptual (content) loss (Ledig et al. 2017, eq. 5).

``l_VGG/i.j = mean ||phi(I_HR) - phi(G(I_LR))||^2`` over a frozen network's feature map ``phi``:
- ``"vgg19"``: torchvision's ImageNet VGG-19, ``phi_5,4`` (the ReLU after the 4th convolution before the 5th
  max-pooling, ``features[:36]``), inputs scaled to [0, 1] and normalised with ImageNet's mean and std, features
  divided by 12.75 as in Ledig et al. section 3.4. Its weights come from torchvision's download cache; offline,
  a clear error says where to put the file.
- ``"classifier"``: the offline digit classifier of the metric protocol (``gen_lightning/metrics/extractors.py``,
  trained once on the target domain's labels and cached on disk), its second convolution's ReLU map
  ``(B, 2 width, H / 2, W / 2)``: a perceptual space learned from the data set itself, for data sets where
  ImageNet features mean little (8x8 or 28x28 digits) or without internet.

Both are caches that can be rebuilt, so they are kept out of the module's state dict (and out of checkpoints).
"""

from __future__ import annotations

import torch
from torch import nn

FEATURES = ("classifier", "vgg19")
VGG_SCALE = 12.75  # Ledig et al. section 3.4: VGG losses rescaled by 1/12.75, comparable to the MSE loss
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class VGGFeatures(nn.Module):
    """Images ``(B, 1 or 3, H, W)`` in [-1, 1] -> VGG-19 ``phi_5,4`` features ``(B, 512, H / 16, W / 16)``."""

    def __init__(self) -> None:
        super().__init__()
        from torchvision.models import VGG19_Weights, vgg19

        weights = VGG19_Weights.IMAGENET1K_V1
        with torch.random.fork_rng(devices=[]):  # the random init (then overwritten) must not touch the global RNG
            net = vgg19()
        try:
            state = weights.get_state_dict(progress=False, check_hash=True)
        except Exception as err:  # no network, proxy, DNS, HTTP error: all end the same way
            target = f"{torch.hub.get_dir()}/checkpoints/{weights.url.rsplit('/', 1)[1]}"
            raise RuntimeError(
                f"SRGAN's VGG-19 feature loss needs torchvision's ImageNet weights, which are not cached at "
                f"{target} and could not be downloaded from {weights.url} ({type(err).__name__}: {err}). "
                f"Download that file on a machine with internet access and copy it to {target} (the directory "
                "follows $TORCH_HOME), or use model.features=classifier (offline, trained on the data's labels)."
            ) from err
        net.load_state_dict(state)
        self.features = net.features[:36].eval().requires_grad_(False)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN)[None, :, None, None], persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD)[None, :, None, None], persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = (images.expand(-1, 3, -1, -1) + 1) / 2  # grey repeated to RGB, [0, 1]
        return self.features((x - self.mean) / self.std) / VGG_SCALE


class ClassifierFeatures(nn.Module):
    """Images ``(B, 1 or 3, H, W)`` in [-1, 1] -> the digit classifier's second conv map ``(B, 2w, H/2, W/2)``."""

    def __init__(self, extractor: nn.Module) -> None:
        super().__init__()
        # ClassifierNet.body: conv, relu, pool, conv, relu, ... ; it reads RGB scaled to [-1, 1].
        self.body = extractor.net.body[:5].eval().requires_grad_(False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.body(images.expand(-1, 3, -1, -1))


def build_features(kind: str, datamodule, device: torch.device) -> nn.Module:
    """The frozen feature network named by ``model.features`` (``datamodule`` gives the classifier's data)."""
    if kind == "vgg19":
        return VGGFeatures().to(device)
    if kind == "classifier":
        if datamodule is None or not hasattr(datamodule, "reference_loader"):
            raise ValueError(
                "model.features=classifier trains the digit classifier on the target images: train with a data "
                "module that has reference_loader (an image or paired image data config)"
            )
        from gen_lightning.metrics.extractors import build_extractor

        if int(datamodule.model_kwargs().get("num_classes", 0)) < 2:
            raise ValueError(
                "model.features=classifier trains the digit classifier on the target images' class labels, but "
                "these data have none: give the data labels (data.label_column), or use model.features=vgg19 "
                "(torchvision's VGG-19 weights), or model=srresnet (pixel loss only)"
            )
        return ClassifierFeatures(build_extractor("classifier", datamodule, device=device)).to(device)
    raise ValueError(f"model.features must be one of {FEATURES}, got {kind!r}")
