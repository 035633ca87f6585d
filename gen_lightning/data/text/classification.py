"""Text classification data (the prediction task, docs/CONTRACT.md): labelled texts, split, tokenized, padded.

Sources (``data/base.py``'s keys; readers in ``labelled.py``): a local ``path`` (class files, class folders, a CSV /
JSON-lines table), a Hugging Face dataset (``hub_name`` with ``text_column`` / ``label_column``, e.g.
``stanfordnlp/sst2`` sentence/label, ``stanfordnlp/imdb`` text/label, ``fancyzhx/ag_news`` text/label), or, with
neither (``embedded: essen_regions``), an embedded default that ships inside music21: Essen folk songs labelled by
their region of origin (China, Lothringen, Luxemburg, Deutschland; the ``O:`` field), each text a tune in ABC
notation with only meter, unit length and key as headers (gen_lightning/music/abc.py), so the label is read from the
music, not from a title.

Splits: with ``num_folds = K > 0``, stratified K-fold cross-validation (the protocol of the classic sentence
classification results): fold ``fold`` is the test split, and ``val_fraction`` of the other folds (stratified)
is the validation split that picks the checkpoint. With ``num_folds = 0``: stratified ``test_fraction`` and
``val_fraction`` hold-outs, or the hub's own ``hub_test_split``. The splits depend on ``split_seed`` only.

Training batches are dicts ``{"source": (B, S) int64 ids padded with the tokenizer's pad id (0 where it has
none), "source_mask": (B, S) bool, True at real tokens, "target": (B,) int64}``, drawn by the resumable sampler
of gen_lightning/data/loaders.py; ``evaluation_loader`` yields raw texts, unpadded across DDP processes.
"""

from __future__ import annotations

import torch
from omegaconf import OmegaConf
from torch.utils.data import DataLoader, Dataset

from gen_lightning.data.base import DataModule
from gen_lightning.data.loaders import evaluation_loader
from gen_lightning.data.sources import DataSourceError
from gen_lightning.data.text import labelled as lt
from gen_lightning.data.text.tokenizers import build_tokenizer

SPLITS = ("train", "val", "test")


class Examples(Dataset):
    """Items ``(ids (S,) int64, label)`` or, raw, ``(text, label)``."""

    def __init__(self, items: list, labels: list[int]) -> None:
        self.items, self.labels = items, labels

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int):
        return self.items[index], self.labels[index]


def pad_batch(items: list[tuple[torch.Tensor, int]], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded ids, their mask and the labels of a list of ``(ids, label)``."""
    length = max(len(ids) for ids, _ in items)
    source = torch.full((len(items), length), pad_id, dtype=torch.long)
    mask = torch.zeros(len(items), length, dtype=torch.bool)
    for row, (ids, _) in enumerate(items):
        source[row, : len(ids)] = ids
        mask[row, : len(ids)] = True
    return {"source": source, "source_mask": mask, "target": torch.tensor([y for _, y in items], dtype=torch.long)}


def raw_batch(items: list[tuple[str, int]]) -> dict:
    return {"source": [text for text, _ in items], "target": torch.tensor([y for _, y in items], dtype=torch.long)}


class Padder:
    """A picklable collate function (DataLoader workers) padding with ``pad_id``."""

    def __init__(self, pad_id: int) -> None:
        self.pad_id = pad_id

    def __call__(self, items):
        return pad_batch(items, self.pad_id)


class TextClassificationDataModule(DataModule):
    """Labelled texts, tokenized and padded, in stratified (or cross-validation) splits; see the file docstring."""

    task, source_modality, modality = "prediction", "text", "label"
    EMBEDDED = {"essen_regions": "the Essen folk songs"}
    LOCAL = lt.LOCAL
    LOCAL_COPY = "save the texts and labels as a CSV / JSON-lines file and pass data.path=FILE"

    def __init__(
        self,
        path: str | None = None,
        format: str = "auto",
        text_column: str = "text",
        label_column: str = "label",
        encoding: str = "utf-8",
        hub_name: str | None = None,
        hub_config: str | None = None,
        hub_split: str = "train",
        hub_test_split: str | None = None,
        hub_kwargs: dict | None = None,
        embedded: str | None = None,
        regions: list[str] | None = None,
        tokenizer: str | dict = "char",
        vocab_size: int = 8000,
        pre_tokenizer: str = "byte_level",
        max_length: int = 256,
        batch_size: int = 64,
        num_folds: int = 0,
        fold: int = 0,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        split_seed: int = 0,
        num_workers: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if num_folds == 1 or num_folds < 0 or (num_folds and not 0 <= fold < num_folds):
            raise ValueError(f"need num_folds >= 2 and 0 <= fold < num_folds (or num_folds=0), got {num_folds}, {fold}")
        if not 0.0 < val_fraction < 1.0 or not 0.0 <= test_fraction < 1.0:
            raise ValueError(
                f"need 0 < val_fraction < 1 and 0 <= test_fraction < 1, got {val_fraction}, {test_fraction}"
            )
        if max_length < 1 or batch_size < 1:
            raise ValueError(f"max_length and batch_size must be positive, got {max_length}, {batch_size}")
        # Plain values (Hydra passes lists and mappings as ListConfig / DictConfig): checkpoints load weights_only.
        regions = None if regions is None else [str(r) for r in regions]
        hub_kwargs = None if hub_kwargs is None else OmegaConf.to_container(OmegaConf.create(dict(hub_kwargs)))
        tokenizer = tokenizer if isinstance(tokenizer, str) else dict(tokenizer)
        self.save_hyperparameters(logger=False)
        self.check_source()
        self.tokenizer = None
        self.class_names: list[str] = []
        self.texts: dict[str, list[str]] = {}
        self.labels: dict[str, list[int]] = {}
        self.encoded: dict[str, list[torch.Tensor]] = {}

    def _read(self, split: str | None = None) -> tuple[list[str], list[str]]:
        h, kind = self.hparams, self.source.kind
        if kind == "path":
            return lt.read_path(h.path, h.format, h.text_column, h.label_column, h.encoding)
        if kind == "hub":
            return lt.hub_examples(self.load_hub(split), h.hub_name, h.text_column, h.label_column)
        from gen_lightning.music.abc import ESSEN_REGIONS, essen_regions

        return essen_regions(tuple(h.regions or ESSEN_REGIONS))

    def _split_indices(self, labels: list[int], has_test: bool) -> dict[str, list[int]]:
        h = self.hparams
        everything = list(range(len(labels)))
        if h.num_folds:
            fold = lt.stratified_folds(labels, h.num_folds, h.split_seed)
            test = lt.shuffled([i for i in everything if fold[i] == h.fold], h.split_seed)
            rest = [i for i in everything if fold[i] != h.fold]
        elif has_test:
            rest, test = everything, []
        else:
            rest, test = lt.stratified_split(everything, labels, h.test_fraction, h.split_seed)
        train, val = lt.stratified_split(rest, labels, h.val_fraction, h.split_seed + 1)
        return {"train": train, "val": val, "test": test}

    def setup(self, stage: str | None = None) -> None:
        if self.tokenizer is not None:
            return
        h = self.hparams
        texts, names = self._read()
        hub_test = self.source.kind == "hub" and h.hub_test_split is not None and not h.num_folds
        test_texts, test_names = self._read(h.hub_test_split) if hub_test else ([], [])
        self.class_names = lt.check_classes(names, self.source_name)
        index = {name: i for i, name in enumerate(self.class_names)}
        unknown = sorted(set(test_names) - set(index))
        if unknown:
            raise DataSourceError(f"the test split of {self.source_name} has labels {unknown} not in training")
        labels = [index[n] for n in names]
        splits = self._split_indices(labels, hub_test)
        for split, members in splits.items():
            self.texts[split] = [texts[i] for i in members]
            self.labels[split] = [labels[i] for i in members]
        if hub_test:
            self.texts["test"], self.labels["test"] = test_texts, [index[n] for n in test_names]
        for split in ("train", "val"):
            if not self.texts[split]:
                raise DataSourceError(f"the {split} split of {self.source_name} is empty: more texts are needed")
        # A character vocabulary has no unknown symbol: it is every character of every text (no label is read).
        # A subword model is trained on the training split only.
        corpus = texts + test_texts if h.tokenizer == "char" else self.texts["train"]
        self.tokenizer = build_tokenizer(h.tokenizer, corpus, h.vocab_size, h.pre_tokenizer)
        for split, split_texts in self.texts.items():
            self.encoded[split] = [self._encode(t) for t in split_texts]

    def _encode(self, text: str) -> torch.Tensor:
        ids = self.tokenizer.encode(text)[: self.hparams.max_length]
        if len(ids) == 0:
            raise DataSourceError(f"an empty text in {self.source_name}: {text!r}")
        return ids

    @property
    def pad_id(self) -> int:
        return int(self.tokenizer.to_config().get("pad_id", 0))

    def train_dataloader(self) -> DataLoader:
        return self.train_loader(Examples(self.encoded["train"], self.labels["train"]), Padder(self.pad_id))

    def val_dataloader(self) -> DataLoader:
        return self.eval_loader(Examples(self.encoded["val"], self.labels["val"]), collate_fn=Padder(self.pad_id))

    def evaluation_loader(self, split: str = "test", num_items: int | None = None, batch_size: int = 64):
        """Raw texts and int64 labels of a split (its first ``num_items``), in order, this process's batches."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if not self.texts.get(split):
            raise ValueError(f"{self.source_name} has no {split} split here (data.test_fraction=0?)")
        return evaluation_loader(Examples(self.texts[split], self.labels[split]), num_items, batch_size, raw_batch)

    def model_kwargs(self) -> dict:
        if self.tokenizer is None:
            raise RuntimeError("call setup() before model_kwargs(): the classes and vocabulary come from the data")
        return {
            "tokenizer": self.tokenizer.to_config(),
            "num_classes": len(self.class_names),
            "class_names": list(self.class_names),
        }
