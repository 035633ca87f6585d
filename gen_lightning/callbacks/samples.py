"""Log what a model generates at every validation epoch: image grids or text samples.

The module's ``preview(batch, generator)`` returns named images or texts (see docs/CONTRACT.md); this callback
feeds it a fixed validation batch and a generator seeded identically each time (fixed noise, so the grid of one
run evolves visibly), saves PNG grids, text files or TSV tables under ``RUN_DIR/samples/`` and hands them to every
logger.
"""

from __future__ import annotations

import math
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.fabric.utilities.apply_func import move_data_to_device
from torchvision.utils import make_grid, save_image

from gen_lightning import tracking
from gen_lightning.files import write_texts
from gen_lightning.run_dir import RunDir

MIN_CELL, MIN_WIDTH = 32, 256  # pixels: 8x8 digits are shown at least 32 px a side, a grid at least 256 px wide
PADDING, TITLE_BAND = 2, 14  # pixels between cells; height of the column-title band


def upscale(height: int, width: int, nrow: int, titles: tuple[str, ...] | None = None) -> int:
    """The integer factor that makes cells of ``height x width`` images readable: at least MIN_CELL px a side, the
    grid of ``nrow`` columns at least MIN_WIDTH px wide, a cell wide enough for its column title (1: large
    images stay as they are)."""
    scale = max(math.ceil(MIN_CELL / max(1, min(height, width))), math.ceil(MIN_WIDTH / max(1, nrow * width)))
    if titles:
        scale = max(scale, math.ceil((6 * max(map(len, titles)) + 4) / max(1, width)))  # ~6 px a character
    return max(1, scale)


def image_grid(images: torch.Tensor, nrow: int | None = None, titles: tuple[str, ...] | None = None) -> torch.Tensor:
    """(N, C, H, W) in [-1, 1] -> one (C', H', W') grid in [0, 1]: small images scaled up (nearest neighbour, so
    pixels stay pixels), ``nrow`` columns, and ``titles`` above the columns (repeated: ``("input", "output")``
    labels every pair of columns)."""
    nrow = nrow or max(1, int(math.ceil(math.sqrt(len(images)))))
    x = ((images.detach().float().cpu() + 1) / 2).clamp(0, 1)
    scale = upscale(x.shape[-2], x.shape[-1], min(nrow, len(x)), titles)
    if scale > 1:
        x = torch.nn.functional.interpolate(x, scale_factor=scale, mode="nearest")
    grid = make_grid(x, nrow=nrow, padding=PADDING, pad_value=1.0)
    return titled(grid, titles, min(nrow, len(x)), x.shape[-1] + PADDING) if titles else grid


PAIRED_MODES = {"reconstruct": "output", "inpaint": "inpainted", "edit": "edited"}  # input | result pairs


def mode_titles(mode: str, columns: int) -> tuple[str, ...] | None:
    """The column titles of a ``render`` mode's grid (docs/CONTRACT.md): input | result pairs, interpolation walks
    from t=0 to t=1, variations (an input, then draws); None for a mode without a fixed layout."""
    if mode in PAIRED_MODES:
        return ("input", PAIRED_MODES[mode])
    if mode == "interpolate" and columns >= 2:
        return ("t=0", *(f"{i}/{columns - 1}" for i in range(1, columns - 1)), "t=1")
    if mode == "variations" and columns >= 2:
        return ("input", *(f"draw {i}" for i in range(1, columns)))
    return None


def titled(grid: torch.Tensor, titles: tuple[str, ...], columns: int, cell: int) -> torch.Tensor:
    """``grid`` under a white band with ``titles[i % len(titles)]`` centred over column i."""
    from PIL import Image, ImageDraw, ImageFont

    band = Image.new("RGB", (grid.shape[-1], TITLE_BAND), "white")
    draw, font = ImageDraw.Draw(band), ImageFont.load_default()
    for i in range(columns):
        text = titles[i % len(titles)]
        width = draw.textlength(text, font=font)
        draw.text((PADDING + i * cell + (cell - PADDING - width) / 2, 1), text, fill="black", font=font)
    top = torch.from_numpy(np.array(band)).permute(2, 0, 1).float().div(255)[: grid.shape[0]]
    if grid.shape[0] == 1:
        top = top[:1]
    return torch.cat([top, grid], dim=1)


class SampleLogger(L.Callback):
    def __init__(self, run_dir: str | Path, every_n_epochs: int = 1, seed: int = 1234) -> None:
        self.run_dir = RunDir(run_dir)
        self.every_n_epochs = every_n_epochs
        self.seed = seed
        self._batch = None

    def _fixed_batch(self, trainer: L.Trainer):
        if self._batch is None:
            loaders = trainer.val_dataloaders
            loader = loaders[0] if isinstance(loaders, list | tuple) else loaders
            self._batch = next(iter(loader))
        return self._batch

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # A strategy that shards the parameters (trainer=fsdp) gathers them in each forward pass: every process
        # generates the preview, the first one writes it.
        everyone = getattr(trainer.strategy, "shards_parameters", False)
        if trainer.sanity_checking or not (trainer.is_global_zero or everyone) or self.every_n_epochs <= 0:
            return
        if (trainer.current_epoch + 1) % self.every_n_epochs and not trainer.fit_loop.done:
            return
        batch = move_data_to_device(self._fixed_batch(trainer), pl_module.device)  # a tuple or a dict (contract v2)
        generator = torch.Generator(device=pl_module.device).manual_seed(self.seed)
        with torch.no_grad():
            media = pl_module.preview(batch, generator)
        if not trainer.is_global_zero:
            return
        step = trainer.global_step
        for name, value in media.items():
            save_media(trainer, self.run_dir.sample(name, step), f"samples/{name}", value)


def save_media(trainer: L.Trainer, stem: Path, key: str, value) -> Path:
    """One preview value (docs/CONTRACT.md) to ``stem`` + .png / .txt / .tsv and to every logger under ``key``."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(value, torch.Tensor) or (isinstance(value, tuple) and isinstance(value[0], torch.Tensor)):
        images, columns, *titles = value if isinstance(value, tuple) else (value, None)
        grid = image_grid(images, columns, *titles)
        save_image(grid, stem.with_suffix(".png"))
        tracking.log_image(trainer, key, grid)
        return stem.with_suffix(".png")
    if value and isinstance(value[0], dict):  # a table: one dict a row
        columns = list(value[0])
        lines = ["\t".join(columns)] + [
            "\t".join(str(row[c]).replace("\t", " ").replace("\n", " ") for c in columns) for row in value
        ]
        stem.with_suffix(".tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
        tracking.log_table(trainer, key, columns, [[row[c] for c in columns] for row in value])
        return stem.with_suffix(".tsv")
    write_texts(stem.with_suffix(".txt"), value)
    tracking.log_texts(trainer, key, value)
    return stem.with_suffix(".txt")
