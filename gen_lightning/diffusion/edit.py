"""SDEdit: editing a given input with a trained diffusion model (Meng et al. 2021, "SDEdit: Guided Image Synthesis
and Editing with Stochastic Differential Equations", Algorithm 1 for the VP process).

The input is noised to an intermediate time ``t0 = strength * T`` with the forward process,
``x_t0 = sqrt(abar_t0) x + sqrt(1 - abar_t0) eps`` (Ho et al. eq. 4), and denoised from there to ``t = 0`` by any
sampler of ``samplers/`` over its own steps below ``t0`` (``Sampler.edit``: a step sampler's timesteps, a solver's
noise levels). ``strength`` trades faithfulness (0: the input unchanged) for realism (1: the input ignored, a sample
from pure noise, the same as ``sample`` draws from the same generator). Steering to another class is the denoiser's
business (classifier-free guidance, passed in as ``model``). Inputs may have any shape (B, ...): images or latents.
"""

from __future__ import annotations

import torch

from gen_lightning.diffusion.process import GaussianDiffusion
from gen_lightning.diffusion.samplers import Denoiser, Sampler, make_sampler


def edit_timesteps(process: GaussianDiffusion, strength: float, sampler: str, steps: int | None) -> list[int]:
    """A step sampler's descending timesteps below ``strength * T``, then -1 (clean): where an edit denoises."""
    _check_strength(strength)
    return make_sampler(sampler, process, steps).edit_timesteps(strength)


@torch.no_grad()
def sdedit(
    process: GaussianDiffusion,
    model: Denoiser,
    images: torch.Tensor,
    strength: float,
    generator: torch.Generator | None = None,
    sampler: str | Sampler = "ddim",
    steps: int | None = None,
    eta: float = 0.0,
) -> torch.Tensor:
    """Edited ``images`` (B, ...); random numbers from ``generator`` only, the noise first."""
    _check_strength(strength)
    return make_sampler(sampler, process, steps, eta).edit(model, images, strength, generator)


def _check_strength(strength: float) -> None:
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength must be in [0, 1] (0: the input unchanged, 1: a new sample), got {strength}")
