"""Heun's second-order method on Karras et al.'s noise levels (EDM, Karras et al. 2022, Algorithm 1, no churn):
dy/dsigma = (y - D(y; sigma)) / sigma (eq. 3 with sigma(t) = t) in y = x / alpha, Euler on the last step to
sigma = 0: 2N - 1 network evaluations."""

from __future__ import annotations

import torch

from gen_lightning.diffusion.samplers.solver import SolverSampler, vp_alpha


class Heun(SolverSampler):
    name = "heun"
    title = "Heun (EDM)"
    spacing = "karras"

    @classmethod
    def network_evaluations(cls, steps: int) -> int:
        return 2 * steps - 1

    def solve(self, denoise, x, ts, sigmas, generator, replace) -> torch.Tensor:
        y = x / vp_alpha(sigmas[0])

        def slope(y: torch.Tensor, t: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
            # dy/dsigma = (y - D(y; sigma)) / sigma (Karras eq. 3); the network sees the VP input y alpha.
            return (y - denoise(y * vp_alpha(sigma), t, sigma)) / sigma

        for i in range(len(ts)):
            s, s_next = sigmas[i], sigmas[i + 1]
            d = slope(y, ts[i], s)
            y_next = y + (s_next - s) * d  # Euler (line 5)
            if s_next > 0:  # Heun's correction (lines 7-8), not on the last step to sigma = 0
                y_next = y + (s_next - s) * (d + slope(y_next, ts[i + 1], s_next)) / 2
            y = y_next
            if replace is not None:
                y = replace(y * vp_alpha(s_next), s_next) / vp_alpha(s_next)
        return y
