"""Subword tokenizers (BPE and unigram) trained on a corpus with Hugging Face ``tokenizers``.

BPE: Sennrich et al. 2016 ("Neural Machine Translation of Rare Words with Subword Units"), the byte-level variant
of GPT-2 (Radford et al. 2019) by default. Unigram: Kudo 2018 ("Subword Regularization"), as in SentencePiece.
Two pre-tokenizers:

- ``byte_level`` (default): GPT-2's byte-level alphabet of 256 symbols; every text round-trips exactly (spaces,
  newlines, characters never seen in training) and nothing is ever unknown;
- ``metaspace``: SentencePiece's convention (a space becomes ``▁`` glued to the next word), punctuation split
  off; characters unseen in training become ``<unk>`` (dropped when decoding), a leading space is not kept.

Four special symbols have fixed ids at the start of the vocabulary: ``<pad>`` 0, ``<s>`` 1 (bos), ``</s>`` 2
(eos), ``<unk>`` 3. ``encode`` adds none of them (the data module frames sequences); ``decode`` drops them, so the
detokenised text is what metrics see.

The whole trained tokenizer is a JSON string inside ``to_config()``'s plain dict; the data module hands that dict
to the model, which saves it as a hyperparameter, so every checkpoint decodes on its own (as with the char
tokenizer). ``gen_lightning.data.text.tokenizers.from_config`` rebuilds it.

Reproducibility: BPE training is deterministic. Unigram training in ``tokenizers`` is not (its EM sums floats in
hash-map order: the same corpus gives scores that differ in the third decimal, and so can differ in near-tied
pieces), so ``train_cached`` keeps every trained tokenizer in a cache keyed by the corpus and the settings, under
a file lock: all DDP processes of a node, and a run resumed on the same machine, use one and the same tokenizer.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from gen_lightning.files import write_text

try:
    import fcntl
except ImportError:  # not on Windows: the cache then has no lock
    fcntl = None

SPECIALS = ("<pad>", "<s>", "</s>", "<unk>")  # ids 0, 1, 2, 3
PAD_ID, BOS_ID, EOS_ID, UNK_ID = range(4)
ALGORITHMS = ("bpe", "unigram")
PRE_TOKENIZERS = ("byte_level", "metaspace")


def _pre_tokenizer(name: str):
    if name == "byte_level":
        return pre_tokenizers.ByteLevel(add_prefix_space=False), decoders.ByteLevel()
    return pre_tokenizers.Sequence([pre_tokenizers.Metaspace(), pre_tokenizers.Punctuation()]), decoders.Metaspace()


def _check_settings(algorithm: str, pre_tokenizer: str, vocab_size: int) -> None:
    if algorithm not in ALGORITHMS:
        raise ValueError(f"subword algorithm must be one of {ALGORITHMS}, got {algorithm!r}")
    if pre_tokenizer not in PRE_TOKENIZERS:
        raise ValueError(f"pre_tokenizer must be one of {PRE_TOKENIZERS}, got {pre_tokenizer!r}")
    smallest = len(SPECIALS) + (256 if pre_tokenizer == "byte_level" else 1) + 1
    if vocab_size < smallest:
        raise ValueError(
            f"vocab_size {vocab_size} is too small for {pre_tokenizer}: it needs the {len(SPECIALS)} special "
            f"symbols{' and the 256 byte symbols' if pre_tokenizer == 'byte_level' else ''}, so at least {smallest}"
        )


class TokenizersModel:
    """A tokenizer held as a ``tokenizers`` model (``self._tok``): the encoding of the subword and HF kinds."""

    _tok: Tokenizer

    def encode(self, text: str) -> torch.Tensor:
        """(N,) int64 ids of ``text``, no special symbols added."""
        return torch.tensor(self._tok.encode(text, add_special_tokens=False).ids, dtype=torch.long)

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """Ids of many texts at once (in parallel, in Rust)."""
        return [e.ids for e in self._tok.encode_batch(list(texts), add_special_tokens=False)]


class SubwordTokenizer(TokenizersModel):
    """A trained BPE or unigram model; ids (N,) int64 like the char tokenizer, specials at ids 0-3."""

    kind = "subword"
    pad_id, bos_id, eos_id, unk_id = PAD_ID, BOS_ID, EOS_ID, UNK_ID

    def __init__(self, model_json: str, algorithm: str, pre_tokenizer: str) -> None:
        _check_settings(algorithm, pre_tokenizer, 10**9)
        self.algorithm = algorithm
        self.pre_tokenizer = pre_tokenizer
        self.model_json = model_json
        self._tok = Tokenizer.from_str(model_json)
        found = [self._tok.token_to_id(s) for s in SPECIALS]
        if found != list(range(len(SPECIALS))):
            raise ValueError(f"a subword tokenizer needs {SPECIALS} at ids 0-3, found ids {found}")

    @classmethod
    def train(
        cls,
        texts: Iterable[str],
        algorithm: str = "bpe",
        vocab_size: int = 8000,
        pre_tokenizer: str = "byte_level",
        min_frequency: int = 2,
    ) -> SubwordTokenizer:
        """Learn a vocabulary of at most ``vocab_size`` symbols (specials included) from ``texts``."""
        _check_settings(algorithm, pre_tokenizer, vocab_size)
        alphabet = pre_tokenizers.ByteLevel.alphabet() if pre_tokenizer == "byte_level" else []
        if algorithm == "bpe":
            tok = Tokenizer(models.BPE(unk_token="<unk>"))
            trainer = trainers.BpeTrainer(
                vocab_size=vocab_size,
                min_frequency=min_frequency,
                special_tokens=list(SPECIALS),
                initial_alphabet=alphabet,
                show_progress=False,
            )
        else:
            tok = Tokenizer(models.Unigram())
            trainer = trainers.UnigramTrainer(
                vocab_size=vocab_size,
                special_tokens=list(SPECIALS),
                unk_token="<unk>",
                initial_alphabet=alphabet,
                show_progress=False,
            )
        tok.pre_tokenizer, tok.decoder = _pre_tokenizer(pre_tokenizer)
        texts = [t for t in texts if t]
        if not texts:
            raise ValueError("cannot train a subword tokenizer on an empty corpus")
        tok.train_from_iterator(texts, trainer)
        return cls(tok.to_str(), algorithm, pre_tokenizer)

    @property
    def vocab_size(self) -> int:
        return self._tok.get_vocab_size()

    def decode(self, ids: Sequence[int] | torch.Tensor) -> str:
        """The text of ``ids``, special symbols (pad, bos, eos, unk) dropped."""
        ids = ids.tolist() if isinstance(ids, torch.Tensor) else list(ids)
        return self._tok.decode(ids, skip_special_tokens=True)

    def decode_batch(self, rows: Sequence[Sequence[int]]) -> list[str]:
        return self._tok.decode_batch([list(r) for r in rows], skip_special_tokens=True)

    def to_config(self) -> dict:
        return {
            "kind": self.kind,
            "algorithm": self.algorithm,
            "pre_tokenizer": self.pre_tokenizer,
            "vocab_size": self.vocab_size,
            "pad_id": self.pad_id,
            "bos_id": self.bos_id,
            "eos_id": self.eos_id,
            "unk_id": self.unk_id,
            "model": self.model_json,
        }

    @classmethod
    def from_config(cls, config: dict) -> SubwordTokenizer:
        missing = {"algorithm", "pre_tokenizer", "model"} - set(config)
        if missing:
            raise ValueError(f"subword tokenizer description lacks {sorted(missing)}: {sorted(config)}")
        return cls(config["model"], config["algorithm"], config["pre_tokenizer"])


def corpus_key(texts: Sequence[str], **settings) -> str:
    """A hash of the training texts and the settings: the cache file name of the tokenizer they train."""
    import tokenizers

    h = hashlib.sha256(json.dumps({**settings, "tokenizers": tokenizers.__version__}, sort_keys=True).encode())
    for text in texts:
        h.update(text.encode("utf-8"))
        h.update(b"\0")
    return h.hexdigest()[:24]


@contextlib.contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        if fcntl is not None:
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            if fcntl is not None:
                fcntl.flock(handle, fcntl.LOCK_UN)


def cache_dir() -> Path:
    """``$GEN_LIGHTNING_CACHE/tokenizers`` (default ``~/.cache/gen_lightning/tokenizers``)."""
    root = os.environ.get("GEN_LIGHTNING_CACHE") or Path.home() / ".cache" / "gen_lightning"
    return Path(root).expanduser() / "tokenizers"


def train_cached(texts: Sequence[str], directory: Path | None = None, **kw) -> SubwordTokenizer:
    """``SubwordTokenizer.train(texts, **kw)``, or the tokenizer trained before on the same texts and settings.

    Processes that ask at the same time wait for the first one (a file lock), then read what it wrote.
    """
    directory = directory or cache_dir()
    path = directory / f"{kw.get('algorithm', 'bpe')}-{corpus_key(texts, **kw)}.json"
    with _locked(path.with_suffix(".lock")):
        if path.is_file():
            return SubwordTokenizer.from_config(json.loads(path.read_text(encoding="utf-8")))
        tokenizer = SubwordTokenizer.train(texts, **kw)
        write_text(path, json.dumps(tokenizer.to_config()))  # a reader never sees half a file
        return tokenizer
