"""SDEdit: editing a given image with a trained diffusion model (Meng et al. 2021, "SDEdit: Guided Image Synthesis
and Editing with Stochastic Differential Equations", Algorithm 1 for the VP process).

The image is noised to an intermediate time ``t0 = strength * T`` with the forward process,
``x_t0 = sqrt(abar_t0) x + sqrt(1 - abar_t0) eps`` (Ho et al. eq. 4), and denoised from there to ``t = 0`` by the
model's own reverse steps (``GaussianDiffusion``'s DDPM or DDIM step, or a few-step solver of ``solvers.py`` over
its noise levels below ``t0``). ``strength`` trades faithfulness (0: the
input unchanged) for realism (1: the input ignored, a sample from pure noise, the same as ``sample`` draws from the
same generator). Steering to another class is the denoiser's business (classifier-free guidance, passed in as
``model``). The process is used, not changed: this file only chooses where its loop starts.
"""

from __future__ import annotations

import torch

from gen_lightning.diffusion.process import SOLVERS, Denoiser, GaussianDiffusion, randn


def edit_timesteps(process: GaussianDiffusion, strength: float, sampler: str, steps: int | None) -> list[int]:
    """The sampler's descending timesteps below ``strength * T``, then -1 (clean): where an edit denoises."""
    _check_strength(strength)
    cutoff = round(strength * process.num_timesteps)
    return [t for t in process.timesteps(sampler, steps)[:-1] if t < cutoff] + [-1]


@torch.no_grad()
def sdedit(
    process: GaussianDiffusion,
    model: Denoiser,
    images: torch.Tensor,
    strength: float,
    generator: torch.Generator | None = None,
    sampler: str = "ddim",
    steps: int | None = None,
    eta: float = 0.0,
) -> torch.Tensor:
    """Edited ``images`` (B, C, H, W) in [-1, 1]; random numbers from ``generator`` only, the noise first."""
    if sampler in SOLVERS:
        return _solver_edit(process, model, images, strength, generator, sampler, steps)
    path = edit_timesteps(process, strength, sampler, steps)
    if len(path) == 1:  # below the first step: nothing is noised, nothing to denoise
        return images.clone()
    noise = randn(tuple(images.shape), generator, images.device)
    if strength >= 1.0:
        x = noise  # x_T ~ N(0, I): exactly what sampling starts from
    else:
        x = process.q_sample(images, torch.full((images.shape[0],), path[0], device=images.device), noise)
    for t, t_next in zip(path[:-1], path[1:]):
        x = process._reverse(model, x, t, t_next, sampler, eta, generator)
    return x


def _solver_edit(process: GaussianDiffusion, model: Denoiser, images, strength: float, generator, sampler, steps):
    """SDEdit with a solver: its levels whose timestep lies below ``strength * T``, from the input noised to the
    first of them (the VP sample at sigma: abar = 1 / (1 + sigma^2))."""
    _check_strength(strength)
    ts, sigmas = process.noise_levels(sampler, steps or process.num_timesteps)
    first = int((ts >= round(strength * process.num_timesteps)).sum())  # ts descend: the kept ones are a tail
    if first == len(ts):
        return images.clone()
    ts, sigmas = ts[first:], sigmas[first:]
    noise = randn(tuple(images.shape), generator, images.device)
    abar = (1 + sigmas[0] ** 2).reciprocal().to(images.dtype)
    x = noise if strength >= 1.0 else abar.sqrt() * images + (1 - abar).sqrt() * noise
    return process.solve(model, x, ts, sigmas, sampler, generator)


def _check_strength(strength: float) -> None:
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength must be in [0, 1] (0: the input unchanged, 1: a new sample), got {strength}")
