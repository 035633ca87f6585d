"""Classification networks in plain PyTorch: a body from the sequence families, a pooling, one shared head.

Bodies keep the parameter names of the language models they come from, so a pre-trained language model's weights
load into them by name (gen_lightning/run/init_from.py):
- ``bert``: the bidirectional encoder of ``BERTNet`` (gen_lightning/transformer/nets.py; Devlin et al. 2019),
  with its [MASK] row in the embedding; padded positions are masked out of attention;
- ``gpt``: the causal decoder of ``GPTNet`` (Radford et al. 2018): with right padding a real token never sees a
  padded one, so no mask is needed;
- ``lstm`` / ``gru``: the embedding and recurrent layers of ``RNNNet`` (gen_lightning/rnn/nets.py), read left to
  right as the language model was trained (right padding cannot reach a real position).

Poolings of the states (B, S, C) into one vector (B, C): ``first`` (BERT's [CLS] position: here the [MASK]
symbol, prepended to every text, as the model has no [CLS] symbol and no next-sentence task that would train one;
fine-tuning teaches it), ``last`` (the last real token: GPT, Radford et al. 2018, section 3.3; and the RNNs'
final state), ``mean`` and ``max`` over real tokens. The head is BERT's: dropout, a dense tanh layer (its
"pooler"), dropout, a linear layer to the class logits; the same for every body, so families compare on one task.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from gen_lightning.rnn.nets import CELLS
from gen_lightning.transformer.nets import Transformer, TransformerConfig, init_weights

BODIES = ("bert", "gpt", "lstm", "gru")
POOLINGS = ("first", "last", "mean", "max")
DEFAULT_POOLING = {"bert": "first", "gpt": "last", "lstm": "last", "gru": "last"}


class TransformerBody(nn.Module):
    """ids (B, S) and mask (B, S) -> states (B, S, C) of GPT's decoder or BERT's encoder."""

    pretrained = ("transformer.",)  # the parameters a language model's checkpoint provides

    def __init__(self, cfg: TransformerConfig, cls_id: int | None = None) -> None:
        super().__init__()
        self.causal = cfg.causal
        # BERT's encoder embeds V + 1 symbols (the last is [MASK]), as BERTNet does; GPT's embeds V.
        self.mask_id = cfg.vocab_size
        # Prepended for ``first`` pooling: the tokenizer's [CLS] where it has one (a Hugging Face BERT's), else [MASK].
        self.cls_id = self.mask_id if cls_id is None else cls_id
        vocab = cfg.vocab_size + (0 if cfg.causal else 1)
        self.transformer = Transformer(TransformerConfig(**{**cfg.__dict__, "vocab_size": vocab}))
        init_weights(self, cfg.num_layers)
        self.block_size = cfg.block_size
        self.width = cfg.hidden_dim

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.transformer(ids, key_mask=None if self.causal else mask)  # (B, S, C)


class RNNBody(nn.Module):
    """ids (B, S) and mask -> states (B, S, H) of an LSTM/GRU read left to right (``RNNNet`` without its head), or
    (B, S, 2H) read both ways (``bidirectional``: Schuster & Paliwal 1997; trained from scratch only, as a language
    model reads one way). Sequences are packed, so padding never enters a state in either direction."""

    pretrained = ("embed.", "rnn.")
    causal = True
    block_size = None

    def __init__(
        self, vocab_size: int, cell: str, hidden_dim: int, num_layers: int, dropout: float, bidirectional: bool = False
    ) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, hidden_dim)
        between = dropout if num_layers > 1 else 0.0  # PyTorch's own dropout acts only between layers
        self.rnn = CELLS[cell](
            hidden_dim, hidden_dim, num_layers, batch_first=True, dropout=between, bidirectional=bidirectional
        )
        self.drop = nn.Dropout(dropout)
        self.width = hidden_dim * (2 if bidirectional else 1)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        lengths = mask.sum(dim=1).cpu()  # (B,) real tokens, right-padded
        packed = pack_padded_sequence(self.drop(self.embed(ids)), lengths, batch_first=True, enforce_sorted=False)
        states, _ = pad_packed_sequence(self.rnn(packed)[0], batch_first=True, total_length=ids.size(1))
        return self.drop(states)  # (B, S, H or 2H), zeros at padded positions


def pool(states: torch.Tensor, mask: torch.Tensor, how: str) -> torch.Tensor:
    """(B, S, C) states and (B, S) mask (True at real tokens, right-padded) -> (B, C)."""
    if how == "first":
        return states[:, 0]
    if how == "last":
        last = mask.long().sum(dim=1) - 1  # (B,) index of each row's last real token
        return states[torch.arange(states.size(0), device=states.device), last]
    keep = mask[..., None]  # (B, S, 1)
    if how == "mean":
        return (states * keep).sum(dim=1) / keep.sum(dim=1).clamp(min=1)
    return states.masked_fill(~keep, float("-inf")).amax(dim=1)


class ClassifierHead(nn.Module):
    """(B, C) pooled state -> (B, num_classes) logits: BERT's pooler (dense + tanh) and a linear classifier."""

    def __init__(self, hidden_dim: int, num_classes: int, dropout: float) -> None:
        super().__init__()
        self.drop = nn.Dropout(dropout)
        self.dense = nn.Linear(hidden_dim, hidden_dim)
        self.out = nn.Linear(hidden_dim, num_classes)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.out(self.drop(torch.tanh(self.dense(self.drop(pooled)))))


def build_body(body: str, vocab_size: int, cls_id: int | None = None, **shape) -> TransformerBody | RNNBody:
    """The body named ``body`` with the shape hyperparameters of its language model (and, for transformers, the
    layout options of ``TransformerConfig`` it gives)."""
    if body not in BODIES:
        raise ValueError(f"body must be one of {BODIES}, got {body!r}")
    if body in CELLS:
        args = (vocab_size, body, shape["hidden_dim"], shape["num_layers"], shape["dropout"])
        return RNNBody(*args, bidirectional=shape.get("bidirectional", False))
    sizes = ("block_size", "num_layers", "num_heads", "hidden_dim", "dropout", "bias")
    layout = {k: shape[k] for k in TransformerConfig.layout_defaults() if k in shape}
    cfg = TransformerConfig(vocab_size=vocab_size, causal=body == "gpt", **{k: shape[k] for k in sizes}, **layout)
    return TransformerBody(cfg, cls_id)
