"""A two-layer convolutional network that learns to un-mirror digits with an L1 loss: the toy family's model."""

from __future__ import annotations

import lightning as L
import torch
from torch import nn
from torchmetrics import MeanMetric


class Unmirror(L.LightningModule):
    task, source_modality, modality = "conditional", "image", "image"
    monitor = ("val/l1", "min")
    metric_directions = {"val/l1": "min"}

    def __init__(
        self,
        channels: int,
        image_size: int,
        source_channels: int,
        source_image_size: int,
        hidden_dim: int = 32,
        lr: float = 3e-3,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        # Mirroring is a global permutation of columns: a dense map per row, kept tiny.
        self.net = nn.Sequential(
            nn.Flatten(), nn.Linear(source_channels * source_image_size**2, hidden_dim * 4), nn.ReLU(),
            nn.Linear(hidden_dim * 4, channels * image_size**2),
        )  # fmt: skip
        self.val_l1 = MeanMetric()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hp = self.hparams
        return torch.tanh(self.net(x)).view(-1, hp.channels, hp.image_size, hp.image_size)

    def training_step(self, batch, batch_idx):
        loss = (self(batch["source"]) - batch["target"]).abs().mean()
        self.log("train/loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        self.val_l1.update((self(batch["source"]) - batch["target"]).abs().flatten(1).mean(1))
        self.log("val/l1", self.val_l1)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)

    @torch.no_grad()
    def generate(self, sources: torch.Tensor, generator: torch.Generator | None = None, **options) -> torch.Tensor:
        if options:
            raise ValueError(f"Unmirror.generate takes no options, got {sorted(options)}")
        hp = self.hparams
        if tuple(sources.shape[1:]) != (hp.source_channels, hp.source_image_size, hp.source_image_size):
            raise ValueError(
                f"Unmirror takes (N, {hp.source_channels}, {hp.source_image_size}, {hp.source_image_size}) images"
            )
        return self(sources.to(self.device))

    def sample_info(self) -> dict:
        return {"weights": "raw"}

    def preview(self, batch, generator: torch.Generator) -> dict:
        source, target = batch["source"][:8], batch["target"][:8]
        rows = torch.stack([source, self.generate(source), target], 1).flatten(0, 1)  # input | output | target
        return {"unmirrored": (rows, 3)}
