"""Character RNN language model (LSTM or GRU) trained by next-token prediction.

Karpathy's char-rnn (2015) as a LightningModule: cross-entropy of the next character over windows of
``block_size`` characters, each window starting from a zero state (random windows, as nanoGPT, rather than
char-rnn's sequential truncated back-propagation through time). Optimiser: AdamW with decay on matrices only
and the same warm-up + cosine schedule as GPT (``gen_lightning/nn/optim.py``), so the families differ only in
their networks; clip gradients with the Trainer's ``gradient_clip_val`` (char-rnn clips at 5).
"""

from __future__ import annotations

import lightning as L
import torch
import torch.nn.functional as F

from gen_lightning.data.tokenizers import from_config
from gen_lightning.nn.optim import adamw_warmup_cosine, optimizer_args
from gen_lightning.nn.sampling import evaluating, sample_text
from gen_lightning.nn.token_metrics import TokenLossMetrics
from gen_lightning.rnn.nets import RNNNet

PREVIEW_SAMPLES, PREVIEW_LENGTH = 4, 200


class CharRNN(L.LightningModule):
    modality = "text"
    monitor = ("val/loss", "min")
    sample_modes: tuple[str, ...] = ()

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
        self.val_metrics = TokenLossMetrics("val")

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """(B, T) ids -> (B, T, V) next-token logits, from a zero state."""
        return self.net(idx)[0]

    def _loss(self, batch) -> tuple[torch.Tensor, int]:
        inputs, targets = batch  # (B, T) each
        logits = self(inputs)  # (B, T, V)
        return F.cross_entropy(logits.flatten(0, 1), targets.flatten()), targets.numel()

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        loss, _ = self._loss(batch)
        self.log("train/loss", loss, on_step=True, on_epoch=False, prog_bar=True)
        return loss

    def validation_step(self, batch, batch_idx: int) -> None:
        loss, num_tokens = self._loss(batch)
        self.val_metrics.update(loss, num_tokens)
        self.val_metrics.log_to(self, batch_size=batch[0].size(0))

    def configure_optimizers(self):
        return adamw_warmup_cosine(self.net.named_parameters(), **optimizer_args(self.hparams))

    def sample(
        self,
        n: int,
        length: int,
        prompt: str = "",
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        generator: torch.Generator | None = None,
    ) -> list[str]:
        """n texts: the prompt followed by ``length`` sampled tokens (all randomness from ``generator``)."""
        with evaluating(self):
            return sample_text(
                self.net.generate,
                self.tokenizer,
                n,
                length,
                prompt,
                self.device,
                temperature=temperature,
                top_k=top_k,
                top_p=top_p,
                generator=generator,
            )

    def sample_info(self) -> dict:
        return {"sampler": "ancestral", "cell": self.hparams.cell, "weights": "raw"}

    def preview(self, batch, generator: torch.Generator) -> dict[str, list[str]]:
        return {"text": self.sample(PREVIEW_SAMPLES, PREVIEW_LENGTH, generator=generator)}
