"""Image-to-image data (the img2img family's): paired A -> B, and unpaired domains A and B.

Batches are dicts (docs/CONTRACT.md): ``"source"`` and ``"target"`` images ``float32 (B, C, H, W)`` in [-1, 1],
``"source_label"`` and ``"target_label"`` ``int64 (B,)`` (-1 unknown), for content-preservation metrics.

- ``PairedImageDataModule``: aligned pairs, from
  ``derived`` (any image data set of the project, ``images:`` its config, and a named transform of
  ``derive.py`` that makes the input from each image: ``downscale:4``, ``edges``, ``grayscale``, ``mask``),
  ``folders`` (``path/A`` and ``path/B`` with matching file names, e.g. facades, edges2shoes, DIV2K crops),
  ``parquet``, ``local`` (a ``save_to_disk`` folder or a CSV of image paths: ``local.py``) or ``hub`` (two image
  columns).
- ``UnpairedImageDataModule``: two image data sets (``domain_a``, ``domain_b``: image data configs), sampled
  independently each epoch (CycleGAN); ``paired = False``.

Images are decoded once in ``setup`` by ``module.py`` and kept as uint8 tensors. Training loaders resume exactly
mid-epoch and validation/evaluation loaders are unpadded under DDP (``loaders.py``). The target domain is the
"real set" of the metrics: ``reference_loader``/``dataset_key`` describe it, as for an unconditional data module.
"""

from __future__ import annotations

import datasets
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader, Dataset, default_collate

from gen_lightning.data import sources
from gen_lightning.data.base import DataModule, Source, digest
from gen_lightning.data.images import local
from gen_lightning.data.images.derive import apply_transform, resize_all
from gen_lightning.data.images.folders import load_paired_folders
from gen_lightning.data.images.module import ImageDataModule, ImageTensorDataset, decode_images
from gen_lightning.data.loaders import EpochSampler, evaluation_loader
from gen_lightning.data.sources import DataSourceError

PAIRED_SOURCES = ("derived", "folders", "parquet", "local", "hub")


def _scaled(images: torch.Tensor) -> torch.Tensor:
    return images.float().div(127.5).sub(1.0)


class PairDataset(Dataset):
    """uint8 sources ``(N, C_s, h, w)`` and targets ``(N, C, H, W)`` with labels; items are batch dicts.

    Item ``i`` pairs source ``i`` with target ``i`` (paired data) or ``i mod M`` (``cycle_targets``: unpaired
    validation, M targets); item ``(i, j)`` pairs source ``i`` with target ``j`` (unpaired training draws)."""

    def __init__(self, source: ImageTensorDataset, target: ImageTensorDataset, cycle_targets: bool = False):
        if not cycle_targets and len(source) != len(target):
            raise DataSourceError(f"{len(source)} inputs but {len(target)} targets: pairs must match one to one")
        self.source, self.target, self.cycle_targets = source, target, cycle_targets

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index) -> dict:
        i, j = index if isinstance(index, tuple) else (index, index % len(self.target))
        return {
            "source": _scaled(self.source.images[i]),
            "target": _scaled(self.target.images[j]),
            "source_label": self.source.labels[i],
            "target_label": self.target.labels[j],
        }


class PairSampler(EpochSampler):
    """Independent draws of the two domains: position ``k`` of an epoch pairs ``perm_a[k]`` with ``perm_b[k]``,
    each a fresh permutation per ``(seed, epoch)`` repeated to the longer domain's length ``max(N_a, N_b)``."""

    def __init__(self, len_a: int, len_b: int, seed: int) -> None:
        super().__init__(max(len_a, len_b), shuffle=True, seed=seed, pad=True)
        self.len_a, self.len_b = len_a, len_b

    def _tiled(self, n: int, g: torch.Generator) -> list[int]:
        parts = [torch.randperm(n, generator=g) for _ in range(-(-self.num_items // n))]
        return torch.cat(parts)[: self.num_items].tolist()

    def _shard(self) -> list[tuple[int, int]]:
        g = torch.Generator().manual_seed(self.seed + 7 + 1_000_003 * self.epoch)
        a, b = self._tiled(self.len_a, g), self._tiled(self.len_b, g)
        return [(a[k], b[k]) for k in super()._shard()]


def image_data(config) -> ImageDataModule:
    """An image data module from its config: a mapping with ``_target_``, or ``ImageDataModule`` arguments."""
    if isinstance(config, DictConfig):
        config = OmegaConf.to_container(config, resolve=True)
    if not isinstance(config, dict):
        raise ValueError(f"an image data config must be a mapping (e.g. data/mnist.yaml's keys), got {config!r}")
    module = instantiate(config) if "_target_" in config else ImageDataModule(**config)
    module.prepare_data()
    module.setup("fit")
    return module


class ImagePairData(DataModule):
    """What paired and unpaired data share: shapes, loaders and the target domain for the metrics."""

    task = "conditional"
    source_modality = "image"
    modality = "image"
    paired = True
    LOCAL = "a folder holding A/ (inputs) and B/ (targets) with matching file names, or parquet files"

    def __init__(self) -> None:
        super().__init__()
        self.splits: dict[str, PairDataset] = {}
        self.num_classes = 0

    def _shapes(self) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
        pairs = self.splits["train"]
        return tuple(pairs.source.images.shape[1:]), tuple(pairs.target.images.shape[1:])

    def model_kwargs(self) -> dict:
        (cs, hs, ws), (c, h, w) = self._shapes()
        if hs != ws or h != w:
            raise DataSourceError(f"inputs are {hs}x{ws}, targets {h}x{w}: models need square images (set the sizes)")
        return {"channels": c, "image_size": h, "num_classes": self.num_classes, "source_channels": cs,
                "source_image_size": hs}  # fmt: skip

    def _finish_setup(self) -> None:
        labels = self.splits["train"].target.labels
        self.num_classes = int(labels.max()) + 1 if bool((labels >= 0).all()) else 0

    def train_dataloader(self) -> DataLoader:
        return self.train_loader(self.splits["train"])

    def val_dataloader(self) -> DataLoader:
        return self.eval_loader(self._split("val"))

    def _split(self, split: str) -> PairDataset:
        if split not in self.splits:
            raise ValueError(f"unknown split '{split}'; choose from {sorted(self.splits)}")
        return self.splits[split]

    def evaluation_loader(self, split: str, num_items: int | None, batch_size: int) -> DataLoader:
        """The first ``num_items`` pairs of ``split`` in order (all when None), batch-sharded over processes."""
        return evaluation_loader(self._split(split), num_items, batch_size, default_collate)

    def reference_loader(self, split: str, batch_size: int) -> DataLoader:
        """The target domain's images and labels of ``split`` ``(image, label)``: the real set of the metrics."""
        return self.eval_loader(self._split(split).target, batch_size)


class PairedImageDataModule(ImagePairData):
    """Aligned (input, target) pairs from one of ``PAIRED_SOURCES``; see the file docstring."""

    def __init__(
        self,
        source: str = "derived",
        images: dict | None = None,
        transform: str | None = "downscale:4",
        path: str | None = None,
        name: str | None = None,
        hub_name: str | None = None,
        source_column: str = "source",
        target_column: str = "target",
        label_column: str | None = None,
        train_split: str = "train",
        val_split: str | None = None,
        val_fraction: float = 0.15,
        split_seed: int = 0,
        channels: int = 3,
        source_channels: int | None = None,
        image_size: int | None = None,
        source_image_size: int | None = None,
        batch_size: int = 16,
        eval_batch_size: int = 256,
        num_workers: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if source not in PAIRED_SOURCES:
            raise ValueError(f"data.source must be one of {PAIRED_SOURCES}, got '{source}'")
        if source == "derived" and (not images or not transform):
            raise ValueError("data.source=derived needs data.images (an image data config) and data.transform")
        if source in ("folders", "parquet", "local") and not path:
            raise ValueError(f"data.source={source} needs data.path")
        if name and hub_name and name != hub_name:
            raise ValueError(f"data.name={name!r} and data.hub_name={hub_name!r} differ: give one (hub_name)")
        if source == "hub" and not (name or hub_name):
            raise ValueError("data.source=hub needs data.name or data.hub_name (a hub dataset with two image columns)")
        if batch_size <= 0 or not 0.0 < val_fraction < 1.0:
            raise ValueError("data.batch_size must be positive and data.val_fraction in (0, 1)")
        if isinstance(images, DictConfig):
            images = OmegaConf.to_container(images, resolve=True)
        self.save_hyperparameters(logger=False)
        self.inner: ImageDataModule | None = None

    # ---- building the pairs --------------------------------------------------------------------------------
    @property
    def source(self) -> Source:
        hp = self.hparams
        if hp.source == "derived":
            return Source("embedded", f"pairs derived by {hp.transform}", "source")
        if hp.source == "hub":
            return Source("hub", hp.get("hub_name") or hp.name, "hub_name")
        return Source("path", hp.path, "path")

    def hub_splits(self) -> set[str]:
        return {self.hparams.train_split, self.hparams.val_split} - {None}

    def _derived(self) -> dict[str, PairDataset]:
        hp = self.hparams
        self.inner = image_data(hp.images)
        out = {}
        for index, split in enumerate(("train", "val")):
            target = self.inner.splits[split]
            inputs = apply_transform(hp.transform, target.images, seed=hp.split_seed + index)
            if hp.source_image_size:
                inputs = resize_all(inputs, hp.source_image_size)
            out[split] = PairDataset(ImageTensorDataset(inputs, target.labels), target)
        return out

    def _table(self, split: str) -> datasets.Dataset:
        hp = self.hparams
        if hp.source == "folders":
            return load_paired_folders(f"{hp.path}/{split}" if hp.val_split else hp.path)
        if hp.source == "parquet":
            return sources.load_parquet(f"{hp.path}/{split}" if hp.val_split else hp.path)
        if hp.source == "local":
            return local.load_local(hp.path, split, hp.val_split)
        return self.load_hub(split)

    def _decode(self, table: datasets.Dataset) -> PairDataset:
        hp = self.hparams
        sides = []
        columns = ("source", "target") if hp.source == "folders" else (hp.source_column, hp.target_column)
        shapes = ((hp.source_channels or hp.channels, hp.source_image_size), (hp.channels, hp.image_size))
        for column, (channels, size) in zip(columns, shapes):
            try:
                images, labels = decode_images(table, column, hp.label_column, channels, size, 0)
            except RuntimeError as err:  # torch.stack of images of different sizes
                raise DataSourceError(
                    f"the images of column '{column}' differ in size ({err}); set data.image_size / "
                    "data.source_image_size to resize them"
                ) from err
            sides.append(ImageTensorDataset(images, labels))
        return PairDataset(*sides)

    def _held_out(self, pairs: PairDataset) -> dict[str, PairDataset]:
        hp, n = self.hparams, len(pairs)
        order = torch.randperm(n, generator=torch.Generator().manual_seed(hp.split_seed))
        n_val = max(1, int(round(hp.val_fraction * n)))
        if n_val >= n:
            raise DataSourceError(f"only {n} pairs: too few to hold out a validation split")
        out = {}
        for split, index in (("val", order[:n_val].sort().values), ("train", order[n_val:].sort().values)):
            sides = [ImageTensorDataset(d.images[index], d.labels[index]) for d in (pairs.source, pairs.target)]
            out[split] = PairDataset(*sides)
        return out

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        hp = self.hparams
        if hp.source == "derived":
            self.splits = self._derived()
        elif hp.val_split is not None:
            self.splits = {"train": self._decode(self._table(hp.train_split)),
                           "val": self._decode(self._table(hp.val_split))}  # fmt: skip
        else:
            self.splits = self._held_out(self._decode(self._table(hp.train_split)))
        self._finish_setup()

    @property
    def dataset_key(self) -> str:
        """The target domain's key: derived pairs share the underlying image data's (and its cached classifier)."""
        if self.inner is not None:
            return self.inner.dataset_key
        # As before hub_name existed: the target side's settings, the hub name keyed as `name`.
        hp = {k: v for k, v in self.data_params().items()
              if k not in ("source_column", "source_channels", "source_image_size", "hub_name")}  # fmt: skip
        hp["name"] = hp.get("name") or self.hparams.get("hub_name")
        label = str(hp.get("name") or hp["source"]).replace("/", "_")
        return f"{label}-target-{self._shapes()[1][1]}px-{digest(hp)}"


class UnpairedImageDataModule(ImagePairData):
    """Two image data sets, A (inputs) and B (targets), drawn independently; see the file docstring."""

    paired = False

    def __init__(
        self,
        domain_a: dict,
        domain_b: dict,
        batch_size: int = 1,
        eval_batch_size: int = 256,
        num_workers: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if batch_size <= 0:
            raise ValueError(f"data.batch_size must be positive, got {batch_size}")
        domain_a, domain_b = (OmegaConf.to_container(d, resolve=True) if isinstance(d, DictConfig) else d
                              for d in (domain_a, domain_b))  # fmt: skip
        self.save_hyperparameters(logger=False)
        self.domains: dict[str, ImageDataModule] = {}

    @property
    def source(self) -> Source:
        return Source("embedded", "two image data sets (domain_a, domain_b)", "domain_a")

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        self.domains = {"a": image_data(self.hparams.domain_a), "b": image_data(self.hparams.domain_b)}
        a, b = self.domains["a"].splits, self.domains["b"].splits
        self.splits = {split: PairDataset(a[split], b[split], cycle_targets=True) for split in ("train", "val")}
        self._finish_setup()

    def train_dataloader(self) -> DataLoader:
        hp, pairs = self.hparams, self.splits["train"]
        sampler = PairSampler(len(pairs.source), len(pairs.target), hp.seed)
        return DataLoader(
            pairs,
            batch_size=hp.batch_size,
            sampler=sampler,
            drop_last=len(sampler) >= hp.batch_size,
            num_workers=hp.num_workers,
            persistent_workers=hp.num_workers > 0,
            generator=torch.Generator().manual_seed(hp.seed),  # creating an iterator draws nothing global
        )

    @property
    def dataset_key(self) -> str:
        return self.domains["b"].dataset_key
