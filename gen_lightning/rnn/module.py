"""Character RNN language model (LSTM or GRU) trained by next-token prediction.

Karpathy's char-rnn (2015) as a LightningModule: cross-entropy of the next character over windows of
``block_size`` characters, each window starting from a zero state (random windows, as nanoGPT, rather than
char-rnn's sequential truncated back-propagation through time). Optimiser: AdamW with decay on matrices only
and the same warm-up + cosine schedule as GPT (``gen_lightning/nn/optim.py``), so the families differ only in
their networks; clip gradients with the Trainer's ``gradient_clip_val`` (char-rnn clips at 5).
"""

from __future__ import annotations

import torch

from gen_lightning.data.text.tokenizers import from_config
from gen_lightning.nn.language_model import LanguageModel
from gen_lightning.rnn.nets import RNNNet


class CharRNN(LanguageModel):
    def __init__(
        self,
        tokenizer: dict,
        cell: str = "lstm",
        hidden_dim: int = 512,
        num_layers: int = 2,
        dropout: float = 0.2,
        lr: float = 2e-3,
        min_lr: float = 2e-4,
        betas: tuple[float, float] = (0.9, 0.99),
        weight_decay: float = 0.0,
        warmup_steps: int = 0,
        lr_decay_steps: int = 5000,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.tokenizer = from_config(tokenizer)
        self.net = RNNNet(self.tokenizer.vocab_size, cell, hidden_dim, num_layers, dropout)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """(B, T) ids -> (B, T, V) next-token logits, from a zero state."""
        return self.net(idx)[0]

    def sample_info(self) -> dict:
        return {"sampler": "ancestral", "cell": self.hparams.cell, "weights": "raw"}
