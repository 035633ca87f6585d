"""Word tokenisation of sentence data (gen_lightning/data/text/sentences.py): a regex tokeniser with NLTK's Treebank
conventions and a word vocabulary with ``<pad>``, ``<eos>`` (the line break) and ``<unk>``.

``TOKEN_PATTERN`` splits clitics (``dog 's``, ``do n't``) and punctuation as NLTK's ``NLTKWordTokenizer`` does; on
Image COCO (train + test, 20,000 lines) it gives NLTK's tokens on all but 34 lines (tests/test_text_bleu.py).
Apart from data/text.py, so that ``tokenizers.from_config`` can rebuild a word tokenizer without an import circle.
"""

from __future__ import annotations

import re
from collections import Counter

import torch

PAD, EOS, UNK = "<pad>", "<eos>", "<unk>"
SPECIALS = (PAD, EOS, UNK)
_CLITIC = r"'(?:s|re|ve|ll|d|m)\b"
TOKEN_PATTERN = re.compile(
    rf"\w+(?=n't\b)|n't\b|{_CLITIC}|\w+(?:(?:[-./:]|'(?!(?:s|re|ve|ll|d|m)\b))\w+)*|\.\.+|\S", re.I
)
SPLITTERS = ("regex", "whitespace")


def split_words(line: str, splitter: str = "regex", lowercase: bool = False) -> list[str]:
    """The words of one line."""
    line = line.lower() if lowercase else line
    return TOKEN_PATTERN.findall(line) if splitter == "regex" else line.split()


def tokenizer_card(splitter: str, lowercase: bool) -> str:
    name = "regex (NLTK Treebank conventions, TOKEN_PATTERN)" if splitter == "regex" else "whitespace"
    return name + (", lower-cased" if lowercase else "")


class WordTokenizer:
    """Words of a vocabulary, ``<pad>`` = 0, ``<eos>`` = 1 (the line break), ``<unk>`` = 2."""

    kind = "word"
    pad_id, eos_id, unk_id = 0, 1, 2

    def __init__(self, words: list[str], splitter: str = "regex", lowercase: bool = False) -> None:
        if list(words[:3]) != list(SPECIALS):
            raise ValueError(f"a word vocabulary starts with {SPECIALS}, got {list(words[:3])}")
        if splitter not in SPLITTERS:
            raise ValueError(f"splitter must be one of {SPLITTERS}, got {splitter!r}")
        self.words, self.splitter, self.lowercase = list(words), splitter, lowercase
        self.ids = {w: i for i, w in enumerate(self.words)}

    @classmethod
    def from_sentences(cls, sentences, splitter="regex", lowercase=False, min_count=1, max_vocab=None):
        """The vocabulary of tokenised ``sentences``: words seen ``min_count`` times, the ``max_vocab`` most
        frequent (ties in first-seen order), in order of frequency."""
        counts = Counter(w for s in sentences for w in s)
        kept = [w for w, c in counts.most_common(max_vocab) if c >= min_count and w not in SPECIALS]
        return cls([*SPECIALS, *kept], splitter, lowercase)

    @property
    def vocab_size(self) -> int:
        return len(self.words)

    def split(self, line: str) -> list[str]:
        return split_words(line, self.splitter, self.lowercase)

    def encode_words(self, words: list[str]) -> list[int]:
        return [self.ids.get(w, self.unk_id) for w in words]

    def encode(self, text: str) -> torch.Tensor:
        """(N,) int64 ids; each line break is ``<eos>``, unknown words ``<unk>``."""
        ids: list[int] = []
        for i, line in enumerate(text.split("\n")):
            ids += ([self.eos_id] if i else []) + self.encode_words(self.split(line))
        return torch.tensor(ids, dtype=torch.long)

    def decode(self, ids) -> str:
        """Words joined by spaces, ``<eos>`` as a line break, ``<pad>`` dropped."""
        lines, words = [], []
        for i in torch.as_tensor(ids).tolist():
            if i == self.eos_id:
                lines.append(" ".join(words))
                words = []
            elif i != self.pad_id:
                words.append(self.words[i])
        return "\n".join([*lines, " ".join(words)])

    def to_config(self) -> dict:
        return {"kind": self.kind, "words": self.words, "splitter": self.splitter, "lowercase": self.lowercase}
