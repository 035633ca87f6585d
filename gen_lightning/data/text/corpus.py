"""Text data for the sequence families: sources, tokenization, contiguous splits and fixed-length windows.

Follows nanoGPT's ``shakespeare_char`` preparation: the whole text is tokenized into one stream of ids, the
first ``1 - val_fraction`` of it is the training split and the rest the validation split (contiguous, so no
window crosses from one into the other), and a sample is a window of ``block_size + 1`` ids whose first
``block_size`` are the inputs and whose last ``block_size`` are the targets (next-token prediction).

Training windows start at every offset of the training split (``train_stride=1``); the resumable sampler
of ``gen_lightning/data/loaders.py`` shuffles them, so an epoch visits every window once in a random order
(nanoGPT draws random offsets with replacement; this is the same distribution without repeats, and exactly
resumable).
An epoch is therefore ``block_size`` passes over each token. For shorter epochs of random windows, set the
Trainer's ``limit_train_batches``: each epoch then takes that many batches from a fresh permutation (the
sampler is re-seeded per epoch). ``train_stride=block_size`` makes an epoch one pass over non-overlapping
windows, which keeps the sampler's index list small for corpora of hundreds of MB, at the cost of fixed
window boundaries.
Validation uses the fixed non-overlapping windows of the validation split, in order, in batches of
``eval_batch_size`` (default: ``batch_size``); the loss is a token-weighted mean, so the batch size changes only
the speed (larger batches run the forward pass at a higher rate) and the floating-point summation order.

Sources: a local file or folder (``path``; a folder is the concatenation of its files in sorted order, one
newline between files, hidden files skipped), a Hugging Face dataset (``hub_name``, ``text_column``,
``hub_split``; rows joined by newlines), or, when neither is given, an embedded English text that ships with
Python: CPython's ``pydoc_data.topics`` (the language reference topics shown by ``help()``, ~465,000
characters), so the module works with no download. Any symbol stream (ABC music notation, code, ...) works
through ``path``.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from gen_lightning.data.loaders import eval_loader, train_loader
from gen_lightning.data.text.tokenizers import KINDS, SUBWORD, Tokenizer, build_tokenizer

SEPARATOR = "\n"  # between the files of a folder and between the rows of a hub dataset


def embedded_text() -> str:
    """CPython's ``pydoc_data.topics`` (~465k characters of English with code), topics in sorted order."""
    try:
        from pydoc_data.topics import topics
    except ImportError as err:  # some distributions strip it from the standard library
        raise RuntimeError(
            "the embedded text (CPython's pydoc_data.topics) is missing from this Python installation; "
            "pass path=<text file or folder> or hub_name=<dataset> instead"
        ) from err
    return SEPARATOR.join(topics[name] for name in sorted(topics))


def _files(path: Path) -> list[Path]:
    if not path.exists():
        raise FileNotFoundError(f"text path not found: {path}")
    if path.is_file():
        return [path]
    # Hidden below `path` only: a path given as ../data must not count as hidden itself.
    files = sorted(
        p for p in path.rglob("*") if p.is_file() and not any(s.startswith(".") for s in p.relative_to(path).parts)
    )
    if not files:
        raise ValueError(f"text folder {path} contains no (non-hidden) files")
    return files


def _decode(data: bytes, file: Path, encoding: str = "utf-8") -> str:
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as err:
        raise ValueError(
            f"{file} is not valid {encoding.upper()} (byte {err.start}: {err.reason}); set data.encoding to the file's "
            "encoding (e.g. data.encoding=latin-1), re-encode it as UTF-8, or use tokenizer=byte, which reads any bytes"
        ) from err


def read_path(path: str | Path, *, decode: bool, encoding: str = "utf-8") -> str | bytes:
    """The file, or the folder's files in sorted order joined by ``SEPARATOR``; str when ``decode``."""
    contents = []
    for file in _files(Path(path)):
        data = file.read_bytes()
        if not data:
            raise ValueError(f"text file {file} is empty")
        contents.append(_decode(data, file, encoding) if decode else data)
    return SEPARATOR.join(contents) if decode else SEPARATOR.encode().join(contents)


def load_hub_text(name: str, column: str = "text", split: str = "train", config: str | None = None, **kwargs) -> str:
    """Rows of ``column`` of a ``datasets.load_dataset(name, config, split=split, **kwargs)`` dataset."""
    import datasets  # imported here: a second to import, and only hub sources need it

    try:
        dataset = datasets.load_dataset(name, config, split=split, **kwargs)
    except Exception as err:  # offline: ConnectionError; unknown name: DatasetNotFoundError; ...
        raise RuntimeError(
            f"could not load the hub dataset {name!r} (config {config!r}, split {split!r}) with "
            f"datasets.load_dataset: {type(err).__name__}: {err}. Connect to the internet (a dataset loaded "
            "once is then cached; set HF_DATASETS_OFFLINE=1 to use the cache offline), or download the text "
            "yourself and pass path=<file or folder>."
        ) from err
    if column not in dataset.column_names:
        raise ValueError(f"hub dataset {name!r} has no column {column!r}; it has {dataset.column_names}")
    text = SEPARATOR.join(row for row in dataset[column] if row)
    if not text:
        raise ValueError(f"column {column!r} of hub dataset {name!r} (split {split!r}) is empty")
    return text


class Windows(Dataset):
    """Windows of ``block_size + 1`` ids starting every ``stride`` ids: ``(inputs, targets)`` int64 (T,)."""

    def __init__(self, ids: torch.Tensor, block_size: int, stride: int) -> None:
        self.ids = ids
        self.block_size = block_size
        self.stride = stride

    def __len__(self) -> int:
        return max(0, (len(self.ids) - self.block_size - 1) // self.stride + 1)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        start = index * self.stride
        chunk = self.ids[start : start + self.block_size + 1].long()  # (T + 1,)
        return chunk[:-1], chunk[1:]


class TextDataModule(L.LightningDataModule):
    """Next-token windows of a text (file, folder, hub dataset or the embedded default)."""

    task, source_modality, modality = "unconditional", None, "text"  # docs/CONTRACT.md

    def __init__(
        self,
        path: str | None = None,
        hub_name: str | None = None,
        hub_config: str | None = None,
        hub_split: str = "train",
        text_column: str = "text",
        hub_kwargs: dict | None = None,
        tokenizer: str | dict = "char",
        vocab_size: int = 8000,
        pre_tokenizer: str = "byte_level",
        encoding: str = "utf-8",
        block_size: int = 256,
        batch_size: int = 64,
        eval_batch_size: int | None = None,
        val_fraction: float = 0.1,
        train_stride: int = 1,
        num_workers: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if path is not None and hub_name is not None:
            raise ValueError("give either path (local text) or hub_name (Hugging Face dataset), not both")
        if tokenizer not in (*KINDS, *SUBWORD) and not isinstance(tokenizer, dict):
            raise ValueError(f"tokenizer must be one of {(*KINDS, *SUBWORD)} or a description, got {tokenizer!r}")
        if not 0.0 < val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
        sizes = {"block_size": block_size, "batch_size": batch_size, "train_stride": train_stride}
        sizes["eval_batch_size"] = batch_size if eval_batch_size is None else eval_batch_size
        for key, value in sizes.items():
            if value < 1:
                raise ValueError(f"{key} must be a positive integer, got {value}")
        self.save_hyperparameters(logger=False)  # the run logs the whole config itself
        self.tokenizer: Tokenizer | None = None
        self.train_set: Windows | None = None
        self.val_set: Windows | None = None

    @property
    def kind(self) -> str:
        """The tokenizer's kind (``tokenizer`` is a kind, or a description carried over by ``init_from``)."""
        tokenizer = self.hparams.tokenizer
        return tokenizer if isinstance(tokenizer, str) else tokenizer["kind"]

    @property
    def source_name(self) -> str:
        h = self.hparams
        if h.path is not None:
            return str(h.path)
        if h.hub_name is not None:
            return f"hub dataset {h.hub_name!r} [{h.hub_split}]"
        return "the embedded text (pydoc_data.topics)"

    def _hub_text(self) -> str:
        h = self.hparams
        return load_hub_text(h.hub_name, h.text_column, h.hub_split, h.hub_config, **dict(h.hub_kwargs or {}))

    def prepare_data(self) -> None:
        # Runs on one process per node: download (and cache) hub data before every process reads it in setup.
        if self.hparams.hub_name is not None:
            self._hub_text()

    def _corpus(self) -> str | bytes:
        h = self.hparams
        if h.path is not None:
            return read_path(h.path, decode=self.kind != "byte", encoding=h.encoding)
        return self._hub_text() if h.hub_name is not None else embedded_text()

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        h = self.hparams
        corpus = self._corpus()
        self.tokenizer = build_tokenizer(h.tokenizer, corpus, h.vocab_size, h.pre_tokenizer)
        ids = self.tokenizer.encode(corpus)
        ids = ids.to(torch.uint8 if self.tokenizer.vocab_size <= 256 else torch.int32)  # 1-4 bytes per token
        n_train = int(len(ids) * (1.0 - h.val_fraction))
        splits = {"training": ids[:n_train], "validation": ids[n_train:]}
        for split, part in splits.items():
            if len(part) < h.block_size + 1:
                raise ValueError(
                    f"the {split} split of {self.source_name} has {len(part)} tokens, fewer than "
                    f"block_size + 1 = {h.block_size + 1}: use a smaller block_size or more text"
                )
        self.train_set = Windows(splits["training"], h.block_size, h.train_stride)
        self.val_set = Windows(splits["validation"], h.block_size, h.block_size)

    def train_dataloader(self) -> DataLoader:
        h = self.hparams
        return train_loader(self.train_set, h.batch_size, seed=h.seed, num_workers=h.num_workers)

    def val_dataloader(self) -> DataLoader:
        size = self.hparams.eval_batch_size or self.hparams.batch_size
        return eval_loader(self.val_set, size, num_workers=self.hparams.num_workers)

    def unigram_bpc(self, num_windows: int | None = None) -> float:
        """The baseline every model must beat: bits per token of the validation targets (of the first
        ``num_windows`` validation windows; all by default) under the training split's token frequencies, with
        add-one smoothing so that a token unseen in training costs finite bits."""
        if self.train_set is None or self.val_set is None:
            raise RuntimeError("call setup() before unigram_bpc()")
        vocab = self.tokenizer.vocab_size
        counts = torch.bincount(self.train_set.ids.long(), minlength=vocab).double() + 1.0
        log2_p = (counts / counts.sum()).log2()
        windows = len(self.val_set) if num_windows is None else min(num_windows, len(self.val_set))
        targets = torch.cat([self.val_set[i][1] for i in range(windows)])  # (windows * T,)
        return float(-log2_p[targets].mean())

    def model_kwargs(self) -> dict:
        """Constructor arguments the model takes from the data: the tokenizer's description."""
        if self.tokenizer is None:
            raise RuntimeError("call setup() before model_kwargs(): the vocabulary is built from the text")
        return {"tokenizer": self.tokenizer.to_config()}
