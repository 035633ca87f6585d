"""Every diffusion sampler's output pinned bit for bit (tests/fixtures/diffusion_pinned.pt).

The fixture was recorded with the code before the samplers became objects (commit "pin today's sampler outputs");
every refactor since must reproduce it exactly: the same arithmetic in the same order and the same random numbers
drawn in the same order. Cases: each sampler at two step counts, DDIM with eta > 0, both prediction targets and
DDPM variances, RePaint inpainting with and without jumps, SDEdit with every sampler, and ``DDPM.sample`` /
``edit`` / ``inpaint`` of a tiny seeded U-Net with classifier-free guidance.

The denoiser of the process cases is elementwise arithmetic (the same on every CPU); the U-Net cases use
convolutions, whose float32 rounding may differ on another CPU type: the fixture was recorded on x86-64.
Regenerate (only when an output is meant to change, and say why in the commit):
``PYTHONPATH=. python tests/test_diffusion_pinned.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from gen_lightning.diffusion import DDPM, GaussianDiffusion
from gen_lightning.diffusion.edit import sdedit
from gen_lightning.diffusion.process import inpaint_mask

FIXTURE = Path(__file__).parent / "fixtures" / "diffusion_pinned.pt"
SHAPE = (2, 1, 8, 8)


def toy(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    # A fixed function of (x_t, t) whose implied x0 leaves [-1, 1] (clipping exercised); t may be real (solvers).
    return 0.5 * x + 0.3 * torch.sin(3 * x + t.float().view(-1, 1, 1, 1) / 37)


def known_images() -> torch.Tensor:
    g = torch.Generator().manual_seed(11)
    return torch.rand(SHAPE, generator=g) * 2 - 1


SAMPLES = {  # name: (process arguments, sample arguments)
    "ddpm_small": ((100, "cosine"), dict(sampler="ddpm")),
    "ddpm_large_v": ((100, "linear", "v", "large"), dict(sampler="ddpm")),
    "ddim_10": ((100, "cosine"), dict(sampler="ddim", steps=10)),
    "ddim_25_eta": ((100, "linear"), dict(sampler="ddim", steps=25, eta=0.5)),
    "ddim_all_eta1_v": ((100, "cosine", "v"), dict(sampler="ddim", eta=1.0)),
    "dpmpp_2m_5": ((100, "cosine"), dict(sampler="dpmpp_2m", steps=5)),
    "dpmpp_2m_10_v": ((100, "linear", "v"), dict(sampler="dpmpp_2m", steps=10)),
    "dpmpp_2m_karras_10": ((100, "linear"), dict(sampler="dpmpp_2m_karras", steps=10)),
    "dpmpp_2m_sde_10": ((100, "cosine"), dict(sampler="dpmpp_2m_sde", steps=10)),
    "dpmpp_2m_sde_karras_7": ((100, "linear"), dict(sampler="dpmpp_2m_sde_karras", steps=7)),
    "heun_5": ((100, "linear"), dict(sampler="heun", steps=5)),
    "heun_12_v": ((100, "cosine", "v"), dict(sampler="heun", steps=12)),
}
INPAINTS = {  # name: (sample arguments, mask)
    "inpaint_ddpm_jumps": (dict(sampler="ddpm", resample=2, jump=5), "center"),
    "inpaint_ddim_10": (dict(sampler="ddim", steps=10), "left"),
    "inpaint_ddim_20_jumps_eta": (dict(sampler="ddim", steps=20, eta=0.3, resample=3, jump=4), "random"),
    "inpaint_dpmpp_2m_sde_10": (dict(sampler="dpmpp_2m_sde", steps=10), "lines"),
    "inpaint_heun_6": (dict(sampler="heun", steps=6), "top"),
}
EDITS = {  # name: (strength, sampler, steps, eta)
    "edit_ddpm_half": (0.5, "ddpm", None, 0.0),
    "edit_ddim_03": (0.3, "ddim", 10, 0.0),
    "edit_ddim_07_eta": (0.7, "ddim", 20, 0.8),
    "edit_ddim_full": (1.0, "ddim", 10, 0.0),
    "edit_dpmpp_2m": (0.5, "dpmpp_2m", 10, 0.0),
    "edit_dpmpp_2m_karras": (0.6, "dpmpp_2m_karras", 10, 0.0),
    "edit_dpmpp_2m_sde": (0.5, "dpmpp_2m_sde", 10, 0.0),
    "edit_dpmpp_2m_sde_karras": (0.4, "dpmpp_2m_sde_karras", 10, 0.0),
    "edit_heun": (0.5, "heun", 8, 0.0),
}
UNET = dict(hidden_dim=8, channel_mult=[1, 2], num_res_blocks=1, attention_resolutions=[4], num_timesteps=60)


def g(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def process_cases() -> dict[str, torch.Tensor]:
    out = {}
    for seed, (name, (args, kwargs)) in enumerate(SAMPLES.items()):
        out[name] = GaussianDiffusion(*args).sample(toy, SHAPE, g(seed), **kwargs)
    process = GaussianDiffusion(100, "cosine")
    for seed, (name, (kwargs, mask)) in enumerate(INPAINTS.items()):
        mask = inpaint_mask(mask, SHAPE)
        out[name] = process.sample(toy, SHAPE, g(100 + seed), known=known_images(), mask=mask, **kwargs)
    for seed, (name, (strength, sampler, steps, eta)) in enumerate(EDITS.items()):
        out[name] = sdedit(process, toy, known_images(), strength, g(200 + seed), sampler, steps, eta)
    return out


def unet_model() -> DDPM:
    torch.manual_seed(0)
    model = DDPM(channels=1, image_size=8, num_classes=3, conditional=True, **UNET, sample_steps=6, ema_decay=0)
    for p in model.net.parameters():  # the zero-initialised output layer would make every output noise alone
        torch.nn.init.normal_(p, std=0.2, generator=g(5))
    return model.eval()


def module_cases() -> dict[str, torch.Tensor]:
    model, images = unet_model(), known_images()
    return {
        "module_sample_guided": model.sample(3, g(1), guidance=2.0),
        "module_sample_dpmpp": model.sample(2, g(2), sampler="dpmpp_2m_sde_karras", steps=4),
        "module_sample_ddpm": model.sample(2, g(3), sampler="ddpm", labels=[2, 0]),
        "module_edit": model.edit(images, 0.6, g(4), labels=[1], guidance=3.0, sampler="heun", steps=4),
        "module_inpaint": model.inpaint(images, "center", g(5), labels=[0, 1], eta=0.5, resample=2, jump=2),
    }


def all_cases() -> dict[str, torch.Tensor]:
    return process_cases() | module_cases()


@pytest.fixture(scope="module")
def pinned() -> dict[str, torch.Tensor]:
    return torch.load(FIXTURE)


def test_process_outputs_are_bit_identical_to_the_pinned_ones(pinned):
    for name, value in process_cases().items():
        assert torch.equal(value, pinned[name]), name


def test_ddpm_module_outputs_are_bit_identical_to_the_pinned_ones(pinned):
    for name, value in module_cases().items():
        assert torch.equal(value, pinned[name]), name


def test_the_pinned_cases_are_distinct_and_finite(pinned):
    # A fixture of constants or copies would pin nothing: every case differs from every other.
    assert len(pinned) == len(SAMPLES) + len(INPAINTS) + len(EDITS) + 5
    values = list(pinned.values())
    assert all(bool(v.isfinite().all()) and v.std() > 0.05 for v in values)
    same_shape = [(a, b) for i, a in enumerate(values) for b in values[i + 1 :] if a.shape == b.shape]
    assert not any(torch.equal(a, b) for a, b in same_shape)


if __name__ == "__main__":
    FIXTURE.parent.mkdir(exist_ok=True)
    torch.save(all_cases(), FIXTURE)
    print(f"wrote {FIXTURE}")
