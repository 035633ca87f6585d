"""Feature extractors for image metrics: torch-fidelity's Inception-v3 and an offline digit classifier.

Every extractor takes the images as 8-bit RGB, exactly as torch-fidelity reads PNG files, and returns
``(features, logits)`` from one forward pass: features for FID / KID / precision-recall, logits for IS.

- ``InceptionExtractor``: the TensorFlow FID Inception (Heusel et al. 2017; Szegedy et al. 2016) as ported by
  torch-fidelity, pool3 features (2048) and unbiased logits (1008), resized to 299 with torch-fidelity's
  TensorFlow-1 compatible bilinear resize. torchmetrics >= 1.8 resizes with PyTorch's half-pixel bilinear
  (``antialias=True``) instead, which moves every pixel of an upsampled 28x28 image (by up to 160 grey
  levels at 299x299): numbers made that way are not comparable with published ones, so we call
  torch-fidelity's network directly.
- ``ClassifierExtractor``: a small CNN trained on the dataset's own labels, penultimate features and class
  logits, the offline protocol used for MNIST in the literature (e.g. Binkowski et al. 2018, "Demystifying MMD
  GANs", which computes FID/KID/IS on MNIST with a LeNet classifier). Trained once and cached on disk.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from gen_lightning.files import file_sha256, save_torch
from gen_lightning.nn.distributed import barrier, dist_info

INCEPTION_URL = (
    "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-inception-2015-12-05-6726825d.pth"
)
# torch-fidelity's forward is bit-for-bit the protocol; this string goes into the protocol card.
INCEPTION_RESIZE = "torch-fidelity tf1x bilinear to 299x299"
QUANTIZATION = "uint8: ((x + 1) * 127.5).round().clamp(0, 255); grey repeated to RGB"


# ---------------------------------------------------------------- shared helpers


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """``cache_dir``, else ``$GEN_LIGHTNING_CACHE``, else ``~/.cache/gen_lightning``."""
    root = cache_dir or os.environ.get("GEN_LIGHTNING_CACHE") or Path.home() / ".cache" / "gen_lightning"
    return Path(root).expanduser()


def digest(obj: dict) -> str:
    """Short stable hash of a JSON-serialisable description (cache keys)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


def tensors_sha256(tensors: dict[str, Tensor]) -> str:
    h = hashlib.sha256()
    for name in sorted(tensors):
        h.update(name.encode())
        h.update(tensors[name].detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def to_uint8_rgb(images: Tensor) -> Tensor:
    """(B, C, H, W) float in [-1, 1] -> (B, 3, H, W) uint8, as if saved as 8-bit PNG and read back."""
    if images.dim() != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"expected images (B, 1 or 3, H, W) in [-1, 1], got shape {tuple(images.shape)}")
    x = ((images.float() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
    return x.repeat(1, 3, 1, 1) if x.shape[1] == 1 else x


# ---------------------------------------------------------------- Inception-v3 (torch-fidelity)


def inception_weights_path() -> Path:
    """Where torch.hub (and so torch-fidelity) keeps the weights: ``$TORCH_HOME/hub/checkpoints/<file>``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_URL.rsplit("/", 1)[1]


def resolve_inception_weights(weights_path: str | os.PathLike | None = None) -> Path:
    """The weights file: given, cached, or downloaded; a clear error when none of these works."""
    if weights_path is not None:
        path = Path(weights_path).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"metrics.inception_weights={path} does not exist")
        return path
    path = inception_weights_path()
    if path.is_file():
        return path
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(INCEPTION_URL, str(path), progress=False)
    except Exception as err:  # no network, proxy, DNS, HTTP error: all end the same way
        raise RuntimeError(
            f"The Inception-v3 weights for FID/IS/KID are not cached at {path} and could not be downloaded "
            f"from {INCEPTION_URL} ({type(err).__name__}: {err}). Download that file on a machine with "
            f"internet access and copy it to {path} (the directory follows $TORCH_HOME), or point "
            "metrics.inception_weights to it, or use metrics=classifier for offline metrics."
        ) from err
    return path


class InceptionExtractor(nn.Module):
    """torch-fidelity's ``inception-v3-compat``: ``2048`` pool features and ``logits_unbiased``, one pass."""

    name = "inception-v3-compat"
    resize = INCEPTION_RESIZE

    def __init__(self, weights_path: str | os.PathLike | None = None) -> None:
        super().__init__()
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

        path = resolve_inception_weights(weights_path)
        with torch.random.fork_rng(devices=[]):  # its random init (overwritten) must not use the global RNG
            self.net = FeatureExtractorInceptionV3(
                self.name, ["2048", "logits_unbiased"], feature_extractor_weights_path=str(path)
            )
        self.weights_sha256 = file_sha256(path)
        self.feature_dim, self.num_logits = 2048, 1008
        self.info = {"feature_layer": "2048", "logits_layer": "logits_unbiased"}

    @torch.no_grad()
    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        features, logits = self.net(images)  # (B, 2048), (B, 1008)
        return features, logits


# ---------------------------------------------------------------- classifier features (offline)


@dataclass(frozen=True)
class ClassifierSettings:
    """How the feature classifier is trained; every field is part of its cache key."""

    steps: int = 500  # about one MNIST epoch: 97-98 % held-out accuracy
    batch_size: int = 128
    lr: float = 2e-3
    width: int = 16
    feature_dim: int = 128
    seed: int = 0


class ClassifierNet(nn.Module):
    """LeNet-style CNN (LeCun et al. 1998): two conv-pool stages, a 4x4 grid, features, a class head."""

    def __init__(self, num_classes: int, width: int = 16, feature_dim: int = 128) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, width, 5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(2),  # (B, w, H/2, W/2)
            nn.Conv2d(width, 2 * width, 5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(2),  # (B, 2w, H/4, W/4)
            nn.AdaptiveAvgPool2d(4),  # (B, 2w, 4, 4) for any input size
            nn.Flatten(),
            nn.Linear(32 * width, feature_dim),
            nn.ReLU(),
        )
        self.head = nn.Linear(feature_dim, num_classes)

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """uint8 (B, 3, H, W) -> features (B, feature_dim), logits (B, num_classes)."""
        features = self.body(images.float() / 127.5 - 1.0)
        return features, self.head(features)


def _batches(dataset: Dataset, batch_size: int, shuffle: torch.Generator | None = None) -> DataLoader:
    # Always a private generator: a DataLoader without one draws its base seed from the global RNG.
    generator = shuffle if shuffle is not None else torch.Generator().manual_seed(0)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle is not None, generator=generator)


@torch.no_grad()
def classifier_accuracy(net: nn.Module, dataset: Dataset, device: torch.device) -> float:
    was_training = net.training
    net.eval()
    correct = total = 0
    for images, labels in _batches(dataset, 512):
        logits = net(to_uint8_rgb(images.to(device)))[1]
        correct += (logits.argmax(1).cpu() == labels).sum().item()
        total += len(labels)
    net.train(was_training)
    return correct / total


def train_classifier(
    train_set: Dataset, val_set: Dataset, num_classes: int, settings: ClassifierSettings, device: torch.device
) -> tuple[ClassifierNet, float]:
    """Adam on cross-entropy; deterministic given ``settings.seed``; the global RNG is left untouched."""
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), torch.enable_grad():
        torch.manual_seed(settings.seed)
        net = ClassifierNet(num_classes, settings.width, settings.feature_dim).to(device)
        opt = torch.optim.Adam(net.parameters(), lr=settings.lr)
        order = torch.Generator().manual_seed(settings.seed)
        step = 0
        while step < settings.steps:  # epochs of shuffled batches until `steps` updates
            for images, labels in _batches(train_set, settings.batch_size, order):
                logits = net(to_uint8_rgb(images.to(device)))[1]
                loss = F.cross_entropy(logits, labels.to(device))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                step += 1
                if step == settings.steps:
                    break
    return net.eval().requires_grad_(False), classifier_accuracy(net, val_set, device)


class ClassifierExtractor(nn.Module):
    """A trained ``ClassifierNet`` used as feature extractor (images at the dataset's own resolution)."""

    name = "classifier"
    resize = "none"

    def __init__(self, net: ClassifierNet, *, accuracy: float, image_size: int, settings: dict) -> None:
        super().__init__()
        self.net = net.eval().requires_grad_(False)
        self.accuracy = accuracy
        self.image_size = image_size
        self.weights_sha256 = tensors_sha256(net.state_dict())
        self.feature_dim, self.num_logits = net.head.in_features, net.head.out_features
        self.info = {
            "feature_layer": "penultimate",
            "logits_layer": "logits",
            "classifier_val_accuracy": accuracy,
        }
        self.info.update({f"classifier_{k}": v for k, v in settings.items()})

    @torch.no_grad()
    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        if images.shape[-1] != self.image_size or images.shape[-2] != self.image_size:
            raise ValueError(
                f"the classifier extractor was trained on {self.image_size}x{self.image_size} images, "
                f"got {tuple(images.shape[-2:])}"
            )
        return self.net(images)


def load_or_train_classifier(
    train_set: Dataset,
    val_set: Dataset,
    *,
    num_classes: int,
    image_size: int,
    dataset_key: str,
    settings: ClassifierSettings,
    device: torch.device,
    cache_dir: str | os.PathLike | None = None,
) -> ClassifierExtractor:
    """Train once per (dataset, settings), cache under ``<cache>/classifier/``; rank 0 trains under DDP."""
    if num_classes < 2:
        raise ValueError(
            f"metrics.features=classifier needs class labels, but dataset '{dataset_key}' has "
            f"num_classes={num_classes}; use metrics=inception for unlabelled data"
        )
    key = {"dataset": dataset_key, "num_classes": num_classes, "image_size": image_size, **asdict(settings)}
    # Bump "version" whenever ClassifierNet or its training changes: old files must not be reused.
    path = cache_root(cache_dir) / "classifier" / f"{digest({**key, 'version': 1})}.pt"
    if not path.is_file() and dist_info()[0] == 0:
        net, accuracy = train_classifier(train_set, val_set, num_classes, settings, device)
        state = {k: v.cpu() for k, v in net.state_dict().items()}
        save_torch({"state_dict": state, "accuracy": accuracy, "key": key}, path)
    barrier()
    saved = torch.load(path, map_location="cpu", weights_only=True)
    with torch.device("meta"):  # no random init (it would draw from the global RNG), weights come next
        net = ClassifierNet(num_classes, settings.width, settings.feature_dim)
    net.load_state_dict(saved["state_dict"], assign=True)
    extractor = ClassifierExtractor(net, accuracy=saved["accuracy"], image_size=image_size, settings=asdict(settings))
    return extractor.to(device)


def build_extractor(
    features: str,
    datamodule,
    *,
    device: torch.device,
    inception_weights: str | None = None,
    classifier: ClassifierSettings | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> nn.Module:
    """The extractor named by ``metrics.features`` for an image data module (see ``ImageMetrics``)."""
    if features == "inception":
        # Every process resolves the weights itself: an offline error is raised everywhere, no rank hangs.
        return InceptionExtractor(inception_weights).to(device)
    if features == "classifier":
        shape = datamodule.model_kwargs()
        train = datamodule.reference_loader("train", 256).dataset
        val = datamodule.reference_loader("val", 256).dataset
        return load_or_train_classifier(
            train,
            val,
            num_classes=int(shape["num_classes"]),
            image_size=int(shape["image_size"]),
            dataset_key=datamodule.dataset_key,
            settings=classifier or ClassifierSettings(),
            device=device,
            cache_dir=cache_dir,
        )
    raise ValueError(f"metrics.features must be 'inception' or 'classifier', got {features!r}")


def register_with_torch_fidelity(extractor: nn.Module, name: str) -> str:
    """Register ``extractor`` as torch-fidelity feature extractor ``name`` (features: 'features', 'logits').

    Lets ``torch_fidelity.calculate_metrics(feature_extractor=name, ...)`` reproduce our numbers.
    """
    from torch_fidelity.feature_extractor_base import FeatureExtractorBase
    from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY, register_feature_extractor

    class _Registered(FeatureExtractorBase):
        def __init__(self, name: str, features_list: list[str], **kwargs) -> None:
            super().__init__(name, features_list)
            self.inner = extractor

        @staticmethod
        def get_provided_features_list() -> tuple[str, ...]:
            return "features", "logits"

        @staticmethod
        def get_default_feature_layer_for_metric(metric: str) -> str:
            return "logits" if metric == "isc" else "features"

        @staticmethod
        def can_be_compiled() -> bool:
            return False

        def forward(self, images: Tensor) -> tuple[Tensor, ...]:
            out = dict(zip(("features", "logits"), self.inner(images)))
            return tuple(out[k] for k in self.features_list)

    FEATURE_EXTRACTORS_REGISTRY.pop(name, None)  # re-registering a name replaces the old extractor
    register_feature_extractor(name, _Registered)
    return name


class Uint8Images(Dataset):
    """Images in [-1, 1] as torch-fidelity reads them: uint8 (3, H, W), quantised as our own inputs are."""

    def __init__(self, images: Tensor) -> None:
        self.images = to_uint8_rgb(images)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> Tensor:
        return self.images[i]
