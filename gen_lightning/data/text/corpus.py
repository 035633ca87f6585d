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

Sources (``data/base.py``'s keys): a local file or folder (``path``; a folder is the concatenation of its files in
sorted order, one newline between files, hidden files skipped; decoded by ``data/decoding.py``), a Hugging Face
dataset (``hub_name``, ``text_column``, ``hub_split``; rows joined by newlines), or, when neither is given
(``embedded: pydoc_topics``), an embedded English text that ships with Python: CPython's ``pydoc_data.topics`` (the
language reference topics shown by ``help()``, ~465,000 characters), so the module works with no download. Any
symbol stream (ABC music notation, code, ...) works through ``path``.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from gen_lightning.data.base import DataModule
from gen_lightning.data.decoding import decode_text, read_bytes
from gen_lightning.data.sources import DataSourceError, EmptySourceError, hub_column, local_path
from gen_lightning.data.text.tokenizers import KINDS, SUBWORD, Tokenizer, build_tokenizer, is_choice

SEPARATOR = "\n"  # between the files of a folder and between the rows of a hub dataset


def embedded_text() -> str:
    """CPython's ``pydoc_data.topics`` (~465k characters of English with code), topics in sorted order."""
    try:
        from pydoc_data.topics import topics
    except ImportError as err:  # some distributions strip it from the standard library
        raise DataSourceError(
            "data.embedded='pydoc_topics': the embedded text (CPython's pydoc_data.topics) is missing from this Python "
            "installation: give data.path=<text file or folder> or data.hub_name=<dataset> instead"
        ) from err
    return SEPARATOR.join(topics[name] for name in sorted(topics))


LOCAL = "a text file, or a folder of text files (read in sorted order)"
BYTE_HINT = ", or use tokenizer=byte, which reads any bytes"


def _files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    # Hidden below `path` only: a path given as ../data must not count as hidden itself.
    files = sorted(
        p for p in path.rglob("*") if p.is_file() and not any(s.startswith(".") for s in p.relative_to(path).parts)
    )
    if not files:
        raise EmptySourceError(f"data.path={str(path)!r} is a folder with no (non-hidden) files: give {LOCAL}")
    return files


def read_path(path: str | Path, *, decode: bool, encoding: str = "utf-8") -> str | bytes:
    """The file, or the folder's files in sorted order joined by ``SEPARATOR``; str when ``decode``."""
    contents = []
    for file in _files(local_path(path, LOCAL)):
        data = read_bytes(file)
        contents.append(decode_text(data, file, encoding, BYTE_HINT) if decode else data)
    return SEPARATOR.join(contents) if decode else SEPARATOR.encode().join(contents)


def hub_text(dataset, name: str, column: str = "text") -> str:
    """Rows of ``column`` of a hub dataset joined by ``SEPARATOR`` (empty rows skipped)."""
    text = SEPARATOR.join(row for row in hub_column(dataset, column, name, "text_column") if row)
    if not text:
        raise DataSourceError(f"data.text_column={column!r}: the column of hub dataset {name!r} is empty")
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


class TextDataModule(DataModule):
    """Next-token windows of a text (file, folder, hub dataset or the embedded default)."""

    task, source_modality, modality = "unconditional", None, "text"  # docs/CONTRACT.md
    EMBEDDED = {"pydoc_topics": "the embedded text (pydoc_data.topics)"}
    LOCAL = LOCAL
    LOCAL_COPY = "download the text yourself and pass data.path=<file or folder>"

    def __init__(
        self,
        path: str | None = None,
        hub_name: str | None = None,
        hub_config: str | None = None,
        hub_split: str = "train",
        text_column: str = "text",
        hub_kwargs: dict | None = None,
        embedded: str | None = None,
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
        if not is_choice(tokenizer):
            raise ValueError(
                f"tokenizer must be one of {(*KINDS, *SUBWORD)}, hf:FOLDER_OR_NAME or a description, got {tokenizer!r}"
            )
        if not 0.0 < val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
        sizes = {"block_size": block_size, "batch_size": batch_size, "train_stride": train_stride}
        sizes["eval_batch_size"] = batch_size if eval_batch_size is None else eval_batch_size
        for key, value in sizes.items():
            if value < 1:
                raise ValueError(f"{key} must be a positive integer, got {value}")
        self.save_hyperparameters(logger=False)  # the run logs the whole config itself
        self.check_source()
        self.tokenizer: Tokenizer | None = None
        self.train_set: Windows | None = None
        self.val_set: Windows | None = None

    @property
    def kind(self) -> str:
        """The tokenizer's kind (``tokenizer`` is a kind, or a description carried over by ``init_from``)."""
        tokenizer = self.hparams.tokenizer
        return tokenizer if isinstance(tokenizer, str) else tokenizer["kind"]

    def _corpus(self) -> str | bytes:
        h, kind = self.hparams, self.source.kind
        if kind == "path":
            return read_path(h.path, decode=self.kind != "byte", encoding=h.encoding)
        return hub_text(self.load_hub(), h.hub_name, h.text_column) if kind == "hub" else embedded_text()

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
                raise DataSourceError(
                    f"the {split} split of {self.source_name} has {len(part)} tokens, fewer than "
                    f"block_size + 1 = {h.block_size + 1}: use a smaller block_size or more text"
                )
        self.train_set = Windows(splits["training"], h.block_size, h.train_stride)
        self.val_set = Windows(splits["validation"], h.block_size, h.block_size)

    def train_dataloader(self) -> DataLoader:
        return self.train_loader(self.train_set)

    def val_dataloader(self) -> DataLoader:
        return self.eval_loader(self.val_set)

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
