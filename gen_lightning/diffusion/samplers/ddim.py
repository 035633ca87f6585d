"""DDIM (Song et al. 2021, eq. 12 and 16) over ``steps`` evenly spaced timesteps from T - 1 ("trailing"), with
stochasticity eta: 0 deterministic, 1 DDPM-like (with all T steps, DDPM's ancestral sampler, section 4.1)."""

from __future__ import annotations

import torch

from gen_lightning.diffusion.samplers.base import randn, trailing_timesteps
from gen_lightning.diffusion.samplers.stepwise import StepSampler


class DDIM(StepSampler):
    name = "ddim"
    title = "DDIM"

    def timesteps(self) -> list[int]:
        return [*trailing_timesteps(self.process.num_timesteps, self.steps), -1]

    def info(self) -> dict:
        return super().info() | {"eta": self.eta}

    def sigma(self, t: int, t_prev: int) -> torch.Tensor:
        """sigma_t(eta) = eta sqrt((1 - abar_prev) / (1 - abar_t) (1 - abar_t / abar_prev)), Song eq. 16."""
        a_t, a_prev = self.process.abar(t), self.process.abar(t_prev)
        return self.eta * ((1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev)).sqrt()

    def step(self, model, x, t, t_prev, generator) -> torch.Tensor:
        """x_t -> x_{t_prev} (eq. 12): "predicted x0" + "direction to x_t" + sigma noise."""
        output = self._model_output(model, x, t)
        noisy = self.eta > 0 and t_prev >= 0  # sigma = 0 at the last step (abar_prev = 1)
        noise = randn(x.shape, generator, x.device) if noisy else None
        x0, eps = self.process.predict_start(x, t, output)
        a_prev = self.process.abar(t_prev).to(x.dtype)
        sigma = self.sigma(t, t_prev).to(x.dtype)
        x = a_prev.sqrt() * x0 + (1 - a_prev - sigma**2).sqrt() * eps
        return x + sigma * noise if noise is not None else x
