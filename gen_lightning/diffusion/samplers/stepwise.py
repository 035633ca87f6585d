"""Samplers that step between integer timesteps, one network evaluation per step (DDPM ancestral, DDIM).

What they share: the walk down their timesteps, RePaint inpainting (Lugmayr et al. 2022, eq. 8 and section 4.2:
at every step the known region is replaced by the original noised to the same level, optionally with "jumps" back
up the chain to harmonise the two regions), and SDEdit (Meng et al. 2021, Algorithm 1 for the VP process: the
input noised to the first of the sampler's timesteps below ``strength * T`` by the forward process, Ho et al. eq. 4,
then denoised from there). A subclass gives its ``timesteps`` and its ``step``.

Random numbers come only from the generator, in a fixed order: the initial noise, then per step the step's noise
(when its variance is non-zero) and the noise of the known region (inpainting only).
"""

from __future__ import annotations

import torch

from gen_lightning.diffusion.samplers.base import Denoiser, Sampler, randn


def repaint_schedule(num_steps: int, jump: int, resample: int) -> list[int]:
    """Positions in a walk over ``num_steps`` denoising steps (0 = pure noise, num_steps = clean), in order.

    RePaint's jump schedule (Lugmayr et al. section 4.2, ``get_schedule_jump`` of the official code): going
    down, every ``jump`` steps from the clean end the chain goes back up ``jump`` steps, ``resample - 1``
    times.
    ``resample = 1`` is the plain walk ``0, 1, ..., num_steps``.
    """
    if resample < 1 or jump < 1:
        raise ValueError(f"RePaint needs resample >= 1 and jump >= 1, got resample={resample}, jump={jump}")
    remaining = {tau: resample - 1 for tau in range(0, num_steps - jump, jump)}  # tau = num_steps - 1 - position
    tau, taus = num_steps, []
    while tau >= 1:
        tau -= 1
        taus.append(tau)
        if remaining.get(tau, 0) > 0:
            remaining[tau] -= 1
            for _ in range(jump):
                tau += 1
                taus.append(tau)
    taus.append(-1)
    return [num_steps - 1 - tau for tau in taus]


class StepSampler(Sampler):
    """A chain x_t -> x_{t_prev} over ``timesteps()``; a subclass defines ``timesteps`` and ``step``."""

    def timesteps(self) -> list[int]:
        """The descending timesteps visited, followed by -1 (clean)."""
        raise NotImplementedError

    def step(self, model: Denoiser, x: torch.Tensor, t: int, t_prev: int, generator) -> torch.Tensor:
        """One reverse step x_t -> x_{t_prev}, drawing its noise (if any) from ``generator``."""
        raise NotImplementedError

    def _model_output(self, model: Denoiser, x: torch.Tensor, t: int) -> torch.Tensor:
        return model(x, torch.full((x.shape[0],), t, device=x.device, dtype=torch.long))

    def sample(self, model, shape, generator=None, known=None, mask=None, resample=1, jump=10) -> torch.Tensor:
        seq = self.timesteps()
        # Positions in seq, visited in order: straight down, or with RePaint's jumps back when inpainting.
        path = repaint_schedule(len(seq) - 1, jump, resample) if known is not None else list(range(len(seq)))
        x = randn(shape, generator, self.process.abar_ext.device)  # x_T ~ N(0, I)
        for here, there in zip(path[:-1], path[1:]):
            t, t_next = seq[here], seq[there]
            if there > here:  # denoise t -> t_next
                x = self.step(model, x, t, t_next, generator)
                if known is not None:  # RePaint eq. 8: the known region at the same noise level
                    x = torch.where(mask, self._noised(known, t_next, generator), x)
            else:  # RePaint's jump back: x_{t_next} ~ q(x_{t_next} | x_t) = N(sqrt(r) x_t, (1 - r) I)
                ratio = (self.process.abar(t_next) / self.process.abar(t)).to(x.dtype)
                x = ratio.sqrt() * x + (1 - ratio).sqrt() * randn(x.shape, generator, x.device)
        return x

    def edit_timesteps(self, strength: float) -> list[int]:
        """The timesteps below ``strength * T``, then -1 (clean): where an edit denoises."""
        cutoff = round(strength * self.process.num_timesteps)
        return [t for t in self.timesteps()[:-1] if t < cutoff] + [-1]

    def edit(self, model, x, strength, generator=None) -> torch.Tensor:
        path = self.edit_timesteps(strength)
        if len(path) == 1:  # below the first step: nothing is noised, nothing to denoise
            return x.clone()
        noise = randn(tuple(x.shape), generator, x.device)
        if strength >= 1.0:
            y = noise  # x_T ~ N(0, I): exactly what sampling starts from
        else:
            y = self.process.q_sample(x, torch.full((x.shape[0],), path[0], device=x.device), noise)
        for t, t_next in zip(path[:-1], path[1:]):
            y = self.step(model, y, t, t_next, generator)
        return y

    def _noised(self, x0: torch.Tensor, t: int, generator) -> torch.Tensor:
        if t < 0:
            return x0
        t_batch = torch.full((x0.shape[0],), t, device=x0.device, dtype=torch.long)
        return self.process.q_sample(x0, t_batch, randn(x0.shape, generator, x0.device))
