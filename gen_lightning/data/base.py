"""The base of every data module: its source, its loaders, the shape facts it gives the model, its dataset key.

A data module says what it holds (``task``, ``source_modality``, ``modality``: docs/CONTRACT.md), how it reads its
source and what its items are; ``DataModule`` owns what every one of them needs the same way:

- **the source**, in one vocabulary of config keys: ``path`` (a local file or folder), ``hub_name`` (a Hugging Face
  dataset; ``hub_config``, ``hub_split``, ``hub_kwargs``), ``embedded`` (data that ships with an installed package;
  the default when nothing else is given). ``source`` says which one a module reads (a ``Source``: kind, value and
  the key that named it); ``local_path()`` checks a local path and ``load_hub()`` loads a hub split, each with the
  one error style of ``sources.py`` (``data.KEY=VALUE``, the problem, the fix). Older keys stay accepted where a
  module had its own (images: ``source``/``name``; music: ``corpus``).
- **the loaders**: ``train_loader``/``eval_loader`` build the resumable, DDP-sharded loaders of ``loaders.py`` with the
  module's ``batch_size``, ``eval_batch_size``, ``num_workers`` and ``seed``.
- **``model_kwargs()``**: the constructor arguments a model takes from the data (shape facts: channels, image size,
  a tokenizer's description); available after ``setup``.
- **``dataset_key``**: names the data and its preprocessing (the cache key of metric statistics and extractors).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import lightning as L
from torch.utils.data import DataLoader, Dataset

from gen_lightning.data import loaders, sources
from gen_lightning.data.sources import DataSourceError

KINDS = ("path", "hub", "embedded")
KEYS = {"path": "path", "hub": "hub_name", "embedded": "embedded"}  # the config key of each kind of source


@dataclass(frozen=True)
class Source:
    """Where a data module's data comes from."""

    kind: str  # "path" | "hub" | "embedded"
    value: str  # the local path, the hub dataset's name, the embedded data's name
    key: str  # the config key that named it (messages say data.KEY=VALUE)


def pick_source(
    path: str | None = None,
    hub_name: str | None = None,
    embedded: str | None = None,
    *,
    default: str | None = None,
    embedded_choices: tuple[str, ...] = (),
    local: str = "a local file or folder",
) -> Source:
    """The one source given among ``path``, ``hub_name`` and ``embedded``, else the embedded ``default``.

    Two given, or none without a default, is an error listing the keys and what each takes."""
    given = [
        Source(kind, str(value), KEYS[kind])
        for kind, value in zip(KINDS, (path, hub_name, embedded))
        if value is not None
    ]
    options = f"data.path ({local}), data.hub_name (a Hugging Face dataset)"
    if embedded_choices:
        options += f" or data.embedded (one of {', '.join(embedded_choices)})"
    if len(given) > 1:
        a, b = given[:2]
        raise DataSourceError(
            f"give one source, not both data.{a.key}={a.value!r} and data.{b.key}={b.value!r}: {options}"
        )
    if not given and default is None:
        raise DataSourceError(f"give one source: {options}")
    source = given[0] if given else Source("embedded", default, "embedded")
    if source.kind == "embedded" and embedded_choices and source.value not in embedded_choices:
        raise DataSourceError(
            f"data.{source.key}={source.value!r} is not embedded data; choose one of {', '.join(embedded_choices)}"
        )
    return source


def digest(params: dict) -> str:
    """A short, stable hash of a module's data settings (part of ``dataset_key``)."""
    return hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()[:12]


class Loaders:
    """The loaders of a data module whose hyperparameters hold ``batch_size``, ``eval_batch_size``, ``num_workers``
    and ``seed``: for ``DataModule`` and for the data modules that resolve their source their own way."""

    def train_loader(self, dataset: Dataset, collate_fn=None) -> DataLoader:
        """Shuffled, resumable, DDP-sharded batches of ``batch_size`` (``loaders.train_loader``)."""
        h = self.hparams
        return loaders.train_loader(
            dataset, h.batch_size, seed=h.seed, num_workers=h.num_workers, collate_fn=collate_fn
        )

    def eval_loader(self, dataset: Dataset, batch_size: int | None = None, collate_fn=None) -> DataLoader:
        """Ordered, unpadded batches (default: ``eval_batch_size``, else ``batch_size``; ``loaders.eval_loader``)."""
        h = self.hparams
        size = batch_size or h.get("eval_batch_size") or h.batch_size
        return loaders.eval_loader(dataset, size, num_workers=h.num_workers, collate_fn=collate_fn)


class DataModule(Loaders, L.LightningDataModule):
    """A ``LightningDataModule`` that reads one source (see the file docstring)."""

    task: str  # docs/CONTRACT.md: "unconditional" | "conditional" | "prediction"
    source_modality: str | None = None
    modality: str
    EMBEDDED: dict[str, str] = {}  # embedded data: name -> how messages call it (the first is the default)
    LOCAL = "a local file or folder"  # what data.path must be (said by the missing-path error)
    LOCAL_COPY = sources.LOCAL_COPY  # how to use the data without the hub (said by the hub error)
    RUNTIME_KEYS = ("batch_size", "eval_batch_size", "num_workers", "seed")  # settings that leave the data alike

    # ---- the source -----------------------------------------------------------------------------------------
    @property
    def source(self) -> Source:
        """The source of the ``path`` / ``hub_name`` / ``embedded`` keys (modules with older keys override it)."""
        h = self.hparams
        names = tuple(self.EMBEDDED)
        return pick_source(
            h.get("path"),
            h.get("hub_name"),
            h.get("embedded"),
            default=names[0] if names else None,
            embedded_choices=names,
            local=self.LOCAL,
        )

    def check_source(self) -> Source:
        """The source, checked now (one given, a known embedded name): ``__init__`` calls it to fail before setup."""
        return self.source

    @property
    def source_name(self) -> str:
        """The source as messages name it: the path, ``hub dataset 'NAME'``, or the embedded data's description."""
        source = self.source
        if source.kind == "path":
            return source.value
        if source.kind == "hub":
            return f"hub dataset {source.value!r}"
        return self.EMBEDDED.get(source.value, f"the embedded {source.value}")

    def local_path(self) -> Path:
        """The local source, which must exist (else the one missing-path error, naming the key and the path)."""
        source = self.source
        return sources.local_path(source.value, self.LOCAL, source.key)

    def load_hub(self, split: str | None = None):
        """A split (default ``hub_split``) of the hub source, with ``hub_config`` and ``hub_kwargs``."""
        h = self.hparams
        return sources.load_hub(
            self.source.value,
            split or h.get("hub_split") or "train",
            h.get("hub_config"),
            local_copy=self.LOCAL_COPY,
            **dict(h.get("hub_kwargs") or {}),
        )

    def hub_splits(self) -> set[str]:
        """The hub splits ``setup`` reads (``prepare_data`` downloads them)."""
        return {self.hparams.get("hub_split") or "train"}

    def prepare_data(self) -> None:
        # One process per node: download (and cache) hub data before every process reads it in setup.
        if self.source.kind == "hub":
            for split in sorted(self.hub_splits()):
                self.load_hub(split)

    # ---- what models and metrics take from the data ------------------------------------------------------------
    def model_kwargs(self) -> dict:
        """Constructor arguments a model takes from the data after ``setup`` (shape facts only: docs/CONTRACT.md)."""
        raise NotImplementedError(f"{type(self).__name__} must say what a model takes from its data")

    def data_params(self) -> dict:
        """The settings that decide the data and its preprocessing (the hyperparameters but ``RUNTIME_KEYS``)."""
        return {k: v for k, v in dict(self.hparams).items() if k not in self.RUNTIME_KEYS}

    @property
    def dataset_key(self) -> str:
        """Identifies the data and its preprocessing: ``SOURCE-DIGEST`` (a cache key for metrics and extractors)."""
        label = Path(self.source.value).name or self.source.value
        return f"{label.replace('/', '_')}-{digest(self.data_params())}"
