"""Character-level and byte-level tokenizers for the sequence families.

Character level follows Karpathy's char-rnn and nanoGPT's ``shakespeare_char``: the vocabulary is the sorted
set of characters of the whole text, so ids are stable for a given corpus. Byte level has a fixed vocabulary
of 256 symbols (the UTF-8 bytes), accepts any input, and decodes with replacement characters where a sample
ends inside a multi-byte character.

Subword tokenizers (BPE, unigram) live in ``subword.py`` and are rebuilt by the same ``from_config``.

A tokenizer is described by a plain dict (``to_config()``); the data module hands that dict to the model,
which saves it as a hyperparameter, so every checkpoint carries its vocabulary and decodes on its own.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from gen_lightning.data.text.subword import SubwordTokenizer, train_cached


def _code_points(text: str) -> np.ndarray:
    """Unicode code points of ``text`` as a uint32 array (vectorised; 1 MB of text in milliseconds)."""
    return np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)


class VocabularyError(ValueError):
    """A text holds symbols its tokenizer cannot encode."""


class CharTokenizer:
    """One id per distinct character of the corpus, ids in code-point order."""

    kind = "char"

    def __init__(self, chars: str) -> None:
        if not chars:
            raise ValueError("a character tokenizer needs at least one character")
        if len(set(chars)) != len(chars) or list(chars) != sorted(chars):
            raise ValueError("chars must be the sorted distinct characters of the corpus")
        self.chars = chars
        self._codes = _code_points(chars)  # sorted, so encoding is a binary search

    @classmethod
    def from_text(cls, text: str) -> CharTokenizer:
        if not text:
            raise ValueError("cannot build a character vocabulary from empty text")
        codes = np.unique(_code_points(text))
        return cls(codes.astype("<u4").tobytes().decode("utf-32-le"))

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> torch.Tensor:
        """(N,) int64 ids; raises on characters outside the vocabulary, naming them."""
        codes = _code_points(text)
        ids = np.searchsorted(self._codes, codes).clip(max=len(self._codes) - 1)
        unknown = self._codes[ids] != codes
        if unknown.any():
            missing = sorted({chr(c) for c in codes[unknown]})
            raise VocabularyError(
                f"characters not in the vocabulary of {self.vocab_size}: {missing!r} "
                "(a char tokenizer knows only the characters of its text; tokenizer=byte reads any text)"
            )
        return torch.from_numpy(ids.astype(np.int64))

    def decode(self, ids: Sequence[int] | torch.Tensor) -> str:
        codes = self._codes[np.asarray(ids, dtype=np.int64)]  # raises IndexError on an id >= vocab_size
        return codes.astype("<u4").tobytes().decode("utf-32-le")

    def to_config(self) -> dict:
        return {"kind": self.kind, "chars": self.chars}


class ByteTokenizer:
    """The 256 byte values of UTF-8 (or of any binary stream)."""

    kind = "byte"
    vocab_size = 256

    def encode(self, text: str | bytes) -> torch.Tensor:
        """(N,) int64 ids of the UTF-8 bytes of ``text`` (or of ``text`` itself when it is bytes)."""
        data = text.encode("utf-8") if isinstance(text, str) else bytes(text)
        return torch.frombuffer(bytearray(data), dtype=torch.uint8).long()

    def decode(self, ids: Sequence[int] | torch.Tensor) -> str:
        # A sample may stop inside a multi-byte character, or a byte model may emit invalid UTF-8.
        return np.asarray(ids, dtype=np.uint8).tobytes().decode("utf-8", errors="replace")

    def to_config(self) -> dict:
        return {"kind": self.kind}


Tokenizer = CharTokenizer | ByteTokenizer | SubwordTokenizer
KINDS = ("char", "byte")


def from_config(config: dict) -> Tokenizer:
    """Rebuild a tokenizer from ``to_config()``'s dict (e.g. from a checkpoint's hyperparameters)."""
    kind = config.get("kind")
    if kind == "char":
        return CharTokenizer(config["chars"])
    if kind == "byte":
        return ByteTokenizer()
    if kind == "subword":
        return SubwordTokenizer.from_config(config)
    if kind == "hf":  # a Hugging Face model folder's (gen_lightning/data/text/hf_tokenizer.py)
        from gen_lightning.data.text.hf_tokenizer import HFTokenizer

        return HFTokenizer.from_config(config)
    if kind == "word":  # sentence data (gen_lightning/data/text/words.py)
        from gen_lightning.data.text.words import WordTokenizer

        return WordTokenizer(config["words"], config["splitter"], config["lowercase"])
    raise ValueError(f"unknown tokenizer kind {kind!r}; expected one of {(*KINDS, 'subword', 'word', 'hf')}")


SUBWORD = ("bpe", "unigram")
HF_PREFIX = "hf:"  # tokenizer=hf:FOLDER_OR_NAME: the tokenizer of a Hugging Face model (folder or cached name)


def is_choice(spec) -> bool:
    """Whether a data config's ``tokenizer`` value names a tokenizer (a kind, ``hf:...``) or describes one."""
    hub = isinstance(spec, str) and spec.startswith(HF_PREFIX)
    return isinstance(spec, dict) or spec in (*KINDS, *SUBWORD) or hub


def build_tokenizer(
    spec: str | dict, texts: str | bytes | list[str], vocab_size: int = 8000, pre_tokenizer: str = "byte_level"
) -> Tokenizer:
    """The tokenizer a data module uses: a saved description (``to_config()``'s dict, e.g. a pre-trained
    checkpoint's carried over by ``init_from``), or a kind built from ``texts`` (one text or many): "char" (their
    characters), "byte", or a subword model trained on them ("bpe", "unigram"; ``vocab_size``, ``pre_tokenizer``;
    cached, see ``subword.train_cached``); or ``hf:FOLDER_OR_NAME``, a Hugging Face model's (never downloaded)."""
    if isinstance(spec, dict):
        return from_config(spec)
    if isinstance(spec, str) and spec.startswith(HF_PREFIX):
        from gen_lightning.data.text.hf_tokenizer import read_folder
        from gen_lightning.interop.hub import resolve

        return read_folder(resolve(spec.removeprefix(HF_PREFIX), what="tokenizer=hf:"))
    if spec == "byte":
        return ByteTokenizer()
    if spec == "char":
        return CharTokenizer.from_text("".join(texts) if isinstance(texts, list) else texts)
    if spec in SUBWORD:
        texts = texts if isinstance(texts, list) else texts.split("\n")
        return train_cached(texts, algorithm=spec, vocab_size=vocab_size, pre_tokenizer=pre_tokenizer)
    raise ValueError(
        f"tokenizer must be one of {(*KINDS, *SUBWORD)}, hf:FOLDER_OR_NAME or a tokenizer description, got {spec!r}"
    )
