"""Few-step samplers of a trained discrete-time diffusion model: DPM-Solver++(2M), its SDE variant, and Heun.

The model is written in the variance-exploding variable of Karras et al. 2022 ("Elucidating the Design Space of
Diffusion-Based Generative Models", EDM, section 2 and Table 1): a VP sample x_t = alpha_t x_0 + s_t eps (alpha_t =
sqrt(abar_t), s_t = sqrt(1 - abar_t)) is y = x_t / alpha_t = x_0 + sigma eps with sigma = s_t / alpha_t =
sqrt((1 - abar_t) / abar_t). Every sampler here walks a decreasing list of noise levels sigma_0 > ... > sigma_{N-1}
> sigma_N = 0 (``noise_levels``) and needs only ``denoise(x, t, sigma)``: the clipped prediction of x_0 from the
VP sample ``x`` at timestep ``t`` (real-valued between the trained integer timesteps).

- ``dpmpp_2m``: DPM-Solver++(2M), Lu et al. 2022 ("DPM-Solver++: Fast Solver for Guided Sampling of Diffusion
  Probabilistic Models"), Algorithm 2: the exact exponential integrator of the probability-flow ODE in the data
  prediction, with the half log-SNR lambda = log(alpha / s) = -log sigma as the time variable and the two latest
  predictions forming a second-order multistep update (eq. 9; the first step is first order, i.e. DDIM). One network
  evaluation per level, N in all.
- ``dpmpp_2m_sde``: the same multistep rule on the reverse SDE (Lu et al. 2022, appendix: SDE-DPM-Solver++(2M),
  diffusers' ``algorithm_type="sde-dpmsolver++"``): a fresh Gaussian per step keeps it stochastic like ancestral
  sampling. N evaluations.
- ``heun``: Karras et al. 2022, Algorithm 1: Heun's second-order method on dy/dsigma = (y - D(y; sigma)) / sigma
  (eq. 3 with sigma(t) = t), Euler on the last step to sigma = 0: 2N - 1 evaluations.

Noise levels (``spacing``): ``uniform`` takes the timesteps DDIM uses (evenly spaced, starting from T - 1,
integers); ``karras`` takes Karras et al.'s eq. 5, sigma_i = (sigma_max^(1/rho) + i / (N - 1) (sigma_min^(1/rho) -
sigma_max^(1/rho)))^rho with rho = 7 between the trained extremes sigma(T - 1) and sigma(0), each mapped to the
real timestep whose log sigma it interpolates (k-diffusion's and diffusers' ``_sigma_to_t``).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

SPACINGS = ("uniform", "karras")
Denoise = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]  # (x_t, t, sigma) -> clipped x0
Replace = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (x, sigma) -> x with the known region put back


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


def dpmpp_2m(
    denoise: Denoise,
    x: torch.Tensor,
    ts: torch.Tensor,
    sigmas: torch.Tensor,
    noise: Callable[[], torch.Tensor] | None = None,
    replace: Replace | None = None,
) -> torch.Tensor:
    """DPM-Solver++(2M) (``noise=None``) or SDE-DPM-Solver++(2M) (``noise()`` draws one N(0, I) per step).

    ``x``: the VP sample at ``sigmas[0]``; ``ts`` (N,) the timesteps of ``sigmas[:N]``; ``sigmas`` (N + 1,) ends
    with 0. Returns the sample at sigma = 0. ``replace`` runs after every step (inpainting).
    """
    x0_prev, h_prev = None, None
    for i in range(len(ts)):
        s, s_next = sigmas[i], sigmas[i + 1]
        x0 = denoise(x, ts[i], s)
        if s_next == 0:  # the last step, first order: exp(-h) = 0, the update is the prediction itself
            x = x0
        else:
            alpha_next, std_next, std = _alpha(s_next), _std(s_next), _std(s)
            h = (s / s_next).log()  # lambda_next - lambda; lambda = -log sigma (Lu et al. eq. 3)
            d = x0
            if x0_prev is not None:  # Algorithm 2, line 6: D = (1 + 1/(2r)) x0_i - 1/(2r) x0_{i-1}, r = h_prev/h
                d = x0 + (h / h_prev / 2) * (x0 - x0_prev)
            if noise is None:  # eq. 9: x = (s_next / s) x - alpha_next (exp(-h) - 1) D
                x = (std_next / std) * x - alpha_next * torch.expm1(-h) * d
            else:  # the SDE's exact linear part and a Gaussian of variance s_next^2 (1 - exp(-2h))
                x = (std_next / std) * (-h).exp() * x - alpha_next * torch.expm1(-2 * h) * d
                x = x + std_next * (-torch.expm1(-2 * h)).sqrt() * noise()
            x0_prev, h_prev = x0, h
        x = replace(x, s_next) if replace is not None else x
    return x


def heun(denoise: Denoise, x: torch.Tensor, ts: torch.Tensor, sigmas: torch.Tensor, replace: Replace | None = None):
    """Karras et al. Algorithm 1 (no churn) in y = x / alpha; ``x``, ``ts``, ``sigmas`` as in ``dpmpp_2m``."""
    y = x / _alpha(sigmas[0])

    def slope(y: torch.Tensor, t: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        # dy/dsigma = (y - D(y; sigma)) / sigma (Karras eq. 3); the network sees the VP input y alpha.
        return (y - denoise(y * _alpha(sigma), t, sigma)) / sigma

    for i in range(len(ts)):
        s, s_next = sigmas[i], sigmas[i + 1]
        d = slope(y, ts[i], s)
        y_next = y + (s_next - s) * d  # Euler (line 5)
        if s_next > 0:  # Heun's correction (lines 7-8), not on the last step to sigma = 0
            y_next = y + (s_next - s) * (d + slope(y_next, ts[i + 1], s_next)) / 2
        y = y_next
        if replace is not None:
            y = replace(y * _alpha(s_next), s_next) / _alpha(s_next)
    return y


def _alpha(sigma: torch.Tensor) -> torch.Tensor:
    return (1 + sigma**2).rsqrt()  # sqrt(abar) with abar = 1 / (1 + sigma^2)


def _std(sigma: torch.Tensor) -> torch.Tensor:
    return sigma * _alpha(sigma)  # sqrt(1 - abar)


def evaluations(sampler: str, levels: int) -> int:
    """Network evaluations of a solver over ``levels`` nonzero noise levels (Heun: 2N - 1)."""
    return 2 * levels - 1 if sampler == "heun" else levels
