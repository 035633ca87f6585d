"""The interface every diffusion sampler implements, and the registry that finds a sampler by name.

A sampler is built for one noise process and one step count (``Sampler(process, steps, eta)``, which validates
them: the one place where a step count is checked), then draws from noise (``sample``) or edits a given input
(``edit``, SDEdit: Meng et al. 2021). It sees the denoiser only as a callable ``model(x_t, t) -> output`` over
tensors of any shape (B, ...): images (B, C, H, W) or latents (B, D) alike. ``t`` is a (B,) tensor of timestep
indices in ``[0, T)`` (integers, or reals between them for the solvers' noise levels).

The process (``process.GaussianDiffusion``) provides ``num_timesteps``, ``abar(t)`` (t = -1: the clean data),
``abar_ext`` (abar of t = -1 .. T - 1), ``q_sample``, ``predict_start(x_t, t, output)`` and ``predict_at(x_t, abar,
output)`` (the clipped x0 and the noise re-derived from it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import torch

Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
_REGISTRY: dict[str, type[Sampler]] = {}


def randn(shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """Standard normal noise drawn on the generator's device: a CPU generator gives one noise anywhere."""
    draw_on = generator.device if generator is not None else device
    return torch.randn(shape, generator=generator, device=draw_on).to(device)


def trailing_timesteps(num_timesteps: int, steps: int) -> list[int]:
    """``steps`` timesteps from ``T - 1`` down, evenly spaced ("trailing" spacing of Lin et al. 2024).

    Unlike DDIM's original ``range(0, T, T // steps)``, which never visits t = T - 1, the sequence starts from
    pure noise; with ``steps == T`` it is every timestep. diffusers: ``timestep_spacing="trailing"``.
    """
    return [round((steps - i) * num_timesteps / steps) - 1 for i in range(steps)]


class Sampler:
    """One way of walking a trained diffusion model from noise to data."""

    name: ClassVar[str]  # the registry key: model.sampler, sampler=NAME
    title: ClassVar[str]  # how error messages call it
    all_timesteps: ClassVar[bool] = False  # True: runs every timestep of the process, takes no step count

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:  # a concrete sampler (the bases define no name)
            if cls.name in _REGISTRY:
                raise ValueError(f"two samplers are named {cls.name!r}: {_REGISTRY[cls.name]} and {cls}")
            _REGISTRY[cls.name] = cls

    def __init__(self, process: Any, steps: int | None = None, eta: float = 0.0) -> None:
        self.process = process
        self.steps = self.check_steps(steps, process.num_timesteps)
        if not 0.0 <= eta <= 1.0:
            raise ValueError(f"DDIM eta must be in [0, 1], got {eta}")
        self.eta = eta

    def check_steps(self, steps: int | None, num_timesteps: int) -> int:
        """The number of steps, ``num_timesteps`` when None; anything but an integer in [1, T] is refused."""
        if steps is None:
            return num_timesteps
        if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= num_timesteps:
            raise ValueError(
                f"{self.title} steps must be in [1, num_timesteps={num_timesteps}], got steps={steps!r} "
                f"(leave steps unset, null, for all {num_timesteps})"
            )
        return steps

    @classmethod
    def network_evaluations(cls, steps: int) -> int:
        """Network evaluations per sample over ``steps`` steps (noise levels)."""
        return steps

    def info(self) -> dict:
        """What the samples depend on (the metric protocol card): name, steps, evaluations, DDIM's eta."""
        return {
            "sampler": self.name,
            "steps": self.steps,
            "evaluations": self.network_evaluations(self.steps),  # of the network per sample (Heun: 2 steps - 1)
            "eta": None,
        }

    def sample(
        self,
        model: Denoiser,
        shape: tuple[int, ...],
        generator: torch.Generator | None = None,
        known: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        resample: int = 1,
        jump: int = 10,
    ) -> torch.Tensor:
        """Draw ``shape`` from x_T ~ N(0, I). With ``known`` and a boolean ``mask`` (True = known), inpaint
        (RePaint, Lugmayr et al. 2022): the output equals ``known`` where ``mask`` is True; ``resample > 1`` adds
        RePaint's jumps back of ``jump`` steps where the sampler has them."""
        raise NotImplementedError

    def edit(self, model: Denoiser, x: torch.Tensor, strength: float, generator: torch.Generator | None = None):
        """SDEdit: ``x`` noised to ``strength * T`` and denoised by this sampler's steps below it."""
        raise NotImplementedError


def sampler_names() -> list[str]:
    return sorted(_REGISTRY)


def get_sampler(name: str) -> type[Sampler]:
    """The sampler class registered as ``name``."""
    if name not in _REGISTRY:
        raise ValueError(f"sampler must be one of {sampler_names()}, got {name!r}")
    return _REGISTRY[name]


def make_sampler(sampler: str | Sampler, process: Any, steps: int | None = None, eta: float = 0.0) -> Sampler:
    """A sampler for ``process``: built from its name, or ``sampler`` itself when it is one already."""
    if isinstance(sampler, Sampler):
        if steps is not None or eta != 0.0:
            raise ValueError(f"steps and eta are the sampler's own: {sampler.name} was built with them")
        return sampler
    return get_sampler(sampler)(process, steps, eta)
