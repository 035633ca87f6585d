"""The few-step solvers (gen_lightning/diffusion/samplers/: dpmpp_2m.py, dpmpp_2m_sde.py, heun.py) step for step
against diffusers' schedulers.

DPM-Solver++(2M) and its SDE variant against ``DPMSolverMultistepScheduler``, Heun (Karras et al. 2022, Algorithm 1)
on Karras et al.'s noise levels against ``HeunDiscreteScheduler``: the same schedule, initial sample, model
outputs and random numbers, compared after the whole chain. Then the solvers on the exact denoiser of a two-point
distribution, where every sample must land on one of the two points.
"""

from __future__ import annotations

import pytest
import torch
from test_diffusion import reference, same_schedule, toy_model

from gen_lightning.diffusion import GaussianDiffusion
from gen_lightning.diffusion.edit import sdedit
from gen_lightning.diffusion.process import inpaint_mask
from gen_lightning.diffusion.samplers import get_sampler, make_sampler, sampler_names
from gen_lightning.diffusion.samplers.solver import SolverSampler

SOLVERS = [name for name in sampler_names() if issubclass(get_sampler(name), SolverSampler)]


def evaluations(sampler: str, levels: int) -> int:
    return get_sampler(sampler).network_evaluations(levels)


SHAPE = (2, 1, 4, 4)


def tolerance(schedule: str, karras: bool) -> dict:
    # The cosine schedule's Karras levels start at sigma(T - 1) = 2e4: float32 rounding of y = x / alpha and of
    # y - sigma eps is ~2e-3 there, and the two implementations round in different places. Elsewhere: 1e-5.
    return {"rtol": 1e-2, "atol": 1e-2} if schedule == "cosine" and karras else {"rtol": 1e-5, "atol": 1e-5}


def dpm_reference(schedule: str, prediction: str, sde: bool, karras: bool):
    """diffusers' DPM-Solver++(2M) set up like ours: DDIM's trailing timesteps (or Karras levels), x0 clipped to
    [-1, 1] (dynamic thresholding with sample_max_value 1 is a clip), first order on the first and last step."""
    diffusers = pytest.importorskip("diffusers")
    base = reference("ddpm", schedule, 1000, prediction)  # the betas and prediction type of our process
    return diffusers.DPMSolverMultistepScheduler(
        **{k: base.config[k] for k in ("num_train_timesteps", "beta_schedule", "beta_start", "beta_end")},
        prediction_type=base.config.prediction_type,
        algorithm_type="sde-dpmsolver++" if sde else "dpmsolver++",
        solver_order=2,
        solver_type="midpoint",
        thresholding=True,
        sample_max_value=1.0,
        timestep_spacing="linspace" if karras else "trailing",
        use_karras_sigmas=karras,
        final_sigmas_type="zero",
        lower_order_final=True,
    )


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
@pytest.mark.parametrize("prediction", ["epsilon", "v"])
@pytest.mark.parametrize("sampler", ["dpmpp_2m", "dpmpp_2m_sde", "dpmpp_2m_karras"])
@pytest.mark.parametrize("steps", [10, 25])
def test_dpm_solver_matches_diffusers(schedule, prediction, sampler, steps):
    process = GaussianDiffusion(1000, schedule, prediction)
    ref = dpm_reference(schedule, prediction, sde="_sde" in sampler, karras="karras" in sampler)
    ref.set_timesteps(steps)
    ref.set_begin_index(0)  # Karras levels can share a (rounded) timestep: no look-up of the first one
    same_schedule(process, ref)
    ts, sigmas = make_sampler(sampler, process, steps).levels()
    torch.testing.assert_close(sigmas, ref.sigmas, rtol=1e-5, atol=1e-6)
    if "karras" not in sampler:
        assert ts.tolist() == ref.timesteps.tolist()
    else:  # diffusers rounds (linear) or truncates (cosine) the Karras levels' timesteps; ours are exact reals
        assert (ts - ref.timesteps).abs().max() <= 1 and ts.dtype == torch.float32

    ours = process.sample(toy_model, SHAPE, torch.Generator().manual_seed(2), sampler=sampler, steps=steps)
    g = torch.Generator().manual_seed(2)
    x = torch.randn(SHAPE, generator=g)
    for t, ref_t in zip(ts, ref.timesteps):  # the network sees our timesteps; diffusers' update rule does the rest
        x = ref.step(toy_model(x, t.expand(SHAPE[0])), ref_t, x, generator=g).prev_sample
    torch.testing.assert_close(ours, x, **tolerance(schedule, "karras" in sampler))


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
@pytest.mark.parametrize("prediction", ["epsilon", "v"])
@pytest.mark.parametrize("steps", [5, 13])
def test_heun_matches_diffusers(schedule, prediction, steps):
    """Karras et al. Algorithm 1 over Karras levels from sigma(T - 1) to sigma(0): 2N - 1 network evaluations."""
    diffusers = pytest.importorskip("diffusers")
    process = GaussianDiffusion(1000, schedule, prediction)
    base = reference("ddpm", schedule, 1000, prediction)
    ref = diffusers.HeunDiscreteScheduler(
        **{k: base.config[k] for k in ("num_train_timesteps", "beta_schedule", "beta_start", "beta_end")},
        prediction_type=base.config.prediction_type,
        use_karras_sigmas=True,
        timestep_spacing="linspace",  # Karras levels between sigma(T - 1) and sigma(0)
        clip_sample=True,
        clip_sample_range=1.0,
    )
    ref.set_timesteps(steps)
    ref.set_begin_index(0)  # Karras levels can share a (rounded) timestep: no look-up of the first one
    same_schedule(process, ref)
    ts, sigmas = make_sampler("heun", process, steps).levels()
    torch.testing.assert_close(ts, ref.timesteps[::2], rtol=1e-5, atol=1e-4)  # diffusers lists each twice

    calls = []

    def counted(x, t):
        calls.append(t)
        return toy_model(x, t)

    ours = process.sample(counted, SHAPE, torch.Generator().manual_seed(3), sampler="heun", steps=steps)
    assert len(calls) == evaluations("heun", steps) == 2 * steps - 1
    x = torch.randn(SHAPE, generator=torch.Generator().manual_seed(3)) * (1 + sigmas[0] ** 2).sqrt()  # VE sample
    for t in ref.timesteps:
        out = toy_model(ref.scale_model_input(x, t), t.expand(SHAPE[0]))
        x = ref.step(out, t, x).prev_sample
    torch.testing.assert_close(ours, x, **tolerance(schedule, karras=True))


def two_point_denoiser(process: GaussianDiffusion, level: float):
    """The exact denoiser of "constant image +level or -level" at real timesteps (log sigma interpolated between
    the trained ones, as ``samplers.solver.sigma_to_t`` maps the Karras levels)."""
    abar = process.abar_ext[1:]  # (T,)
    log_sigma = ((1 - abar) / abar).sqrt().log()

    def model(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        lo = t.floor().long().clamp(max=len(log_sigma) - 2)
        w = (t - lo).view(-1, 1, 1, 1)
        sigma = (log_sigma[lo].view(-1, 1, 1, 1) * (1 - w) + log_sigma[lo + 1].view(-1, 1, 1, 1) * w).exp()
        a = 1 / (1 + sigma**2)
        sa, sb = a.sqrt(), (1 - a).sqrt()
        x0 = level * torch.tanh(sa * level * x.sum(dim=(1, 2, 3), keepdim=True) / sb**2)  # E[x0 | x_t]
        eps = (x - sa * x0) / sb
        return eps if process.prediction == "epsilon" else sa * eps - sb * x0

    return model


@pytest.mark.parametrize("sampler", sorted(SOLVERS))
@pytest.mark.parametrize("prediction", ["epsilon", "v"])
def test_solvers_draw_the_data_distribution(sampler, prediction):
    process = GaussianDiffusion(200, "linear", prediction)
    g = torch.Generator().manual_seed(4)
    # 20 levels, as DDIM's test: from 10, the rare sample that starts on the boundary between the points (1 of 200
    # here, 2 for DDIM) ends between them.
    x = process.sample(two_point_denoiser(process, 0.5), (200, 1, 4, 4), g, sampler=sampler, steps=20)
    sign = x.mean(dim=(1, 2, 3)).sign().view(-1, 1, 1, 1)
    assert (x - 0.5 * sign).abs().max() < 1e-3  # every sample is one of the two images
    assert 0.35 < (sign > 0).float().mean() < 0.65


@pytest.mark.parametrize("sampler", ["dpmpp_2m", "dpmpp_2m_sde_karras", "heun"])
def test_solvers_inpaint_and_refuse_repaint_jumps(sampler):
    process = GaussianDiffusion(200, "cosine")
    known = torch.full((8, 1, 8, 8), 0.5)
    known[4:] = -0.5
    mask = inpaint_mask("right", known.shape)
    g = torch.Generator().manual_seed(5)
    model = two_point_denoiser(process, 0.5)
    out = process.sample(model, known.shape, g, sampler, 10, known=known, mask=mask)
    assert torch.equal(out[mask.expand_as(out)], known[mask.expand_as(known)])
    assert (out - known).abs().max() < 1e-3
    with pytest.raises(ValueError, match="resample > 1.*need sampler='ddpm' or 'ddim'"):
        process.sample(model, known.shape, g, sampler, 10, known=known, mask=mask, resample=2)


@pytest.mark.parametrize("sampler", sorted(SOLVERS))
def test_solvers_edit_from_part_way(sampler):
    """SDEdit with a solver starts at its first level below strength * T and keeps the input's point; strength 1
    is a sample from pure noise, 0 the input itself."""
    process = GaussianDiffusion(200, "linear")
    images = torch.full((64, 1, 8, 8), 0.5)
    images[32:] = -0.5
    seen = []
    exact = two_point_denoiser(process, 0.5)

    def model(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        seen.append(round(float(t[0]), 3))
        return exact(x, t)

    def g() -> torch.Generator:
        return torch.Generator().manual_seed(6)

    # t0 = 40 of 200: the input's signal (sum over 64 pixels) is ~5 noise std, so each edit keeps its point.
    out = sdedit(process, model, images, 0.2, g(), sampler, 20)
    assert (out - images).abs().max() < 1e-3
    ts, _ = make_sampler(sampler, process, 20).levels()
    kept = [round(float(t), 3) for t in ts if t < 40]
    assert 0 < len(kept) < 20 and seen[0] == kept[0] and len(seen) == evaluations(sampler, len(kept))
    if sampler == "dpmpp_2m":
        assert kept == [39, 29, 19, 9]  # DDIM's trailing timesteps 199, 189, ..., 9 below 40
    full = sdedit(process, exact, images, 1.0, g(), sampler, 20)
    assert torch.equal(full, process.sample(exact, images.shape, g(), sampler, 20))
    assert torch.equal(sdedit(process, exact, images, 0.0, g(), sampler, 20), images)
