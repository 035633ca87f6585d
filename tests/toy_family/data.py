"""Pairs (mirrored digit -> digit) from scikit-learn's 8x8 digits: the toy family's data module."""

from __future__ import annotations

import lightning as L
import torch
from torch.utils.data import Dataset, default_collate

from gen_lightning.data.images import ImageDataModule
from gen_lightning.data.loaders import evaluation_loader, train_loader


class Pairs(Dataset):
    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict:
        target = self.images[i].float().div(127.5).sub(1.0)  # (1, 8, 8) in [-1, 1]
        return {
            "source": target.flip(-1),
            "target": target,
            "source_label": self.labels[i],
            "target_label": self.labels[i],
        }


class MirroredDigits(L.LightningDataModule):
    task, source_modality, modality = "conditional", "image", "image"
    paired = True

    def __init__(self, batch_size: int = 64, seed: int = 0) -> None:
        super().__init__()
        self.save_hyperparameters(logger=False)
        self.digits = ImageDataModule(source="digits", image_size=8, seed=seed)
        self.splits: dict[str, Pairs] = {}

    def setup(self, stage: str | None = None) -> None:
        if not self.splits:
            self.digits.setup(stage)
            self.splits = {k: Pairs(v.images, v.labels) for k, v in self.digits.splits.items()}

    def model_kwargs(self) -> dict:
        return {"channels": 1, "image_size": 8, "source_channels": 1, "source_image_size": 8}

    def train_dataloader(self):
        return train_loader(self.splits["train"], self.hparams.batch_size, seed=self.hparams.seed)

    def val_dataloader(self):
        return evaluation_loader(self.splits["val"], None, 128, default_collate)

    def evaluation_loader(self, split: str, num_items: int | None, batch_size: int):
        return evaluation_loader(self.splits[split], num_items, batch_size, default_collate)
