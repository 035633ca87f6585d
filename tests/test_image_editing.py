"""Editing a given image: VAE variations (draws of q(z|x)) and SDEdit with DDPM (gen_lightning/diffusion/edit.py)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from conftest import preset, tiny_overrides
from PIL import Image

from gen_lightning.callbacks.samples import PADDING, TITLE_BAND, mode_titles, upscale
from gen_lightning.commands.sample import sample_command
from gen_lightning.config import compose
from gen_lightning.data.images import ImageDataModule
from gen_lightning.diffusion.edit import edit_timesteps
from gen_lightning.diffusion.module import DDPM
from gen_lightning.run import train
from gen_lightning.vae.module import VAE

TINY_UNET = dict(hidden_dim=8, channel_mult=[1, 2], num_res_blocks=1, attention_resolutions=[], num_timesteps=50)


def digits(n: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    dm = ImageDataModule(source="digits", image_size=8)
    dm.setup("fit")
    return next(iter(dm.reference_loader("val", n)))


def g(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_sdedit_strength_zero_keeps_the_input_and_one_ignores_it():
    torch.manual_seed(0)
    model = DDPM(channels=1, image_size=8, **TINY_UNET, sample_steps=10).eval()
    images, _ = digits(4)
    assert torch.equal(model.edit(images, strength=0.0, generator=g()), images)
    other = -images.flip(0)
    full_a, full_b = model.edit(images, 1.0, generator=g()), model.edit(other, 1.0, generator=g())
    assert torch.equal(full_a, full_b)  # the input plays no part ...
    assert torch.equal(full_a, model.sample(4, generator=g()))  # ... it is a sample from pure noise
    half_a, half_b = model.edit(images, 0.5, generator=g()), model.edit(other, 0.5, generator=g())
    assert not torch.allclose(half_a, half_b)  # in between, the input shows through
    # DDIM with 10 of 50 steps (49, 44, ..., 4): strength 0.5 denoises from the first step below t = 25.
    assert edit_timesteps(model.process, 0.5, "ddim", 10) == [24, 19, 14, 9, 4, -1]
    with pytest.raises(ValueError, match="strength must be in \\[0, 1\\]"):
        model.edit(images, 1.5)


def test_sdedit_steers_a_conditional_model_and_checks_labels():
    torch.manual_seed(0)
    model = DDPM(channels=1, image_size=8, num_classes=10, conditional=True, **TINY_UNET, sample_steps=5, ema_decay=0)
    for p in model.net.parameters():  # an untrained U-Net's zero output layer ignores the class: give it weights
        torch.nn.init.normal_(p, std=0.1)
    model.eval()
    images, _ = digits(3)
    to_seven = model.edit(images, 0.6, generator=g(), labels=[7], guidance=3.0)
    no_class = model.edit(images, 0.6, generator=g(), labels=[-1, -1, -1])
    assert to_seven.shape == images.shape and not torch.allclose(to_seven, no_class)
    assert torch.equal(no_class, model.edit(images, 0.6, generator=g()))  # unknown classes: the null class
    with pytest.raises(ValueError, match="labels must lie in \\[0, 9\\]"):
        model.edit(images, 0.6, labels=[12])
    with pytest.raises(ValueError, match="unconditional"):
        DDPM(channels=1, image_size=8, **TINY_UNET).edit(images, 0.5, labels=[3])


def test_vae_variations_stay_closer_to_their_input_than_prior_samples():
    """After a short training on the digits, draws of q(z|x) decode near x; draws of p(z) do not."""
    dm = ImageDataModule(source="digits", image_size=8, batch_size=64)
    dm.setup("fit")
    torch.manual_seed(0)
    model = VAE(channels=1, image_size=8, num_classes=10, latent_dim=8, hidden_dim=128, lr=3e-3)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    batches = [x for _ in range(13) for x, _ in dm.train_dataloader()]  # 13 epochs of 23 batches
    for x in batches:
        recon, kl = model.elbo_terms(x)
        opt.zero_grad()
        (recon + kl).mean().backward()
        opt.step()
    images, labels = digits(32)
    grid, columns = model.render("variations", images, labels, n=8, generator=g())
    assert columns == 9 and grid.shape == (32 * 9, 1, 8, 8)
    rows = grid.view(32, 9, 1, 8, 8)
    assert torch.equal(rows[:, 0], images)  # each row starts with its input
    near = F.mse_loss(rows[:, 1:], images[:, None].expand(-1, 8, -1, -1, -1))
    prior = model.sample(32 * 8, generator=g(1)).view(32, 8, 1, 8, 8)
    far = F.mse_loss(prior, images[:, None].expand(-1, 8, -1, -1, -1))
    assert near < 0.5 * far
    assert not torch.equal(rows[:, 1], rows[:, 2])  # draws, not the posterior mean repeated


@pytest.mark.parametrize(("model", "mode", "options"), [("vae", "variations", []), ("ddpm", "edit", ["strength=0.5"])])
def test_sample_command_edits_image_files(tmp_path, model, mode, options):
    run_dir = tmp_path / "run"
    train.fit(compose(tiny_overrides(run_dir, "trainer.max_steps=2", model=model)))
    folder = tmp_path / "inputs"
    folder.mkdir()
    images, _ = digits(3)
    for i, image in enumerate(images):
        Image.fromarray(((image[0] + 1) * 127.5).round().byte().numpy()).save(folder / f"{i}.png")
    kwargs = dict(o.split("=") for o in options)
    kwargs = {k: float(v) for k, v in kwargs.items()}
    out = sample_command(str(run_dir / "checkpoints" / "last.ckpt"), n=4, mode=mode, input=str(folder),
                         out=str(tmp_path / "grid.png"), **kwargs)  # fmt: skip
    with Image.open(out) as grid:
        per_row = 5 if mode == "variations" else 2 * 4  # input + 4 draws; (input, edit) pairs, 12 -> 4 per row
        cell = 8 * upscale(8, 8, per_row, mode_titles(mode, per_row)) + PADDING  # scaled up, titled by column
        assert grid.size == (per_row * cell + PADDING, TITLE_BAND + 3 * cell + PADDING)
    again = sample_command(str(run_dir / "checkpoints" / "last.ckpt"), n=4, mode=mode, input=str(folder),
                           out=str(tmp_path / "again.png"), **kwargs)  # fmt: skip
    assert again.read_bytes() == out.read_bytes()  # seed=0 by default: reproducible
    assert preset(model) is not None
