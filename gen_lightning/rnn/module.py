"""Character RNN language model (LSTM or GRU) trained by next-token prediction.

Karpathy's char-rnn (2015) as a LightningModule: cross-entropy of the next character over windows of
``block_size`` characters, each window starting from a zero state (random windows, as nanoGPT, rather than
char-rnn's sequential truncated back-propagation through time). Optimiser: AdamW with decay on matrices only
and the same warm-up + cosine schedule as GPT (``gen_lightning/nn/optim.py``), so the families differ only in
their networks; clip gradients with the Trainer's ``gradient_clip_val`` (char-rnn clips at 5).
"""

from __future__ import annotations

import torch

from gen_lightning.nn import hparams
from gen_lightning.nn.language_model import LanguageModel
from gen_lightning.rnn.nets import RNNConfig, RNNNet


class CharRNN(LanguageModel):
    settings = (RNNConfig,)
    defaults = {"lr": 2e-3, "min_lr": 2e-4, "betas": (0.9, 0.99), "weight_decay": 0.0, "warmup_steps": 0,
                "lr_decay_steps": 5000}  # fmt: skip

    def __init__(self, tokenizer: dict, **settings) -> None:
        super().__init__(tokenizer, settings)
        self.net = RNNNet(hparams.config(RNNConfig, self.hparams, vocab_size=self.tokenizer.vocab_size))

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """(B, T) ids -> (B, T, V) next-token logits, from a zero state."""
        return self.net(idx)[0]

    def sample_info(self) -> dict:
        return {"sampler": "ancestral", "cell": self.hparams.cell, "weights": "raw"}
