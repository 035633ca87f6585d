"""DDPM ancestral sampling over all T timesteps (Ho et al. 2020, Algorithm 2, eq. 6-7), with the "small" posterior
variance beta~_t or the "large" one beta_t (the process's ``variance``)."""

from __future__ import annotations

import torch

from gen_lightning.diffusion.samplers.base import randn
from gen_lightning.diffusion.samplers.stepwise import StepSampler


class Ancestral(StepSampler):
    name = "ddpm"
    title = "DDPM ancestral sampling"
    all_timesteps = True

    def check_steps(self, steps: int | None, num_timesteps: int) -> int:
        if steps not in (None, num_timesteps):
            raise ValueError(
                f"DDPM ancestral sampling runs all num_timesteps={num_timesteps} steps, got steps={steps!r}; "
                "use sampler='ddim' for fewer steps"
            )
        return num_timesteps

    def timesteps(self) -> list[int]:
        return [*range(self.process.num_timesteps - 1, -1, -1), -1]

    def step(self, model, x, t, t_prev, generator) -> torch.Tensor:
        """x_t -> x_{t-1} ~ N(mu~_t(x_t, x0), sigma_t^2 I); ``t_prev`` is always t - 1."""
        output = self._model_output(model, x, t)
        noise = randn(x.shape, generator, x.device) if t > 0 else None
        process = self.process
        x0, _ = process.predict_start(x, t, output)
        a_t, a_prev = process.abar(t).to(x.dtype), process.abar(t - 1).to(x.dtype)
        alpha_t = a_t / a_prev
        beta_t = 1 - alpha_t
        mean = (a_prev.sqrt() * beta_t / (1 - a_t)) * x0 + (alpha_t.sqrt() * (1 - a_prev) / (1 - a_t)) * x  # eq. 7
        if t == 0:
            return mean  # x_0 is the mean: no noise at the last step
        var = beta_t * (1 - a_prev) / (1 - a_t) if process.variance == "small" else beta_t  # beta~_t or beta_t
        return mean + var.sqrt() * noise
