"""Few-step solvers of a trained discrete-time diffusion model over noise levels (DPM-Solver++, Heun).

The model is written in the variance-exploding variable of Karras et al. 2022 ("Elucidating the Design Space of
Diffusion-Based Generative Models", EDM, section 2 and Table 1): a VP sample x_t = alpha_t x_0 + s_t eps (alpha_t =
sqrt(abar_t), s_t = sqrt(1 - abar_t)) is y = x_t / alpha_t = x_0 + sigma eps with sigma = s_t / alpha_t =
sqrt((1 - abar_t) / abar_t). A solver walks a decreasing list of noise levels sigma_0 > ... > sigma_{N-1} >
sigma_N = 0 (``levels``) and needs only ``denoise(x, t, sigma)``: the clipped prediction of x_0 from the VP sample
``x`` at timestep ``t`` (real-valued between the trained integer timesteps).

Noise levels (``spacing``): ``uniform`` takes the timesteps DDIM uses (evenly spaced, starting from T - 1,
integers); ``karras`` takes Karras et al.'s eq. 5, sigma_i = (sigma_max^(1/rho) + i / (N - 1) (sigma_min^(1/rho) -
sigma_max^(1/rho)))^rho with rho = 7 between the trained extremes sigma(T - 1) and sigma(0), each mapped to the
real timestep whose log sigma it interpolates (k-diffusion's and diffusers' ``_sigma_to_t``).

Inpainting puts the known region back at the noise level reached after every step (RePaint's eq. 8 without its
jumps); SDEdit starts at the first level whose timestep lies below ``strength * T``, from the input noised to it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import torch

from gen_lightning.diffusion.samplers.base import Sampler, randn, trailing_timesteps

Denoise = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]  # (x_t, t, sigma) -> clipped x0
Replace = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (x, sigma) -> x with the known region put back
SPACINGS = ("uniform", "karras")


def karras_sigmas(sigma_min: float, sigma_max: float, n: int, rho: float = 7.0) -> torch.Tensor:
    """Karras et al. eq. 5: ``n`` noise levels from ``sigma_max`` down to ``sigma_min`` (float64)."""
    ramp = torch.linspace(0, 1, n, dtype=torch.float64)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return (hi + ramp * (lo - hi)) ** rho


def sigma_to_t(sigma: torch.Tensor, log_sigmas: torch.Tensor) -> torch.Tensor:
    """Real timesteps whose noise level is ``sigma``, linear in log sigma between the trained timesteps.

    ``log_sigmas``: (T,) log sigma of timesteps 0..T-1 (increasing); ``sigma`` (n,) -> (n,) in [0, T - 1].
    """
    log_sigma = sigma.clamp(min=1e-10).log()
    low = (log_sigma[None, :] >= log_sigmas[:, None]).long().cumsum(0).argmax(0).clamp(max=len(log_sigmas) - 2)
    lo, hi = log_sigmas[low], log_sigmas[low + 1]
    w = ((lo - log_sigma) / (lo - hi)).clamp(0, 1)
    return (1 - w) * low + w * (low + 1)


def vp_alpha(sigma: torch.Tensor) -> torch.Tensor:
    return (1 + sigma**2).rsqrt()  # sqrt(abar) with abar = 1 / (1 + sigma^2)


def vp_std(sigma: torch.Tensor) -> torch.Tensor:
    return sigma * vp_alpha(sigma)  # sqrt(1 - abar)


class SolverSampler(Sampler):
    """A solver over ``levels()``; a subclass defines ``solve`` and its ``spacing``."""

    spacing: ClassVar[str] = "uniform"

    def levels(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The timesteps (N,) and noise levels sigma = sqrt((1 - abar) / abar) (N + 1,), the last 0."""
        abar = self.process.abar_ext[1:]  # (T,)
        sigma_all = ((1 - abar) / abar).sqrt()  # (T,) increasing with t
        if self.spacing == "uniform":
            ts = torch.tensor(trailing_timesteps(self.process.num_timesteps, self.steps), device=sigma_all.device)
            sigmas = sigma_all[ts]
        else:
            sigmas = karras_sigmas(float(sigma_all[0]), float(sigma_all[-1]), self.steps).to(sigma_all)
            ts = sigma_to_t(sigmas, sigma_all.log())
        return ts, torch.cat([sigmas, sigmas.new_zeros(1)])

    def solve(self, denoise: Denoise, x, ts, sigmas, generator, replace: Replace | None) -> torch.Tensor:
        """The sample at sigma = 0 from the VP sample ``x`` at ``sigmas[0]``, over ``ts`` (N,) and ``sigmas``
        (N + 1,); ``replace`` runs after every step (inpainting)."""
        raise NotImplementedError

    def sample(self, model, shape, generator=None, known=None, mask=None, resample=1, jump=10) -> torch.Tensor:
        if resample != 1:
            raise ValueError(f"RePaint's jumps (resample > 1) need sampler='ddpm' or 'ddim', not {self.name!r}")
        ts, sigmas = self.levels()
        x = randn(shape, generator, self.process.abar_ext.device)  # x_T ~ N(0, I), as for DDPM and DDIM
        return self.run(model, x, ts, sigmas, generator, known, mask)

    def edit(self, model, x, strength, generator=None) -> torch.Tensor:
        ts, sigmas = self.levels()
        first = int((ts >= round(strength * self.process.num_timesteps)).sum())  # ts descend: a tail is kept
        if first == len(ts):
            return x.clone()
        ts, sigmas = ts[first:], sigmas[first:]
        noise = randn(tuple(x.shape), generator, x.device)
        abar = (1 + sigmas[0] ** 2).reciprocal().to(x.dtype)
        y = noise if strength >= 1.0 else abar.sqrt() * x + (1 - abar).sqrt() * noise
        return self.run(model, y, ts, sigmas, generator)

    def run(self, model, x, ts, sigmas, generator, known=None, mask=None) -> torch.Tensor:
        """``solve`` from ``x`` at ``sigmas[0]`` with the process's clipped prediction as the denoiser."""
        device = x.device

        def denoise(x: torch.Tensor, t: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
            a = (1 + sigma**2).reciprocal().to(x.dtype)  # abar at this noise level
            return self.process.predict_at(x, a, model(x, t.expand(x.shape[0])))[0]

        def replace(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
            a = (1 + sigma**2).reciprocal().to(x.dtype)
            noised = known if sigma == 0 else a.sqrt() * known + (1 - a).sqrt() * randn(x.shape, generator, device)
            return torch.where(mask, noised, x)

        return self.solve(denoise, x, ts, sigmas, generator, replace if known is not None else None)
