"""SDEdit: editing a given image with a trained diffusion model (Meng et al. 2021, "SDEdit: Guided Image Synthesis
and Editing with Stochastic Differential Equations", Algorithm 1 for the VP process).

The image is noised to an intermediate time ``t0 = strength * T`` with the forward process,
``x_t0 = sqrt(abar_t0) x + sqrt(1 - abar_t0) eps`` (Ho et al. eq. 4), and denoised from there to ``t = 0`` by the
model's own reverse steps (``GaussianDiffusion``'s DDPM or DDIM step). ``strength`` trades faithfulness (0: the
input unchanged) for realism (1: the input ignored, a sample from pure noise, the same as ``sample`` draws from the
same generator). Steering to another class is the denoiser's business (classifier-free guidance, passed in as
``model``). The process is used, not changed: this file only chooses where its loop starts.
"""

from __future__ import annotations

import torch

from gen_lightning.diffusion.process import Denoiser, GaussianDiffusion, randn


def edit_timesteps(process: GaussianDiffusion, strength: float, sampler: str, steps: int | None) -> list[int]:
    """The sampler's descending timesteps below ``strength * T``, then -1 (clean): where an edit denoises."""
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength must be in [0, 1] (0: the input unchanged, 1: a new sample), got {strength}")
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
