"""Character-level recurrent language models in plain PyTorch (LSTM or GRU).

Karpathy's char-rnn ("The Unreasonable Effectiveness of Recurrent Neural Networks", 2015): an input embedding,
``num_layers`` stacked recurrent layers of ``hidden_dim`` units with dropout between them, dropout before a
linear head over the vocabulary. LSTM: Hochreiter & Schmidhuber 1997; GRU: Cho et al. 2014. Generation carries
the recurrent state forward one token at a time, so a sample can be as long as wanted.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from gen_lightning.nn.sampling import sample_next

CELLS = {"lstm": nn.LSTM, "gru": nn.GRU}


@dataclass
class RNNConfig:
    vocab_size: int
    cell: str = "lstm"  # lstm or gru
    hidden_dim: int = 512  # embedding and recurrent state width
    num_layers: int = 2  # stacked recurrent layers
    dropout: float = 0.2  # between recurrent layers and before the output head

    def __post_init__(self) -> None:
        if self.cell not in CELLS:
            raise ValueError(f"cell must be one of {sorted(CELLS)}, got {self.cell!r}")


class RNNNet(nn.Module):
    """ids (B, T) (and a state) -> next-token logits (B, T, V) and the new state."""

    def __init__(self, cfg: RNNConfig) -> None:
        super().__init__()
        self.embed = nn.Embedding(cfg.vocab_size, cfg.hidden_dim)
        # nn.LSTM/GRU apply dropout to the outputs of every layer but the last; self.drop covers the last.
        self.rnn = CELLS[cfg.cell](
            cfg.hidden_dim, cfg.hidden_dim, cfg.num_layers, batch_first=True, dropout=cfg.dropout
        )
        self.drop = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(cfg.hidden_dim, cfg.vocab_size)

    def forward(self, idx: torch.Tensor, state=None):
        h, state = self.rnn(self.drop(self.embed(idx)), state)  # (B, T, H)
        return self.head(self.drop(h)), state  # (B, T, V)

    @torch.no_grad()
    def generate(
        self,
        idx: torch.Tensor,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Append ``max_new_tokens`` sampled ids to (B, P) ``idx``: the prompt once, then one step per id."""
        logits, state = self(idx)
        for _ in range(max_new_tokens):
            next_id = sample_next(logits[:, -1], temperature, top_k, top_p, generator)  # (B, 1)
            idx = torch.cat([idx, next_id], dim=1)
            logits, state = self(next_id, state)
        return idx
