"""Image grids a person can read (gen_lightning/callbacks/samples.py): small images scaled up pixel for pixel,
columns titled."""

from __future__ import annotations

import torch

from gen_lightning.callbacks.samples import MIN_CELL, MIN_WIDTH, PADDING, TITLE_BAND, image_grid, mode_titles, upscale


def test_small_images_are_scaled_up_pixel_for_pixel_and_large_ones_kept():
    digits = torch.rand(64, 1, 8, 8) * 2 - 1
    grid = image_grid(digits)  # 8 x 8 cells
    cell = (grid.shape[-1] - PADDING) // 8 - PADDING
    assert cell >= MIN_CELL and grid.shape[-1] >= MIN_WIDTH and grid.shape[-1] == grid.shape[-2]
    scale = cell // 8
    first = grid[0, PADDING : PADDING + cell, PADDING : PADDING + cell]
    expected = ((digits[0, 0] + 1) / 2).repeat_interleave(scale, 0).repeat_interleave(scale, 1)
    torch.testing.assert_close(first, expected)  # nearest neighbour: every pixel a block, nothing blurred
    large = image_grid(torch.zeros(16, 3, 64, 64), 4)  # already 256 px wide: kept as it is
    assert large.shape == (3, 4 * (64 + PADDING) + PADDING, 4 * (64 + PADDING) + PADDING)


def test_titled_columns_sit_above_the_grid():
    pairs = torch.full((8, 1, 8, 8), -1.0)  # black images: the band's dark pixels are the titles' only ink
    titles = mode_titles("reconstruct", 8)
    titled = image_grid(pairs, 8, titles)
    assert titled.shape[-2] == TITLE_BAND + 8 * upscale(8, 8, 8, titles) + 2 * PADDING
    band = titled[:, :TITLE_BAND]
    cell = (titled.shape[-1] - PADDING) // 8
    ink = [(band[:, :, PADDING + i * cell : (i + 1) * cell] < 0.5).sum().item() for i in range(8)]
    assert all(ink) and ink[0] == ink[2] and ink[1] == ink[3] and ink[0] != ink[1]  # "input", "output", ...
    assert set(titled[:, TITLE_BAND:].unique().tolist()) == {0.0, 1.0}  # below the band: the images and borders


def test_mode_titles_name_the_columns_of_each_layout():
    assert mode_titles("reconstruct", 8) == ("input", "output")
    assert mode_titles("interpolate", 5) == ("t=0", "1/4", "2/4", "3/4", "t=1")
    assert mode_titles("variations", 3) == ("input", "draw 1", "draw 2")
    assert mode_titles("sample", 8) is None
