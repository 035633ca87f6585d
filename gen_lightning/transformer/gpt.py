"""GPT: a decoder-only Transformer language model trained by next-token prediction.

Radford et al. 2018/2019 (GPT, GPT-2), in the shape of Karpathy's nanoGPT: pre-norm blocks, causal
``F.scaled_dot_product_attention``, learned positions, tied input/output embeddings, AdamW with decay on
matrices only, linear warm-up then cosine decay stepped every optimizer step. Gradient clipping is the
Trainer's ``gradient_clip_val`` (automatic optimisation). Sampling uses a key/value cache, temperature, top-k
and top-p.
"""

from __future__ import annotations

import lightning as L
import torch
import torch.nn.functional as F

from gen_lightning.data.tokenizers import from_config
from gen_lightning.nn.optim import adamw_warmup_cosine, optimizer_args
from gen_lightning.nn.sampling import evaluating, sample_text
from gen_lightning.nn.token_metrics import TokenLossMetrics
from gen_lightning.transformer.nets import GPTNet, TransformerConfig

PREVIEW_SAMPLES, PREVIEW_LENGTH = 4, 200


class GPT(L.LightningModule):
    modality = "text"
    monitor = ("val/loss", "min")
    sample_modes: tuple[str, ...] = ()

    def __init__(
        self,
        tokenizer: dict,
        block_size: int = 256,
        num_layers: int = 6,
        num_heads: int = 6,
        hidden_dim: int = 384,
        dropout: float = 0.2,
        bias: bool = False,
        lr: float = 1e-3,
        min_lr: float = 1e-4,
        betas: tuple[float, float] = (0.9, 0.99),
        weight_decay: float = 0.1,
        warmup_steps: int = 100,
        lr_decay_steps: int = 5000,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.tokenizer = from_config(tokenizer)
        cfg = TransformerConfig(
            vocab_size=self.tokenizer.vocab_size,
            block_size=block_size,
            num_layers=num_layers,
            num_heads=num_heads,
            hidden_dim=hidden_dim,
            dropout=dropout,
            bias=bias,
            causal=True,
        )
        self.net = GPTNet(cfg)
        self.val_metrics = TokenLossMetrics("val")

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """(B, T) ids -> (B, T, V) next-token logits."""
        return self.net(idx)

    def _loss(self, batch) -> tuple[torch.Tensor, int]:
        inputs, targets = batch  # (B, T) each
        logits = self.net(inputs)  # (B, T, V)
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
        use_cache: bool = True,
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
                use_cache=use_cache,
            )

    def sample_info(self) -> dict:
        context = self.hparams.block_size
        return {"sampler": "ancestral", "kv_cache": True, "context": context, "weights": "raw"}

    def preview(self, batch, generator: torch.Generator) -> dict[str, list[str]]:
        return {"text": self.sample(PREVIEW_SAMPLES, PREVIEW_LENGTH, generator=generator)}
