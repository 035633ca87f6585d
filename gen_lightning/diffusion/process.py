"""The Gaussian diffusion process, apart from the network that denoises it.

- Forward process and training loss: Ho et al. 2020, "Denoising Diffusion Probabilistic Models" (DDPM),
  eq. 4 and the simple loss of eq. 14; linear betas from 1e-4 to 0.02 over 1000 steps (scaled by 1000 / T for
  other T, as in Nichol & Dhariwal 2021), or the cosine schedule of Nichol & Dhariwal 2021, eq. 17.
- Prediction targets: the noise (epsilon, Ho et al.) or the velocity v = sqrt(abar) eps - sqrt(1 - abar) x0
  (Salimans & Ho 2022, "Progressive Distillation", section 4).
- Sampling: ``sample`` runs a sampler of ``samplers/`` (DDPM, DDIM, DPM-Solver++(2M) and its SDE variant, Heun/EDM),
  found by name, on any denoiser ``model(x_t, t) -> output`` over tensors of any shape (B, ...); with a known
  input and a mask it inpaints (RePaint, Lugmayr et al. 2022).

The predicted clean sample is clipped to [-clip, clip] (images: 1; ``clip=None`` for unbounded data such as
latents) and the noise re-derived from the clipped one (guided-diffusion's convention; in diffusers
``clip_sample=True`` and ``use_clipped_model_output=True``).
Timestep ``-1`` denotes the clean data (abar = 1).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from gen_lightning.diffusion.samplers import Denoiser, Sampler, make_sampler

SCHEDULES = ("linear", "cosine")
PREDICTIONS = ("epsilon", "v")
VARIANCES = ("small", "large")


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
        clip: float | None = 1.0,
    ) -> None:
        super().__init__()
        if clip is not None and not clip > 0:
            raise ValueError(f"clip (predicted clean samples lie in [-clip, clip]) must be > 0 or None, got {clip}")
        self.num_timesteps = num_timesteps
        self.clip = clip
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
        """x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps (Ho et al. eq. 4). x0, noise (B, ...); t (B,)."""
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
        """(x0, eps) from the network output at timestep ``t``; x0 clipped to [-clip, clip], eps consistent."""
        return self.predict_at(x_t, self.abar(t).to(x_t.dtype), output)

    def predict_at(self, x_t: torch.Tensor, a: torch.Tensor, output: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``predict_start`` at the noise level abar = ``a`` (a scalar tensor)."""
        if self.prediction == "epsilon":
            x0 = (x_t - (1 - a).sqrt() * output) / a.sqrt()  # Ho et al. eq. 15
        else:
            x0 = a.sqrt() * x_t - (1 - a).sqrt() * output
        if self.clip is not None:
            x0 = x0.clamp(-self.clip, self.clip)
        return x0, (x_t - a.sqrt() * x0) / (1 - a).sqrt()

    # ---- sampling -------------------------------------------------------------------------------------------

    @torch.no_grad()
    def sample(
        self,
        model: Denoiser,
        shape: tuple[int, ...],
        generator: torch.Generator | None = None,
        sampler: str | Sampler = "ddpm",
        steps: int | None = None,
        eta: float = 0.0,
        known: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        resample: int = 1,
        jump: int = 10,
    ) -> torch.Tensor:
        """Draw ``shape`` (B, ...) from noise with ``sampler`` (a name of ``samplers/`` with its ``steps`` and
        ``eta``, or a ``Sampler``); with ``known`` (of ``shape``) and a boolean ``mask`` (True = known,
        broadcastable to ``known``), inpaint: the output equals ``known`` exactly where ``mask`` is True.

        Random numbers come only from ``generator``, in the order the sampler documents.
        """
        if (known is None) != (mask is None):
            raise ValueError("inpainting needs both the known image and its mask")
        if mask is not None and mask.dtype != torch.bool:
            raise ValueError(f"the inpainting mask must be boolean (True = known pixel), got {mask.dtype}")
        if known is not None and tuple(known.shape) != tuple(shape):
            raise ValueError(f"known image of shape {tuple(known.shape)} does not match the sample shape {shape}")
        sampler = make_sampler(sampler, self, steps, eta)
        return sampler.sample(model, tuple(shape), generator, known, mask, resample, jump)


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
