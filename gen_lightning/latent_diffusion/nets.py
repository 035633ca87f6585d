"""The denoiser of latent vectors, in plain PyTorch: a residual MLP conditioned on the timestep (and the class).

The project's autoencoders (``vae/``, MLP or convolutional) encode an image to a vector z (B, D), so the denoiser
is an MLP, not a U-Net: pre-norm residual blocks (LayerNorm, SiLU, Linear; as the MLP blocks of a Transformer)
into which the sinusoidal timestep embedding of Ho et al. 2020 (and a class embedding with a null class for
classifier-free guidance, Ho & Salimans 2022) is added, and a zero-initialised output layer so the untrained
model predicts eps = 0 (improved-diffusion's convention, as ``diffusion.nets.UNet``).
"""

from __future__ import annotations

import torch
from torch import nn

from gen_lightning.diffusion.nets import timestep_embedding, zero_init


class Block(nn.Module):
    def __init__(self, hidden_dim: int, dropout: float) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(hidden_dim)
        self.emb = nn.Linear(hidden_dim, hidden_dim)
        self.body = nn.Sequential(
            nn.SiLU(),
            nn.Linear(hidden_dim, 2 * hidden_dim),
            nn.SiLU(),
            nn.Dropout(dropout),
            nn.Linear(2 * hidden_dim, hidden_dim),
        )

    def forward(self, h: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        return h + self.body(self.norm(h) + self.emb(emb))  # (B, H)


class LatentMLP(nn.Module):
    """eps (or v) prediction for latents: ``(x_t (B, D), t (B,)[, labels (B,)]) -> (B, D)``."""

    def __init__(
        self, latent_dim: int, hidden_dim: int = 256, num_layers: int = 4, dropout: float = 0.0, num_classes: int = 0
    ) -> None:
        super().__init__()
        if latent_dim < 1 or hidden_dim < 2 or num_layers < 1:
            raise ValueError(
                f"LatentMLP needs latent_dim >= 1, hidden_dim >= 2 and num_layers >= 1, got {latent_dim}, "
                f"{hidden_dim}, {num_layers}"
            )
        self.hidden_dim = hidden_dim
        self.inp = nn.Linear(latent_dim, hidden_dim)
        self.time = nn.Sequential(nn.Linear(hidden_dim, hidden_dim), nn.SiLU(), nn.Linear(hidden_dim, hidden_dim))
        # Class num_classes is the null class of classifier-free guidance.
        self.label = nn.Embedding(num_classes + 1, hidden_dim) if num_classes else None
        self.blocks = nn.ModuleList(Block(hidden_dim, dropout) for _ in range(num_layers))
        self.out = nn.Sequential(nn.LayerNorm(hidden_dim), nn.SiLU(), zero_init(nn.Linear(hidden_dim, latent_dim)))

    def forward(self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        emb = self.time(timestep_embedding(t, self.hidden_dim))  # (B, H)
        if self.label is not None:
            if labels is None:
                raise ValueError("this LatentMLP is class-conditional: pass labels (num_classes = the null class)")
            emb = emb + self.label(labels)
        h = self.inp(x)  # (B, H)
        for block in self.blocks:
            h = block(h, emb)
        return self.out(h)  # (B, D)
