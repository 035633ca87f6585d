"""The tokenizer of a Hugging Face model folder, as a tokenizer of this package (kind ``hf``).

A folder written by ``save_pretrained`` holds its tokenizer as ``tokenizer.json`` (Hugging Face ``tokenizers``),
or in the older files: GPT-2's byte-level BPE as ``vocab.json`` + ``merges.txt`` (Radford et al. 2019), BERT's
WordPiece as ``vocab.txt`` (Devlin et al. 2019; lower-cased unless ``tokenizer_config.json`` says
``do_lower_case: false``). All three become one ``tokenizers`` JSON string, kept inside ``to_config()``'s plain
dict like the subword tokenizer's, so a checkpoint decodes on its own. Every file is read as data (JSON, text).

Special symbols come from the folder's ``special_tokens_map.json`` / ``tokenizer_config.json`` (BERT's [PAD],
[CLS], [SEP], [MASK], [UNK]; GPT-2's ``<|endoftext|>``). ``encode`` adds none of them (the data modules frame
sequences); ``decode`` drops them. ``vocab_size`` is the model's embedding rows (config.json), which may exceed
the tokenizer's own count.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers

from gen_lightning.data.text.subword import TokenizersModel

ROLES = ("pad", "bos", "eos", "unk", "cls", "sep", "mask")
DEFAULT_NAMES = {"pad": "[PAD]", "unk": "[UNK]", "cls": "[CLS]", "sep": "[SEP]", "mask": "[MASK]"}
FILES = "tokenizer.json, or vocab.json + merges.txt (GPT-2), or vocab.txt (BERT)"


class HFTokenizer(TokenizersModel):
    """A ``tokenizers`` model with the special ids of its folder; ids (N,) int64 like every tokenizer here."""

    kind = "hf"

    def __init__(self, model_json: str, vocab_size: int | None = None, specials: dict | None = None) -> None:
        self.model_json = model_json
        self._tok = Tokenizer.from_str(model_json)
        own = self._tok.get_vocab_size()
        if vocab_size is not None and vocab_size < own:
            raise ValueError(f"the tokenizer has {own} symbols, more than the model's vocab_size {vocab_size}")
        self._vocab_size = vocab_size or own
        self.specials = {role: specials[role] for role in ROLES if (specials or {}).get(role) is not None}
        # pad_id, ..., mask_id: None for a role the folder does not define (GPT-2 has no [CLS])
        self.pad_id, self.bos_id, self.eos_id, self.unk_id, self.cls_id, self.sep_id, self.mask_id = (
            self.specials.get(role) for role in ROLES
        )

    @property
    def vocab_size(self) -> int:
        return self._vocab_size

    def decode(self, ids: Sequence[int] | torch.Tensor) -> str:
        """The text of ``ids``, special symbols dropped (ids beyond the tokenizer's own symbols too)."""
        ids = ids.tolist() if isinstance(ids, torch.Tensor) else list(ids)
        own = self._tok.get_vocab_size()
        return self._tok.decode([i for i in ids if i < own], skip_special_tokens=True)

    def decode_batch(self, rows: Sequence[Sequence[int]]) -> list[str]:
        return [self.decode(r) for r in rows]

    def to_config(self) -> dict:
        ids = {f"{role}_id": value for role, value in self.specials.items()}
        return {"kind": self.kind, "vocab_size": self.vocab_size, **ids, "model": self.model_json}

    @classmethod
    def from_config(cls, config: dict) -> HFTokenizer:
        if "model" not in config:
            raise ValueError(f"a Hugging Face tokenizer description lacks 'model': {sorted(config)}")
        specials = {role: config.get(f"{role}_id") for role in ROLES}
        return cls(config["model"], config.get("vocab_size"), specials)


def _json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _model_json(folder: Path, settings: dict) -> str:
    """The folder's tokenizer as one ``tokenizers`` JSON string."""
    if (folder / "tokenizer.json").is_file():
        return Tokenizer.from_file(str(folder / "tokenizer.json")).to_str()
    if (folder / "vocab.json").is_file() and (folder / "merges.txt").is_file():  # GPT-2's byte-level BPE
        tok = Tokenizer(models.BPE.from_file(str(folder / "vocab.json"), str(folder / "merges.txt")))
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        return tok.to_str()
    if (folder / "vocab.txt").is_file():  # BERT's WordPiece
        tok = Tokenizer(models.WordPiece.from_file(str(folder / "vocab.txt"), unk_token="[UNK]"))
        tok.normalizer = normalizers.BertNormalizer(lowercase=settings.get("do_lower_case", True))
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tok.decoder = decoders.WordPiece()
        return tok.to_str()
    raise FileNotFoundError(f"{folder} holds no tokenizer ({FILES}): save it beside the model "
                            "(tokenizer.save_pretrained(folder))")  # fmt: skip


def _name(value) -> str | None:
    """A special token as the folder's JSON writes it: a string, or ``{"content": ...}``."""
    return value.get("content") if isinstance(value, dict) else value


def read_folder(folder: str | Path, vocab_size: int | None = None) -> HFTokenizer:
    """The tokenizer of a Hugging Face model folder (``vocab_size``: the model's embedding rows)."""
    folder = Path(folder)
    settings = {**_json(folder / "tokenizer_config.json"), **_json(folder / "special_tokens_map.json")}
    tok = Tokenizer.from_str(model_json := _model_json(folder, settings))
    specials = {}
    for role in ROLES:
        name = _name(settings.get(f"{role}_token")) or DEFAULT_NAMES.get(role)
        specials[role] = tok.token_to_id(name) if name else None
    return HFTokenizer(model_json, vocab_size, specials)
