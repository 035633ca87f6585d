"""DPM-Solver++(2M), Lu et al. 2022 ("DPM-Solver++: Fast Solver for Guided Sampling of Diffusion Probabilistic
Models"), Algorithm 2: the exact exponential integrator of the probability-flow ODE in the data prediction, with the
half log-SNR lambda = log(alpha / s) = -log sigma as the time variable and the two latest predictions forming a
second-order multistep update (eq. 9; the first step is first order, i.e. DDIM). One network evaluation per level,
N in all; on DDIM's timesteps (``dpmpp_2m``) or Karras et al.'s levels (``dpmpp_2m_karras``)."""

from __future__ import annotations

import torch

from gen_lightning.diffusion.samplers.solver import SolverSampler, vp_alpha, vp_std


class DPMSolverPP2M(SolverSampler):
    name = "dpmpp_2m"
    title = "DPM-Solver++(2M)"

    def solve(self, denoise, x, ts, sigmas, generator, replace) -> torch.Tensor:
        x0_prev, h_prev = None, None
        for i in range(len(ts)):
            s, s_next = sigmas[i], sigmas[i + 1]
            x0 = denoise(x, ts[i], s)
            if s_next == 0:  # the last step, first order: exp(-h) = 0, the update is the prediction itself
                x = x0
            else:
                h = (s / s_next).log()  # lambda_next - lambda; lambda = -log sigma (Lu et al. eq. 3)
                d = x0
                if x0_prev is not None:  # Algorithm 2, line 6: D = (1 + 1/(2r)) x0_i - 1/(2r) x0_{i-1}, r = h_prev/h
                    d = x0 + (h / h_prev / 2) * (x0 - x0_prev)
                x = self.update(x, d, h, s, s_next, generator)
                x0_prev, h_prev = x0, h
            x = replace(x, s_next) if replace is not None else x
        return x

    def update(self, x, d, h, s, s_next, generator) -> torch.Tensor:
        """Eq. 9: x = (s_next / s) x - alpha_next (exp(-h) - 1) D (s: the VP noise std)."""
        return (vp_std(s_next) / vp_std(s)) * x - vp_alpha(s_next) * torch.expm1(-h) * d


class DPMSolverPP2MKarras(DPMSolverPP2M):
    name = "dpmpp_2m_karras"
    spacing = "karras"
