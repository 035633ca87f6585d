"""Word-level sentences, one per line: the data of the text-GAN benchmarks (Image COCO captions, EMNLP news).

Every sentence is one training example ``<eos> w_1 ... w_n <eos>``, padded on the right to ``max_length + 2``
symbols; a batch is ``(inputs, targets)`` int64 ``(B, max_length + 1)``, the targets shifted by one and set to
``IGNORE`` (-100, ``F.cross_entropy``'s ``ignore_index``) at the padding, so every next-token loss in the project
(``LanguageModel``, the GAN generators' MLE) masks it without knowing. ``<eos>`` is the line break: the word
tokenizer encodes ``"\\n"`` as ``<eos>`` and decodes it back, so the language models' unprompted sampling (which
starts from a newline) starts a sentence, and a sample's first line is its first sentence.

Tokenisation (``splitter``): ``regex`` (default) is ``TOKEN_PATTERN``, NLTK's Treebank conventions for clitics
(``dog 's``, ``do n't``) and punctuation; on Image COCO (train + test, 20,000 lines) it gives the tokens of NLTK's
``NLTKWordTokenizer`` (``word_tokenize`` without its Punkt sentence splitting, which needs a download) on all but
34 lines (quotes become ``"`` not `````/``''``; ``u.s.`` becomes ``u.s .``; a period inside a line is split, as
``word_tokenize``'s Punkt step does); ``whitespace`` is ``str.split``. The vocabulary is the training split's
words (``min_count``, ``max_vocab``), ``<unk>`` for the rest (Texygen builds it from train and test together).

Sources (``data/base.py``'s keys and errors): ``path`` a folder with ``train_file`` and ``test_file`` (Texygen's
layout), or one file whose last ``test_fraction`` of lines is the test split; ``hub_name`` a Hugging Face dataset
whose ``text_column`` of ``hub_split`` holds one sentence a row (split as one file); neither, the embedded default
(``embedded: pydoc_sentences``): English sentences of CPython's own documentation (``pydoc_data.topics``, shipped
with Python), so the module works offline. Validation uses the test split (the text-GAN papers have no other
held-out split) unless ``val_fraction`` holds back the end of the training lines.

``SentenceData`` is what the ``sentences`` metric protocol reads of such data (also ``data=oracle``, oracle.py):
padded datasets per split, their loaders, the tokenised sentences, NLL batches and a card.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
from omegaconf import OmegaConf
from torch.utils.data import DataLoader, TensorDataset

from gen_lightning.data.base import DataModule
from gen_lightning.data.decoding import read_text
from gen_lightning.data.sources import DataSourceError, SourceNotFoundError, hub_column
from gen_lightning.data.text.words import SPLITTERS, WordTokenizer, split_words, tokenizer_card

IGNORE = -100  # target of a padded position (F.cross_entropy's default ignore_index)
TOO_LONG = ("error", "truncate", "drop")


def embedded_sentences() -> list[str]:
    """English sentences of CPython's ``pydoc_data.topics`` (the language reference shown by ``help()``): prose
    paragraphs split at sentence ends, 5 to 32 regex tokens, without code characters; in their order."""
    from gen_lightning.data.text.corpus import embedded_text

    out = []
    for paragraph in re.split(r"\n\s*\n", embedded_text()):
        if paragraph.startswith("   ") or ">>>" in paragraph:  # code blocks and examples
            continue
        for sentence in re.split(r"(?<=[.!?])\s+(?=[A-Z])", " ".join(paragraph.split())):
            if 5 <= len(split_words(sentence)) <= 32 and not re.search(r"[=_{}\[\]<>*`|#@\\]", sentence):
                out.append(sentence)
    return out


def read_lines(file: Path, encoding: str = "utf-8") -> list[str]:
    """The non-blank lines of a file (stripped); a missing or empty file or a wrong encoding is the one error of
    data/decoding.py (a DataSourceError, also a ValueError)."""
    text = read_text(file, encoding, what="sentence file")
    return [s for s in (line.strip() for line in text.splitlines()) if s]


def numbered(where: str, lines: list[str]) -> list[tuple[str, int, str]]:
    """``(where, number, line)`` of each line, numbered from 1 (what a too-long line's error names)."""
    return [(where, i + 1, s) for i, s in enumerate(lines)]


def pad_examples(sentences: list[list[int]], max_length: int, eos_id: int, pad_id: int) -> TensorDataset:
    """``(inputs, targets)`` (N, max_length + 1) of ``<eos> ids <eos>`` rows, targets IGNORE at the padding."""
    rows = torch.full((len(sentences), max_length + 2), pad_id, dtype=torch.long)
    for i, ids in enumerate(sentences):
        rows[i, : len(ids) + 2] = torch.tensor([eos_id, *ids, eos_id])
    targets = rows[:, 1:].clone()
    lengths = torch.tensor([len(ids) + 1 for ids in sentences])  # words + the closing <eos>
    targets[torch.arange(max_length + 1)[None] >= lengths[:, None]] = IGNORE
    return TensorDataset(rows[:, :-1], targets)


def split_off(lines: list, fraction: float) -> dict[str, list]:
    """The last ``fraction`` of ``lines`` (at least one) is the test split, the rest the training split."""
    n_test = max(1, int(len(lines) * fraction))
    if len(lines) - n_test < 1:
        raise DataSourceError(f"{len(lines)} line(s) cannot be split into train and test")
    return {"train": lines[:-n_test], "test": lines[-n_test:]}


class SentenceData(DataModule):
    """Sentence data as the ``sentences`` metric protocol reads it: ``datasets`` (split -> padded ``(inputs,
    targets)``, train, val and test, filled by ``setup``), ``tokenizer`` (a ``WordTokenizer``), ``sentences(split)``
    and ``card()``; the loaders and NLL batches are the same for every such module."""

    task, source_modality, modality = "unconditional", None, "text"  # docs/CONTRACT.md
    datasets: dict[str, TensorDataset]
    tokenizer: WordTokenizer | None

    def train_dataloader(self) -> DataLoader:
        return self.train_loader(self.datasets["train"])

    def val_dataloader(self) -> DataLoader:
        return self.eval_loader(self.datasets["val"])

    def test_dataloader(self) -> DataLoader:
        return self.eval_loader(self.datasets["test"])

    def check_split(self, split: str) -> None:
        if split not in self.datasets:
            raise ValueError(f"unknown split {split!r}; {self.source_name} has {sorted(self.datasets)}")

    def nll_loader(self, split: str, batch_size: int) -> DataLoader:
        """``(inputs, targets)`` batches of ``split`` in order (padding targets IGNORE), for NLL_test."""
        self.check_split(split)
        return self.eval_loader(self.datasets[split], batch_size)

    def model_kwargs(self) -> dict:
        """The tokenizer's description (the vocabulary travels with the checkpoint)."""
        if self.tokenizer is None:
            raise RuntimeError("call setup() before model_kwargs(): the vocabulary is built from the sentences")
        return {"tokenizer": self.tokenizer.to_config()}


class SentencesDataModule(SentenceData):
    """Word-level sentences from a train/test folder, one file or hub split, or the embedded default; see the file
    docstring. ``too_long``: what a line of more than ``max_length`` words does: ``error`` (default: refuse, naming
    the file, the line and its length), ``truncate`` (keep its first ``max_length`` words) or ``drop`` (skip it);
    the card counts what was truncated or dropped."""

    EMBEDDED = {"pydoc_sentences": "the embedded sentences (pydoc_data.topics)"}
    LOCAL = "a folder holding data.train_file and data.test_file, or one file (one sentence a line)"
    LOCAL_COPY = "save the sentences one a line in a file and pass data.path=FILE (split by data.test_fraction)"

    def __init__(
        self,
        path: str | None = None,
        train_file: str = "train.txt",
        test_file: str = "test.txt",
        test_fraction: float = 0.1,
        val_fraction: float = 0.0,
        hub_name: str | None = None,
        hub_config: str | None = None,
        hub_split: str = "train",
        text_column: str = "text",
        hub_kwargs: dict | None = None,
        embedded: str | None = None,
        tokenizer: str | dict = "regex",
        lowercase: bool = False,
        min_count: int = 1,
        max_vocab: int | None = None,
        max_length: int = 40,
        too_long: str = "error",
        encoding: str = "utf-8",
        batch_size: int = 64,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if not (isinstance(tokenizer, dict) or tokenizer in SPLITTERS):
            raise ValueError(f"data.tokenizer must be one of {SPLITTERS} (or a saved description), got {tokenizer!r}")
        if too_long not in TOO_LONG:
            raise ValueError(f"data.too_long must be one of {TOO_LONG}, got {too_long!r}")
        for key, value in {"test_fraction": test_fraction, "val_fraction": val_fraction}.items():
            if not 0.0 <= value < 1.0:
                raise ValueError(f"data.{key} must be in [0, 1), got {value}")
        for key, value in {"max_length": max_length, "batch_size": batch_size, "min_count": min_count}.items():
            if value < 1:
                raise ValueError(f"data.{key} must be a positive integer, got {value}")
        # Plain values (Hydra passes mappings as DictConfig): checkpoints load weights_only.
        hub_kwargs = None if hub_kwargs is None else OmegaConf.to_container(OmegaConf.create(dict(hub_kwargs)))
        self.save_hyperparameters(logger=False)
        self.check_source()
        self.tokenizer: WordTokenizer | None = None
        self.texts: dict[str, list[list[str]]] = {}  # split -> tokenised sentences (train, val, test)
        self.datasets: dict[str, TensorDataset] = {}
        self.length_report: dict[str, int] = {}

    # ------------------------------------------------------------ sources

    def _raw_splits(self) -> dict[str, list[tuple[str, int, str]]]:
        """split -> (file, line number, line) of every non-blank line, for train and test."""
        h, source = self.hparams, self.source
        if source.kind == "embedded":
            return split_off(numbered("<embedded>", embedded_sentences()), h.test_fraction or 0.1)
        if source.kind == "hub":
            rows = hub_column(self.load_hub(), h.text_column, h.hub_name, "text_column")
            lines = [s for s in (str(row or "").strip() for row in rows) if s]
            return self._split_one(f"data.hub_name={h.hub_name!r} is one split", f"{h.hub_name}[{h.hub_split}]", lines)
        path = self.local_path()
        if not path.is_dir():
            return self._split_one(f"data.path={path} is one file", str(path), read_lines(path, h.encoding))
        out = {}
        for split, key in (("train", "train_file"), ("test", "test_file")):
            file = path / h[key]
            if not file.is_file():
                raise SourceNotFoundError(
                    f"data.path={str(path)!r} is a folder without data.{key}={h[key]!r}: give {self.LOCAL}"
                )
            out[split] = numbered(str(file), read_lines(file, h.encoding))
        return out

    def _split_one(self, what: str, where: str, lines: list[str]) -> dict[str, list]:
        """One file's (or hub split's) lines split into train and test by ``test_fraction``."""
        if self.hparams.test_fraction <= 0:
            raise DataSourceError(f"{what}: set data.test_fraction in (0, 1) to split it")
        return split_off(numbered(where, lines), self.hparams.test_fraction)

    def _tokenise(self, lines: list[tuple[str, int, str]]) -> list[list[str]]:
        h = self.hparams
        splitter = h.tokenizer["splitter"] if isinstance(h.tokenizer, dict) else h.tokenizer
        lowercase = h.tokenizer["lowercase"] if isinstance(h.tokenizer, dict) else h.lowercase
        out = []
        for file, number, line in lines:
            words = split_words(line, splitter, lowercase)
            if len(words) > h.max_length:
                if h.too_long == "error":
                    raise DataSourceError(
                        f"{file}:{number} has {len(words)} words, more than data.max_length={h.max_length}: "
                        f"raise data.max_length, or set data.too_long=truncate (keep the first {h.max_length} "
                        "words) or data.too_long=drop (skip such lines)"
                    )
                self.length_report[h.too_long] = self.length_report.get(h.too_long, 0) + 1
                if h.too_long == "drop":
                    continue
                words = words[: h.max_length]
            out.append(words)
        return out

    # ------------------------------------------------------------ Lightning

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        h = self.hparams
        raw = self._raw_splits()
        self.texts = {split: self._tokenise(lines) for split, lines in raw.items()}
        if h.val_fraction > 0:
            train = self.texts["train"]
            n_val = max(1, int(len(train) * h.val_fraction))
            self.texts["train"], self.texts["val"] = train[:-n_val], train[-n_val:]
        else:
            self.texts["val"] = self.texts["test"]
        for split, sentences in self.texts.items():
            if not sentences:
                raise DataSourceError(f"the {split} split of {self.source_name} has no sentence left")
        if isinstance(h.tokenizer, dict):
            self.tokenizer = WordTokenizer(h.tokenizer["words"], h.tokenizer["splitter"], h.tokenizer["lowercase"])
        else:
            self.tokenizer = WordTokenizer.from_sentences(
                self.texts["train"], h.tokenizer, h.lowercase, h.min_count, h.max_vocab
            )
        for split, sentences in self.texts.items():
            ids = [self.tokenizer.encode_words(s) for s in sentences]
            self.datasets[split] = pad_examples(ids, h.max_length, self.tokenizer.eos_id, self.tokenizer.pad_id)

    # ------------------------------------------------------------ what the sentence metrics read

    def sentences(self, split: str) -> list[list[str]]:
        """The tokenised sentences of ``split`` (train, val or test): the references of BLEU."""
        self.check_split(split)
        return self.texts[split]

    def card(self) -> dict:
        """What the metric cards say about these sentences."""
        t = self.tokenizer
        return {
            "data": self.source_name,
            "tokenizer": tokenizer_card(t.splitter, t.lowercase),
            "vocab_size": t.vocab_size,
            "max_length": self.hparams.max_length,
            **{f"lines_{k}": v for k, v in self.length_report.items()},
        }
