"""The Gaussian diffusion process, apart from the network that denoises it.

- Forward process and training loss: Ho et al. 2020, "Denoising Diffusion Probabilistic Models" (DDPM),
  eq. 4 and the simple loss of eq. 14; linear betas from 1e-4 to 0.02 over 1000 steps (scaled by 1000 / T for
  other T, as in Nichol & Dhariwal 2021), or the cosine schedule of Nichol & Dhariwal 2021, eq. 17.
- Prediction targets: the noise (epsilon, Ho et al.) or the velocity v = sqrt(abar) eps - sqrt(1 - abar) x0
  (Salimans & Ho 2022, "Progressive Distillation", section 4).
- Samplers: DDPM ancestral sampling over all T steps (Ho et al., Algorithm 2, eq. 6-7) with the "small"
  posterior variance beta~_t or the "large" one beta_t; DDIM (Song et al. 2021, eq. 12 and 16) over any
  sub-sequence of timesteps with stochasticity eta; the few-step solvers of ``solvers.py``: DPM-Solver++(2M) and
  its SDE variant (Lu et al. 2022) on DDIM's timesteps or Karras et al.'s noise levels (``*_karras``), and Heun's
  second-order method on Karras et al.'s levels (EDM, Karras et al. 2022, Algorithm 1).
- Inpainting: RePaint (Lugmayr et al. 2022, eq. 8 and section 4.2): at every step the known region is
  replaced by the original noised to the same level, optionally with "jumps" back up the chain to harmonise
  the two regions.

Every sampling function takes the denoiser as a callable ``model(x_t, t) -> output`` with ``t`` a (B,) int64
tensor of timestep indices in ``[0, T)``; the predicted clean image is clipped to [-1, 1] and the noise
re-derived from the clipped image (guided-diffusion's convention; in diffusers ``clip_sample=True`` and
``use_clipped_model_output=True``).
Timestep ``-1`` denotes the clean data (abar = 1).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from gen_lightning.diffusion import solvers

SCHEDULES = ("linear", "cosine")
PREDICTIONS = ("epsilon", "v")
VARIANCES = ("small", "large")
# The solvers' names say their noise levels: DDIM's timesteps, or Karras et al.'s (eq. 5; always for Heun/EDM).
SOLVERS = {
    "dpmpp_2m": "uniform",
    "dpmpp_2m_karras": "karras",
    "dpmpp_2m_sde": "uniform",
    "dpmpp_2m_sde_karras": "karras",
    "heun": "karras",
}
SAMPLERS = ("ddpm", "ddim", *SOLVERS)
Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _choice(name: str, value: str, options: tuple[str, ...]) -> str:
    if value not in options:
        raise ValueError(f"{name} must be one of {list(options)}, got {value!r}")
    return value


def beta_schedule(schedule: str, num_timesteps: int) -> torch.Tensor:
    """Betas (T,) in float64."""
    _choice("schedule", schedule, SCHEDULES)
    if num_timesteps < 1:
        raise ValueError(f"num_timesteps must be positive, got {num_timesteps}")
    if schedule == "linear":
        scale = 1000 / num_timesteps  # Ho et al.'s 1e-4..0.02 is for T = 1000; keep abar_T ~ 4e-5 for other T
        if 0.02 * scale >= 1:
            raise ValueError(f"the linear schedule needs num_timesteps > 20 (betas scale as 1000 / T): {num_timesteps}")
        return torch.linspace(1e-4 * scale, 0.02 * scale, num_timesteps, dtype=torch.float64)
    # Cosine (Nichol & Dhariwal eq. 17): abar(t) = f(t) / f(0), f(t) = cos^2((t/T + s) / (1 + s) * pi/2), s =
    # 0.008; beta_t = 1 - abar(t+1) / abar(t) capped at 0.999 to avoid the singularity at t = T.
    u = torch.arange(num_timesteps + 1, dtype=torch.float64) / num_timesteps
    f = torch.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2
    return (1 - f[1:] / f[:-1]).clamp(max=0.999)


def ddim_timesteps(num_timesteps: int, steps: int) -> list[int]:
    """``steps`` timesteps from ``T - 1`` down, evenly spaced ("trailing" spacing of Lin et al. 2024).

    Unlike DDIM's original ``range(0, T, T // steps)``, which never visits t = T - 1, the sequence starts from
    pure noise; with ``steps == T`` it is every timestep. diffusers: ``timestep_spacing="trailing"``.
    """
    if not 1 <= steps <= num_timesteps:
        raise ValueError(f"DDIM steps must be in [1, num_timesteps={num_timesteps}], got {steps}")
    return [round((steps - i) * num_timesteps / steps) - 1 for i in range(steps)]


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


def randn(shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """Standard normal noise drawn on the generator's device: a CPU generator gives one noise anywhere."""
    draw_on = generator.device if generator is not None else device
    return torch.randn(shape, generator=generator, device=draw_on).to(device)


def _expand(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Per-example coefficients (B,) -> (B, 1, 1, 1) in x's dtype; scalars stay scalars."""
    return v.to(x.dtype).reshape(-1, *[1] * (x.dim() - 1)) if v.dim() else v.to(x.dtype)


class GaussianDiffusion(nn.Module):
    """Schedule, forward noising, loss and reverse steps. Buffers are derived: not in checkpoints."""

    def __init__(
        self,
        num_timesteps: int = 1000,
        schedule: str = "linear",
        prediction: str = "epsilon",
        variance: str = "small",
    ) -> None:
        super().__init__()
        self.num_timesteps = num_timesteps
        self.prediction = _choice("prediction", prediction, PREDICTIONS)
        self.variance = _choice("variance", variance, VARIANCES)
        betas = beta_schedule(schedule, num_timesteps)
        # abar_t = prod_{s <= t} (1 - beta_s), computed in float64 and stored in float32; entry 0 is t = -1
        # (clean).
        abar = torch.cat([torch.ones(1, dtype=torch.float64), torch.cumprod(1 - betas, 0)])
        self.register_buffer("betas", betas.float(), persistent=False)
        self.register_buffer("abar_ext", abar.float(), persistent=False)

    def abar(self, t: int | torch.Tensor) -> torch.Tensor:
        """abar_t for a timestep index or a (B,) tensor of them; t = -1 gives 1."""
        return self.abar_ext[t + 1]

    # ---- forward process and training ----------------------------------------------------------------------

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps (Ho et al. eq. 4). x0, noise (B, C, H, W); t (B,)."""
        a = _expand(self.abar(t), x0)
        return a.sqrt() * x0 + (1 - a).sqrt() * noise

    def target(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """The regression target: eps, or v = sqrt(abar) eps - sqrt(1 - abar) x0 (Salimans & Ho, sec. 4)."""
        if self.prediction == "epsilon":
            return noise
        a = _expand(self.abar(t), x0)
        return a.sqrt() * noise - (1 - a).sqrt() * x0

    def training_losses(
        self,
        model: Callable[..., torch.Tensor],
        x0: torch.Tensor,
        t: torch.Tensor,
        noise: torch.Tensor,
        model_kwargs: dict | None = None,
    ) -> torch.Tensor:
        """Per-example simple loss ||target - model(x_t, t)||^2, mean over pixels (Ho et al. eq. 14): (B,)."""
        x_t = self.q_sample(x0, t, noise)
        output = model(x_t, t, **(model_kwargs or {}))
        return (output - self.target(x0, t, noise)).pow(2).flatten(1).mean(1)

    # ---- reverse steps -------------------------------------------------------------------------------------

    def predict_start(self, x_t: torch.Tensor, t: int, output: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(x0, eps) from the network output at timestep ``t``; x0 clipped to [-1, 1], eps consistent."""
        return self.predict_at(x_t, self.abar(t).to(x_t.dtype), output)

    def predict_at(self, x_t: torch.Tensor, a: torch.Tensor, output: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``predict_start`` at the noise level abar = ``a`` (a scalar tensor)."""
        if self.prediction == "epsilon":
            x0 = (x_t - (1 - a).sqrt() * output) / a.sqrt()  # Ho et al. eq. 15
        else:
            x0 = a.sqrt() * x_t - (1 - a).sqrt() * output
        x0 = x0.clamp(-1, 1)
        return x0, (x_t - a.sqrt() * x0) / (1 - a).sqrt()

    def ddpm_step(self, x_t: torch.Tensor, output: torch.Tensor, t: int, noise: torch.Tensor | None) -> torch.Tensor:
        """Ancestral step x_t -> x_{t-1} ~ N(mu~_t(x_t, x0), sigma_t^2 I) (Ho et al. eq. 6-7, Algorithm 2)."""
        x0, _ = self.predict_start(x_t, t, output)
        a_t, a_prev = self.abar(t).to(x_t.dtype), self.abar(t - 1).to(x_t.dtype)
        alpha_t = a_t / a_prev
        beta_t = 1 - alpha_t
        mean = (a_prev.sqrt() * beta_t / (1 - a_t)) * x0 + (alpha_t.sqrt() * (1 - a_prev) / (1 - a_t)) * x_t  # eq. 7
        if t == 0:
            return mean  # x_0 is the mean: no noise at the last step
        var = beta_t * (1 - a_prev) / (1 - a_t) if self.variance == "small" else beta_t  # beta~_t or beta_t
        return mean + var.sqrt() * noise

    def ddim_sigma(self, t: int, t_prev: int, eta: float) -> torch.Tensor:
        """sigma_t(eta) = eta sqrt((1 - abar_prev) / (1 - abar_t) (1 - abar_t / abar_prev)), Song eq. 16."""
        a_t, a_prev = self.abar(t), self.abar(t_prev)
        return eta * ((1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev)).sqrt()

    def ddim_step(
        self,
        x_t: torch.Tensor,
        output: torch.Tensor,
        t: int,
        t_prev: int,
        eta: float,
        noise: torch.Tensor | None,
    ) -> torch.Tensor:
        """x_t -> x_{t_prev} (Song et al. eq. 12); deterministic for eta = 0, DDPM-like for eta = 1."""
        x0, eps = self.predict_start(x_t, t, output)
        a_prev = self.abar(t_prev).to(x_t.dtype)
        sigma = self.ddim_sigma(t, t_prev, eta).to(x_t.dtype)
        x = a_prev.sqrt() * x0 + (1 - a_prev - sigma**2).sqrt() * eps  # "predicted x0" + "direction to x_t"
        return x + sigma * noise if noise is not None else x

    # ---- sampling loops ------------------------------------------------------------------------------------

    def timesteps(self, sampler: str, steps: int | None = None) -> list[int]:
        """The descending timesteps a sampler visits, followed by -1 (clean); a solver's ``*_karras`` levels lie
        between them (``noise_levels``)."""
        _choice("sampler", sampler, SAMPLERS)
        if sampler == "ddpm":
            if steps not in (None, self.num_timesteps):
                raise ValueError(
                    f"DDPM ancestral sampling runs all num_timesteps={self.num_timesteps} steps, got "
                    f"steps={steps}; use sampler='ddim' for fewer steps"
                )
            return [*range(self.num_timesteps - 1, -1, -1), -1]
        return [*ddim_timesteps(self.num_timesteps, steps or self.num_timesteps), -1]

    def noise_levels(self, sampler: str, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
        """A solver's timesteps (N,) and noise levels sigma = sqrt((1 - abar) / abar) (N + 1,), the last 0."""
        abar = self.abar_ext[1:]  # (T,)
        sigma_all = ((1 - abar) / abar).sqrt()  # (T,) increasing with t
        if SOLVERS[sampler] == "uniform":
            ts = torch.tensor(self.timesteps(sampler, steps)[:-1], device=sigma_all.device)
            sigmas = sigma_all[ts]
        else:
            self.timesteps(sampler, steps)  # validates steps
            sigmas = solvers.karras_sigmas(float(sigma_all[0]), float(sigma_all[-1]), steps).to(sigma_all)
            ts = solvers.sigma_to_t(sigmas, sigma_all.log())
        return ts, torch.cat([sigmas, sigmas.new_zeros(1)])

    @torch.no_grad()
    def sample(
        self,
        model: Denoiser,
        shape: tuple[int, ...],
        generator: torch.Generator | None = None,
        sampler: str = "ddpm",
        steps: int | None = None,
        eta: float = 0.0,
        known: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        resample: int = 1,
        jump: int = 10,
    ) -> torch.Tensor:
        """Draw ``shape`` images from noise; with ``known`` (B, C, H, W) and a boolean ``mask`` (True = known
        pixel, broadcastable to ``known``), inpaint: the output equals ``known`` exactly where ``mask`` is
        True.

        Random numbers come only from ``generator``, in a fixed order: the initial noise, then per step the
        step's noise (when its variance is non-zero) and the noise of the known region (inpainting only).
        """
        if not 0.0 <= eta <= 1.0:
            raise ValueError(f"DDIM eta must be in [0, 1], got {eta}")
        if (known is None) != (mask is None):
            raise ValueError("inpainting needs both the known image and its mask")
        if mask is not None and mask.dtype != torch.bool:
            raise ValueError(f"the inpainting mask must be boolean (True = known pixel), got {mask.dtype}")
        if known is not None and tuple(known.shape) != tuple(shape):
            raise ValueError(f"known image of shape {tuple(known.shape)} does not match the sample shape {shape}")
        device = self.abar_ext.device
        if sampler in SOLVERS:
            return self._solve(model, shape, generator, sampler, steps or self.num_timesteps, known, mask, resample)
        seq = self.timesteps(sampler, steps)
        # Positions in seq, visited in order: straight down, or with RePaint's jumps back when inpainting.
        path = repaint_schedule(len(seq) - 1, jump, resample) if known is not None else list(range(len(seq)))
        x = randn(shape, generator, device)  # x_T ~ N(0, I)
        for here, there in zip(path[:-1], path[1:]):
            t, t_next = seq[here], seq[there]
            if there > here:  # denoise t -> t_next
                x = self._reverse(model, x, t, t_next, sampler, eta, generator)
                if known is not None:  # RePaint eq. 8: the known region at the same noise level
                    x = torch.where(mask, self._noised(known, t_next, generator), x)
            else:  # RePaint's jump back: x_{t_next} ~ q(x_{t_next} | x_t) = N(sqrt(r) x_t, (1 - r) I)
                ratio = (self.abar(t_next) / self.abar(t)).to(x.dtype)
                x = ratio.sqrt() * x + (1 - ratio).sqrt() * randn(x.shape, generator, device)
        return x

    def _reverse(
        self, model: Denoiser, x: torch.Tensor, t: int, t_prev: int, sampler: str, eta: float, generator
    ) -> torch.Tensor:
        output = model(x, torch.full((x.shape[0],), t, device=x.device, dtype=torch.long))
        if sampler == "ddpm":
            noise = randn(x.shape, generator, x.device) if t > 0 else None
            return self.ddpm_step(x, output, t, noise)
        noisy = eta > 0 and t_prev >= 0  # sigma = 0 at the last step (abar_prev = 1)
        noise = randn(x.shape, generator, x.device) if noisy else None
        return self.ddim_step(x, output, t, t_prev, eta, noise)

    def _solve(self, model: Denoiser, shape, generator, sampler: str, steps: int, known, mask, resample: int):
        """A few-step solver of ``solvers.py`` from x_T ~ N(0, I); inpainting puts the known region back at the
        noise level reached after every step (RePaint's eq. 8 without its jumps)."""
        if resample != 1:
            raise ValueError(f"RePaint's jumps (resample > 1) need sampler='ddpm' or 'ddim', not {sampler!r}")
        ts, sigmas = self.noise_levels(sampler, steps)
        x = randn(shape, generator, self.abar_ext.device)  # x_T ~ N(0, I), as for DDPM and DDIM
        return self.solve(model, x, ts, sigmas, sampler, generator, known, mask)

    def solve(self, model: Denoiser, x, ts, sigmas, sampler: str, generator, known=None, mask=None) -> torch.Tensor:
        """The solver ``sampler`` from the VP sample ``x`` at ``sigmas[0]`` down the levels ``ts`` (N,), ``sigmas``
        (N + 1,) of ``noise_levels`` (or a tail of them: SDEdit starts part-way)."""
        device = x.device

        def denoise(x: torch.Tensor, t: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
            a = (1 + sigma**2).reciprocal().to(x.dtype)  # abar at this noise level
            return self.predict_at(x, a, model(x, t.expand(x.shape[0])))[0]

        def replace(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
            a = (1 + sigma**2).reciprocal().to(x.dtype)
            noised = known if sigma == 0 else a.sqrt() * known + (1 - a).sqrt() * randn(x.shape, generator, device)
            return torch.where(mask, noised, x)

        restore = replace if known is not None else None
        if sampler == "heun":
            return solvers.heun(denoise, x, ts, sigmas, restore)
        noise = (lambda: randn(x.shape, generator, device)) if "_sde" in sampler else None
        return solvers.dpmpp_2m(denoise, x, ts, sigmas, noise, restore)

    def _noised(self, x0: torch.Tensor, t: int, generator) -> torch.Tensor:
        if t < 0:
            return x0
        t_batch = torch.full((x0.shape[0],), t, device=x0.device, dtype=torch.long)
        return self.q_sample(x0, t_batch, randn(x0.shape, generator, x0.device))


MASKS = ("center", "left", "right", "top", "bottom", "lines", "random")


def inpaint_mask(name: str, shape: tuple[int, ...], device: torch.device | str = "cpu") -> torch.Tensor:
    """A standard inpainting mask (N, 1, H, W), True where the pixel is known; ``name`` is the hidden region.

    ``center``: the central square of half the side; ``left``/``right``/``top``/``bottom``: that half;
    ``lines``: every second row (RePaint's "alternating lines"); ``random``: each pixel with probability 1/2,
    from a fixed seed, so the same shape always gives the same mask.
    """
    _choice("mask", name, MASKS)
    n, _, h, w = shape
    rows = torch.arange(h, device=device)[:, None]  # (H, 1)
    cols = torch.arange(w, device=device)[None, :]  # (1, W)
    if name == "random":
        g = torch.Generator().manual_seed(0)
        return (torch.rand((n, 1, h, w), generator=g) < 0.5).to(device)
    hidden = {
        "center": (rows >= h // 4) & (rows < h - h // 4) & (cols >= w // 4) & (cols < w - w // 4),
        "left": cols < w // 2,
        "right": cols >= w - w // 2,
        "top": rows < h // 2,
        "bottom": rows >= h - h // 2,
        "lines": rows % 2 == 1,
    }[name]
    return (~hidden).expand(n, 1, h, w)
