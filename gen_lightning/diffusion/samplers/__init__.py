"""Diffusion samplers as objects: one class per file, found by name.

A sampler is a subclass of ``base.Sampler`` with a class attribute ``name``; defining it registers it, and this
package imports every module beside it, so a new sampler is one new file here (``model.sampler=NAME``,
``gen-lightning sample ckpt=... sampler=NAME steps=N`` then find it). Two bases hold what families of samplers
share: ``stepwise.StepSampler`` (one network evaluation per step between integer timesteps: DDPM, DDIM; RePaint's
jumps) and ``solver.SolverSampler`` (ODE/SDE solvers over noise levels: DPM-Solver++(2M), its SDE variant, Heun).
"""

import importlib
import pkgutil

from gen_lightning.diffusion.samplers.base import Denoiser, Sampler, get_sampler, make_sampler, randn, sampler_names

for _module in pkgutil.iter_modules(__path__):  # registers every sampler defined beside this file
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["Denoiser", "Sampler", "get_sampler", "make_sampler", "randn", "sampler_names"]
