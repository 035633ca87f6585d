"""Tiny randomly initialised Hugging Face GPT-2 and BERT folders, written as ``save_pretrained`` writes them, with
their tokenizers in the older files (GPT-2: vocab.json + merges.txt; BERT: vocab.txt) or as tokenizer.json. Built
with ``transformers`` (the tests' reference implementation), no network."""

from __future__ import annotations

import json
from pathlib import Path

import torch


def corpus() -> str:
    from gen_lightning.data.text.corpus import embedded_text

    return embedded_text()[:20000]


def gpt2_tokenizer(folder: Path, vocab_size: int = 300) -> int:
    """A byte-level BPE trained on the embedded text, saved as GPT-2's vocab.json + merges.txt."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<|endoftext|>"], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())  # fmt: skip
    tok.train_from_iterator(corpus().split("\n"), trainer)
    folder.mkdir(parents=True, exist_ok=True)
    tok.model.save(str(folder))
    end = "<|endoftext|>"
    (folder / "special_tokens_map.json").write_text(json.dumps({"bos_token": end, "eos_token": end, "unk_token": end}))
    return tok.get_vocab_size()


def bert_vocab(folder: Path) -> int:
    """BERT's WordPiece vocabulary of the lower-cased characters of the embedded text (and their ## pieces)."""
    chars = sorted({c for c in corpus().lower() if not c.isspace()})
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *chars, *(f"##{c}" for c in chars)]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(words) + "\n")
    return len(words)


def gpt2_folder(folder: Path, seed: int = 0, **config):
    from transformers import GPT2Config, GPT2LMHeadModel

    vocab = gpt2_tokenizer(folder)
    torch.manual_seed(seed)
    sizes = dict(n_embd=32, n_layer=2, n_head=2, n_positions=64, bos_token_id=0, eos_token_id=0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=vocab, **{**sizes, **config})).eval()
    model.save_pretrained(folder)
    return model


def bert_folder(folder: Path, seed: int = 0, kind: str = "mlm", **config):
    from transformers import BertConfig, BertForMaskedLM, BertForSequenceClassification

    vocab = bert_vocab(folder)
    torch.manual_seed(seed)
    sizes = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128,
                 max_position_embeddings=64)  # fmt: skip
    cls = BertForMaskedLM if kind == "mlm" else BertForSequenceClassification
    model = cls(BertConfig(vocab_size=vocab, **{**sizes, **config})).eval()
    model.save_pretrained(folder)
    return model
