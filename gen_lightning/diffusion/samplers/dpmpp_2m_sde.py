"""SDE-DPM-Solver++(2M) (Lu et al. 2022, appendix; diffusers' ``algorithm_type="sde-dpmsolver++"``): DPM-Solver++
(2M)'s multistep rule on the reverse SDE, a fresh Gaussian per step keeping it stochastic like ancestral sampling.
N network evaluations; on DDIM's timesteps (``dpmpp_2m_sde``) or Karras et al.'s levels (``dpmpp_2m_sde_karras``)."""

from __future__ import annotations

import torch

from gen_lightning.diffusion.samplers.base import randn
from gen_lightning.diffusion.samplers.dpmpp_2m import DPMSolverPP2M
from gen_lightning.diffusion.samplers.solver import vp_alpha, vp_std


class DPMSolverPP2MSDE(DPMSolverPP2M):
    name = "dpmpp_2m_sde"
    title = "SDE-DPM-Solver++(2M)"

    def update(self, x, d, h, s, s_next, generator) -> torch.Tensor:
        """The SDE's exact linear part and a Gaussian of variance s_next^2 (1 - exp(-2h))."""
        std_next = vp_std(s_next)
        x = (std_next / vp_std(s)) * (-h).exp() * x - vp_alpha(s_next) * torch.expm1(-2 * h) * d
        return x + std_next * (-torch.expm1(-2 * h)).sqrt() * randn(x.shape, generator, x.device)


class DPMSolverPP2MSDEKarras(DPMSolverPP2MSDE):
    name = "dpmpp_2m_sde_karras"
    spacing = "karras"
