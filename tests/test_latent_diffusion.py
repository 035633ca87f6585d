"""Latent diffusion (gen_lightning/latent_diffusion): a diffusion model of a frozen VAE's codes.

The autoencoder is the 8-dimensional MLP VAE of the digits in tests/fixtures (the tiny preset's). Checked: the
autoencoder stays frozen and out of the optimiser, the latent scale is 1 / std of the first batch's codes, a
checkpoint is self-contained (it samples identically after the autoencoder's file is gone), every sampler and
SDEdit work through the shared diffusion code, bad autoencoders are refused clearly, a short training learns the
code distribution, and an interrupted run resumes exactly.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import lightning as L
import pytest
import torch
from conftest import preset, tiny_overrides
from PIL import Image
from test_resume import assert_same_weights
from test_resume import run as resumable_run

from gen_lightning.callbacks import ExactResume
from gen_lightning.callbacks.samples import PADDING, TITLE_BAND, upscale
from gen_lightning.commands.sample import sample_command
from gen_lightning.config import compose
from gen_lightning.data.images import ImageDataModule
from gen_lightning.diffusion.samplers import sampler_names
from gen_lightning.latent_diffusion import LatentDDPM
from gen_lightning.run import checkpoint as ckpt_io
from gen_lightning.run import train

FIXTURE = Path(__file__).parent / "fixtures" / "latent_vae_digits.ckpt"
TINY = dict(hidden_dim=32, num_layers=2, num_timesteps=100, sample_steps=5, sample_time_batch=0, warmup_steps=10)


def digits(batch_size: int = 64) -> ImageDataModule:
    dm = ImageDataModule(source="digits", image_size=8, batch_size=batch_size)
    dm.setup("fit")
    return dm


def model(ckpt: Path = FIXTURE, **kwargs) -> LatentDDPM:
    torch.manual_seed(0)
    return LatentDDPM(channels=1, image_size=8, num_classes=10, autoencoder_ckpt=str(ckpt), **TINY | kwargs)


def fit(module: LatentDDPM, steps: int, dm: ImageDataModule | None = None) -> L.Trainer:
    trainer = L.Trainer(
        max_steps=steps,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        callbacks=[ExactResume()],  # records the model class: load_module rebuilds it
    )
    trainer.fit(module, (dm or digits()).train_dataloader())
    return trainer


def g(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """120 steps of a class-conditional model on the digits (a few seconds), saved after the autoencoder was
    copied to a file that is then deleted: the checkpoint must not need it."""
    tmp = tmp_path_factory.mktemp("latent")
    copy = tmp / "vae.ckpt"
    shutil.copy(FIXTURE, copy)
    module = model(copy, lr=3e-3, ema_decay=0.99, conditional=True, guidance=2.0)
    codes = module.autoencoder.encoder(next(iter(digits().train_dataloader()))[0])[0]
    before = {k: v.clone() for k, v in module.autoencoder.state_dict().items()}
    trainer = fit(module, 120)
    trainer.save_checkpoint(tmp / "latent.ckpt")
    copy.unlink()
    return {"model": module.eval(), "ckpt": tmp / "latent.ckpt", "codes": codes, "before": before}


def test_the_autoencoder_is_frozen_and_the_scale_comes_from_the_first_batch(trained):
    module = trained["model"]
    for name, value in module.autoencoder.state_dict().items():
        assert torch.equal(value, trained["before"][name]), name
    optimised = {id(p) for group in module.trainer.optimizers[0].param_groups for p in group["params"]}
    assert optimised == {id(p) for p in module.net.parameters()}
    assert not any(p.requires_grad for p in module.autoencoder.parameters()) and not module.autoencoder.training
    torch.testing.assert_close(module.scale, 1 / trained["codes"].std())  # the first batch (seeded loader)
    scaled = module.encode(next(iter(digits().train_dataloader()))[0])
    assert scaled.shape == (64, 8) and 0.8 < float(scaled.std()) < 1.25


def test_a_checkpoint_is_self_contained(trained):
    restored = ckpt_io.load_module(trained["ckpt"])  # the autoencoder's own file no longer exists
    assert isinstance(restored, LatentDDPM) and restored.hparams.autoencoder["hparams"]["latent_dim"] == 8
    for name, value in trained["model"].state_dict().items():
        assert torch.equal(value, restored.state_dict()[name]), name
    assert torch.equal(restored.sample(4, g(3)), trained["model"].sample(4, g(3)))


def test_every_sampler_and_sdedit_work_in_latent_space(trained):
    module = trained["model"]
    for name in sampler_names():
        steps = None if name == "ddpm" else 6
        x = module.sample(3, g(1), sampler=name, steps=steps, labels=[1, 2, 3])
        assert x.shape == (3, 1, 8, 8) and x.min() >= -1 and x.max() <= 1 and x.std() > 0.1, name
    images, labels = next(iter(digits().val_dataloader()))
    images = images[:4]
    reconstruction = module.decode(module.encode(images))
    assert torch.equal(module.edit(images, 0.0, g()), reconstruction)  # strength 0: the code is kept
    full = module.edit(images, 1.0, g(), labels=labels[:4])
    assert torch.equal(full, module.edit(-images, 1.0, g(), labels=labels[:4]))  # 1: the input is ignored ...
    assert torch.equal(full, module.sample(4, g(), labels=labels[:4]))  # ... a sample from pure noise
    half = module.edit(images, 0.15, g(), sampler="dpmpp_2m", steps=10)
    own, other = (half - reconstruction).abs().mean(), (half - reconstruction.flip(0)).abs().mean()
    assert own < 0.5 * other  # in between, the input shows through
    grid, columns = module.render("edit", images, labels[:4], n=2, generator=g(), strength=0.5)
    assert grid.shape == (16, 1, 8, 8) and columns == 2 * 3
    with pytest.raises(ValueError, match="unknown sample mode 'inpaint'; LatentDDPM offers \\['edit'\\]"):
        module.render("inpaint", images, labels[:4])
    assert module.sample_info() | {"eta": 0.0} == module.sample_info() and module.sample_info()["steps"] == 5


def test_bad_autoencoders_are_refused_with_what_to_do(tmp_path, trained):
    with pytest.raises(ValueError, match="model.autoencoder_ckpt must name the checkpoint of a trained VAE"):
        LatentDDPM(channels=1, image_size=8)
    with pytest.raises(ValueError, match="takes 1x8x8 images, the data give 1x28x28: train a VAE on these data"):
        LatentDDPM(channels=1, image_size=28, autoencoder_ckpt=str(FIXTURE))
    with pytest.raises(ckpt_io.CheckpointError, match="does not exist"):
        LatentDDPM(channels=1, image_size=8, autoencoder_ckpt=str(tmp_path / "moved.ckpt"))
    with pytest.raises(ValueError, match="steps must be in \\[1, num_timesteps=100\\], got steps=0"):
        model(sample_steps=0)
    with pytest.raises(ValueError, match="holds a LatentDDPM; latent diffusion needs a VAE checkpoint"):
        LatentDDPM(channels=1, image_size=8, autoencoder_ckpt=str(trained["ckpt"]))


@pytest.mark.slow
def test_training_learns_the_distribution_of_the_codes():
    """600 steps (~30 s): sampled codes have the data codes' per-dimension mean and spread (the sum of the largest
    gaps; measured 0.2-0.4 after 400 steps), which the untrained model (v = 0) does not."""
    dm = digits()
    module = model(hidden_dim=128, num_layers=3, lr=2e-3, ema_decay=0.995, num_timesteps=200, sample_steps=20)
    real = torch.cat([module.encode(x) for x, _ in dm.val_dataloader()])[:500]

    def gap() -> float:
        z = module.process.sample(module.sampling_net(), (500, 8), g(), module._sampling_options(*[None] * 4)[0])
        return float((z.mean(0) - real.mean(0)).abs().max() + (z.std(0) - real.std(0)).abs().max())

    untrained = gap()
    fit(module, 600, dm)
    module.eval()
    real = torch.cat([module.encode(x) for x, _ in dm.val_dataloader()])[:500]  # with the scale now set
    assert gap() < 0.5 < untrained


def test_an_interrupted_run_resumes_exactly(tmp_path, monkeypatch):
    """... also when the autoencoder's file is gone by the time of the resume (the checkpoint stands alone)."""
    assert preset("latent_ddpm")[0].startswith("model.autoencoder_ckpt=")
    autoencoder = tmp_path / "vae.ckpt"
    shutil.copy(FIXTURE, autoencoder)
    given = f"model.autoencoder_ckpt={autoencoder}"
    full = resumable_run(tmp_path / "full", "checkpoint.every_n_train_steps=1000", given, model="latent_ddpm")
    with pytest.raises(RuntimeError, match="simulated crash"):
        resumable_run(tmp_path / "cut", "checkpoint.every_n_train_steps=7", given, crash_at=14,
                      monkeypatch=monkeypatch, model="latent_ddpm")  # fmt: skip
    monkeypatch.undo()
    autoencoder.unlink()
    resumed = resumable_run(tmp_path / "cut", "resume=true", model="latent_ddpm")
    assert resumed["global_step"] == full["global_step"] == 30
    assert_same_weights(tmp_path / "full" / "checkpoints" / "last.ckpt", tmp_path / "cut" / "checkpoints" / "last.ckpt")
    assert resumed["history"] == [{**r, "time_s": a["time_s"]} for r, a in zip(full["history"], resumed["history"])]


def test_the_sample_command_samples_and_edits_with_any_sampler(tmp_path):
    """``gen-lightning sample`` on a latent run: a sampler by name, SDEdit of real images, steps=0 refused."""
    run_dir = tmp_path / "run"
    train.fit(compose(tiny_overrides(run_dir, "trainer.max_steps=2", model="latent_ddpm")))
    ckpt = str(run_dir / "checkpoints" / "last.ckpt")
    grid = sample_command(ckpt, n=4, out=str(tmp_path / "heun.png"), sampler="heun", steps=3)
    edits = sample_command(ckpt, n=4, mode="edit", out=str(tmp_path / "edit.png"), strength=0.5)
    with Image.open(grid) as a, Image.open(edits) as b:
        # 4 samples (2 x 2); 4 input | edited pairs (4 x 2, under titles): 8x8 cells scaled up by the grid rule
        cell = 8 * upscale(8, 8, 2) + PADDING
        assert a.size == (2 * cell + PADDING, 2 * cell + PADDING)
        cell = 8 * upscale(8, 8, 4, ("input", "edited")) + PADDING
        assert b.size == (4 * cell + PADDING, 2 * cell + PADDING + TITLE_BAND)
    with pytest.raises(ValueError, match=r"^DDIM steps must be in \[1, num_timesteps=100\], got steps=0"):
        sample_command(ckpt, n=2, out=str(tmp_path / "x.png"), steps=0)
