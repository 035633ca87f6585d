"""The sampler interface of gen_lightning/diffusion/samplers/: the registry finds each sampler by name, a new
sampler is one class in one file, every sampler checks its step count in one place (issue 24: steps=0 is refused,
not run as all T), and every sampler and SDEdit run on any tensor shape (latents (B, D) as well as images)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch
from conftest import tiny_overrides

from gen_lightning.commands.sample import sample_command
from gen_lightning.config import compose
from gen_lightning.diffusion import DDPM, GaussianDiffusion
from gen_lightning.diffusion import samplers as samplers_package
from gen_lightning.diffusion.edit import sdedit
from gen_lightning.diffusion.samplers import Sampler, get_sampler, make_sampler, sampler_names
from gen_lightning.diffusion.samplers import base as sampler_base
from gen_lightning.diffusion.samplers.ddim import DDIM
from gen_lightning.run import train

NAMES = ["ddim", "ddpm", "dpmpp_2m", "dpmpp_2m_karras", "dpmpp_2m_sde", "dpmpp_2m_sde_karras", "heun"]
FOLDER = Path(samplers_package.__file__).parent


def test_the_registry_finds_every_sampler_by_name():
    assert sampler_names() == NAMES
    process = GaussianDiffusion(50, "cosine")
    for name in NAMES:
        sampler = make_sampler(name, process, None)
        assert sampler.name == name and sampler.steps == 50 and isinstance(sampler, Sampler)
    with pytest.raises(ValueError, match=r"sampler must be one of \['ddim', 'ddpm', .*got 'euler'"):
        get_sampler("euler")


def test_each_concrete_sampler_lives_in_its_own_file_named_after_it():
    """One file per sampler (variants that differ only in class attributes, e.g. Karras levels, sit beside their
    base): the registry's classes come from the folder's modules, and the bases define no name."""
    for name in NAMES:
        cls = get_sampler(name)
        module = cls.__module__.rpartition(".")[2]
        assert name.startswith(module), (name, module)  # dpmpp_2m_karras in dpmpp_2m.py
        assert (FOLDER / f"{module}.py").is_file()
    for path in FOLDER.glob("*.py"):  # no file of the folder names a sampler of another file in a branch
        source = ast.parse(path.read_text())
        compared = [n for n in ast.walk(source) if isinstance(n, ast.Compare)]
        names = {c.value for n in compared for c in ast.walk(n) if isinstance(c, ast.Constant)}
        assert not names & set(NAMES), (path.name, names & set(NAMES))


def test_a_new_sampler_is_one_class_with_a_name(monkeypatch):
    """Defining the class registers it (the package imports every file beside it): the name then works in
    the process, SDEdit and the module's sample(sampler=NAME)."""
    monkeypatch.setattr(sampler_base, "_REGISTRY", dict(sampler_base._REGISTRY))

    class EveryOther(DDIM):  # DDIM on every second of the trailing timesteps: a sampler in five lines
        name = "ddim_halved"
        title = "halved DDIM"

        def timesteps(self) -> list[int]:
            return [*super().timesteps()[:-1:2], -1]

    assert get_sampler("ddim_halved") is EveryOther
    torch.manual_seed(0)
    model = DDPM(channels=1, image_size=8, hidden_dim=8, channel_mult=[1, 2], num_res_blocks=1,
                 attention_resolutions=[], num_timesteps=40, sample_steps=10, ema_decay=0)  # fmt: skip
    calls = []
    model.net.register_forward_hook(lambda *_: calls.append(1))
    out = model.sample(2, torch.Generator().manual_seed(0), sampler="ddim_halved")
    assert out.shape == (2, 1, 8, 8) and len(calls) == 5  # 5 of DDIM's 10 timesteps
    assert model.sample_info()["sampler"] == "ddim" and make_sampler("ddim_halved", model.process, 10).steps == 10
    with pytest.raises(ValueError, match="two samplers are named 'ddim'"):
        type("Clash", (DDIM,), {"name": "ddim"})


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("steps", [0, -5, 51, 2.5, True])
def test_every_sampler_refuses_a_bad_step_count_naming_key_value_and_range(name, steps):
    process = GaussianDiffusion(50, "cosine")
    allowed = "runs all num_timesteps=50 steps" if name == "ddpm" else r"steps must be in \[1, num_timesteps=50\]"
    with pytest.raises(ValueError, match=f"{allowed}, got steps={steps!r}"):
        make_sampler(name, process, steps)
    with pytest.raises(ValueError, match=allowed):
        process.sample(lambda x, t: x, (1, 2), sampler=name, steps=steps)


def test_sample_command_refuses_steps_zero(tmp_path):
    """Issue 24: ``gen-lightning sample ckpt=DDPM steps=0`` ran all T DDIM steps; now one line refuses it."""
    run_dir = tmp_path / "run"
    train.fit(compose(tiny_overrides(run_dir, "trainer.max_steps=1", model="ddpm")))
    ckpt = str(run_dir / "checkpoints" / "last.ckpt")
    with pytest.raises(ValueError, match=r"^DDIM steps must be in \[1, num_timesteps=100\], got steps=0 \("):
        sample_command(ckpt, n=2, out=str(tmp_path / "x.png"), steps=0)
    with pytest.raises(ValueError, match=r"^Heun \(EDM\) steps must be in \[1, num_timesteps=100\], got steps=-5"):
        sample_command(ckpt, n=2, out=str(tmp_path / "x.png"), sampler="heun", steps=-5)
    assert sample_command(ckpt, n=2, out=str(tmp_path / "x.png"), sampler="dpmpp_2m", steps=3).is_file()


@pytest.mark.parametrize("name", NAMES)
def test_every_sampler_and_sdedit_take_any_tensor_shape(name):
    """A latent (B, D) batch: the exact denoiser of two points +-0.5 in 6 dimensions, without clipping."""
    process = GaussianDiffusion(100, "cosine", clip=None)
    level = 0.5

    def exact(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        # abar at real timesteps (the solvers' Karras levels), interpolated in log sigma as sigma_to_t maps them
        abar = process.abar_ext[1:]
        log_sigma = ((1 - abar) / abar).sqrt().log()
        lo = t.floor().long().clamp(max=len(log_sigma) - 2)
        w = (t - lo).view(-1, 1)
        sigma = (log_sigma[lo].view(-1, 1) * (1 - w) + log_sigma[lo + 1].view(-1, 1) * w).exp()
        a = 1 / (1 + sigma**2)
        sa, sb = a.sqrt(), (1 - a).sqrt()
        x0 = level * torch.tanh(sa * level * x.sum(1, keepdim=True) / sb**2)  # E[x0 | x_t]
        return (x - sa * x0) / sb

    steps = None if name == "ddpm" else 20
    g = torch.Generator().manual_seed(0)
    x = process.sample(exact, (64, 6), g, sampler=name, steps=steps)
    sign = x.mean(1, keepdim=True).sign()
    assert x.shape == (64, 6) and (x - level * sign).abs().max() < 1e-3
    edits = sdedit(process, exact, torch.full((8, 6), level), 0.3, g, name, steps)
    assert edits.shape == (8, 6) and (edits - level).abs().max() < 1e-3  # the input's point kept


def test_the_process_clips_only_when_asked():
    x, out = torch.full((1, 3), 4.0), torch.zeros(1, 3)
    a = torch.tensor(0.25)
    assert GaussianDiffusion(50, clip=None).predict_at(x, a, out)[0].max() == 8.0  # x0 = x / sqrt(abar)
    assert GaussianDiffusion(50).predict_at(x, a, out)[0].max() == 1.0
    with pytest.raises(ValueError, match="clip .* must be > 0 or None, got 0"):
        GaussianDiffusion(50, clip=0)
