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

VGG-19's weights are a fixed download, rebuilt identically anywhere, so they stay out of checkpoints. The classifier
is trained here, and a classifier trained on another host, with another torch, or after its cache was cleared is
another network (its training is not bit-identical across CPUs): a run resumed with it would continue under
another loss. So the classifier's feature weights are buffers of the model (``ClassifierFeatures``): they go into
every checkpoint and come back with it on resume; the disk cache only serves a run's start.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
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
    """Images ``(B, 1 or 3, H, W)`` in [-1, 1] -> the digit classifier's second conv map ``(B, 2w, H/2, W/2)``.

    ``ClassifierNet.body[:5]`` (conv 5x5, ReLU, max-pool 2, conv 5x5, ReLU) computed from weights held as buffers:
    saved with the model that uses them, never optimised. Built empty (zeros: no random draw); ``ready`` tells
    whether they were filled, from the trained classifier (``load_from``) or from a checkpoint. Checkpoints written
    before these buffers existed load with ``ready`` false, and a run fills them again from the cache."""

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        self.register_buffer("weight1", torch.zeros(width, 3, 5, 5))
        self.register_buffer("bias1", torch.zeros(width))
        self.register_buffer("weight2", torch.zeros(2 * width, width, 5, 5))
        self.register_buffer("bias2", torch.zeros(2 * width))
        self.register_buffer("ready", torch.zeros((), dtype=torch.bool))
        self._register_load_state_dict_pre_hook(self._fill_missing)

    def _fill_missing(self, state_dict, prefix, *args) -> None:
        for name, buffer in self.named_buffers():
            state_dict.setdefault(prefix + name, torch.zeros_like(buffer))  # an older checkpoint: not ready

    @torch.no_grad()
    def load_from(self, extractor: nn.Module) -> None:
        """Copy the first two convolutions of a trained classifier extractor (``metrics/extractors.py``)."""
        conv1, conv2 = extractor.net.body[0], extractor.net.body[3]
        for buffer, value in ((self.weight1, conv1.weight), (self.bias1, conv1.bias)):
            buffer.copy_(value)
        for buffer, value in ((self.weight2, conv2.weight), (self.bias2, conv2.bias)):
            buffer.copy_(value)
        self.ready.fill_(True)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        h = F.conv2d(images.expand(-1, 3, -1, -1), self.weight1, self.bias1, padding=2).relu()
        return F.conv2d(F.max_pool2d(h, 2), self.weight2, self.bias2, padding=2).relu()


def build_features(kind: str, datamodule, device: torch.device) -> nn.Module:
    """The frozen network named by ``model.features``: VGG-19's features, or the trained digit classifier
    extractor whose convolutions ``ClassifierFeatures.load_from`` takes (``datamodule`` gives its data)."""
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
        return build_extractor("classifier", datamodule, device=device)
    raise ValueError(f"model.features must be one of {FEATURES}, got {kind!r}")
