"""Samplers of one trained diffusion model: sample quality against network evaluations and time.

One DDPM (Ho et al. 2020) is trained through ``gen-lightning fit`` for ``--steps`` steps (or ``--minutes`` of
wall-clock time) on the embedded 8x8 digits with a U-Net of 0.70M parameters (28x28 costs ~12x per step: 1,000
DDPM samples over T = 1000 steps would take about 2 hours on this CPU). Its last checkpoint is then evaluated by
``gen-lightning evaluate`` once per sampler, changing only the loaded model's sampling hyperparameters
(``model.sampler=ddpm``: ancestral, all T steps; ``model.sampler=ddim model.sample_steps=S``: deterministic DDIM,
eta = 0; ``model.sampler=dpmpp_2m|dpmpp_2m_karras|dpmpp_2m_sde|dpmpp_2m_sde_karras|heun model.sample_steps=S``:
DPM-Solver++(2M) of Lu et al. 2022 on DDIM's timesteps or Karras et al.'s noise levels, its SDE variant, and
Heun's second-order method of Karras et al. 2022 (EDM, Algorithm 1; 2 S - 1 evaluations)), with the
classifier-feature metrics on ``--num-samples`` samples (the same seeds for every sampler). The time per image is
measured apart from the metrics: one batch of ``--time-batch`` images per sampler, in this process, one thread.

    PYTHONPATH=. python benchmarks/diffusion_samplers.py --steps 2500 [--timesteps 200] [--num-samples 1000]

Measured 2026-11-30 on the shared development machine (2 CPU cores shared with up to 7 other agents' jobs, no
GPU), one torch thread, seed 0: T = 200 (linear betas scaled by 1000 / T), 2,500 training steps of batch 64 (109
epochs, 57 min at load 13-22, final val/loss 0.0701), EMA weights; 1,000 samples, classifier features (validation
accuracy 0.989), reference: the 1,527-image training split (its own IS_clf 9.70); KID raw (not x1000), 100 subsets
of 1,000 (std 9-23: values below ~20 are zero within noise). NFE: network evaluations per image.

    sampler             steps  NFE  FID_clf IS_clf  KID_clf  prec recall  s/image eval s  load (1 min)
    ddpm                  200  200     3.31  8.962    -15.9 0.816  0.907   0.4940 1175.3  22.6 -> 19.3
    ddim                   50   50     5.71  8.942     22.2 0.791  0.940   0.1202  351.0  19.3 -> 17.7
    ddim                   25   25     7.34  8.918     49.6 0.794  0.927   0.0596  184.7  17.7 -> 19.5
    ddim                   10   10    18.20  8.691    220.1 0.796  0.878   0.0238   45.4  19.5 -> 15.6
    dpmpp_2m               25   25     4.37  8.995      3.4 0.798  0.952   0.0605   72.0  15.6 -> 16.1
    dpmpp_2m               10   10     6.30  8.917     48.3 0.809  0.912   0.0226   43.9  16.1 -> 16.8
    dpmpp_2m_karras        25   25     4.03  8.924     -6.7 0.766  0.960   0.0626  113.6  16.8 -> 17.9
    dpmpp_2m_karras        10   10     3.89  8.698     -1.3 0.703  0.972   0.0266   65.0  17.9 -> 16.1
    dpmpp_2m_sde           25   25     5.73  8.780     -1.1 0.814  0.929   0.0556   91.2  16.1 -> 13.3
    dpmpp_2m_sde           10   10     8.01  8.819     37.7 0.832  0.924   0.0256   38.2  13.3 -> 12.4
    dpmpp_2m_sde_karras    25   25     3.62  8.727    -20.2 0.810  0.946   0.0613  103.0  12.4 -> 12.8
    dpmpp_2m_sde_karras    10   10    10.68  8.447    100.1 0.657  0.951   0.0260   56.3  12.8 -> 14.3
    heun                   13   25     3.19  8.939    -18.8 0.739  0.971   0.0605   70.2  14.3 -> 13.2
    heun                    5    9    31.13  8.336    473.4 0.352  0.968   0.0225   32.6  13.2 -> 13.6

Against all 200 ancestral steps (FID_clf 3.31): within 25 evaluations, Heun on Karras levels reaches 3.19 (0.96x)
and SDE-DPM-Solver++(2M) on Karras levels 3.62 (1.09x), where DDIM-25 gives 7.34 (2.2x); within 10 evaluations,
DPM-Solver++(2M) on Karras levels reaches 3.89 (1.18x) and on DDIM's timesteps 6.30 (1.9x), where DDIM-10 gives
18.20 (5.5x). The Karras levels spend the steps at low noise: more recall, less precision at 10 steps (0.70
against DDPM's 0.82). Heun with 5 levels (9 evaluations) is too coarse, and the SDE variant needs more steps than
the ODE one (its injected noise is removed only by later steps). One sample set of 1,000 per row: FID_clf moves by
a few tenths between seeds, so rows closer than that are ties. Wall times are at load 12-23 (2 cores): compare
them within a row's load, or by NFE (the network dominates: time per image is linear in NFE).
Deterministic samplers draw the same digit from the same noise (``samples_*.png``). An earlier run (2026-11-26,
2,484 steps in 7 minutes at load ~3) gave DDPM 3.28, DDIM 50 / 25 / 10: 5.85 / 7.51 / 18.35, s/image 0.137 (DDPM)
to 0.006 (DDIM 10).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from cli_runs import ROOT, command, load_average, run, shown

sys.path.insert(0, str(ROOT))
from gen_lightning.diffusion.samplers import get_sampler  # noqa: E402

METRICS = ("fid_clf", "is_clf", "kid_clf", "precision_clf", "recall_clf")
SOLVER_ROWS = ("dpmpp_2m", "dpmpp_2m_karras", "dpmpp_2m_sde", "dpmpp_2m_sde_karras")


def fit_command(args: argparse.Namespace, run_dir: Path) -> list[str]:
    seconds = round(60 * args.minutes)
    budget = f"trainer.max_steps={args.steps}" if args.steps else f"+trainer.max_time={{seconds:{seconds}}}"
    return command(
        "fit",
        "model=ddpm",
        "data=digits",
        "metrics=none",  # evaluated afterwards, once per sampler
        "logger=none",
        "trainer.enable_progress_bar=false",
        "trainer.max_epochs=-1",  # the step budget (or the clock) alone stops training
        budget,
        "trainer.check_val_every_n_epoch=20",  # ~480 steps: the preview grid costs 64 x 50 DDIM steps
        "trainer.gradient_clip_val=1.0",  # Ho et al.
        f"model.hidden_dim={args.hidden_dim}",
        "model.channel_mult=[1,2]",  # 8x8 -> 4x4
        "model.num_res_blocks=1",
        "model.attention_resolutions=[]",  # self-attention only in the middle (4x4)
        "model.dropout=0.0",
        f"model.num_timesteps={args.timesteps}",
        "model.lr=1e-3",  # a small network trained for minutes: higher than Ho et al.'s 2e-4
        "model.warmup_steps=100",
        "model.ema_decay=0.999",
        "model.sample_time_batch=0",
        f"seed={args.seed}",
        f"run_dir={run_dir}",
    )


def evaluate(ckpt: Path, sampler: str, steps: int, args: argparse.Namespace) -> dict:
    """Metrics of one sampler through ``gen-lightning evaluate`` (its ``<ckpt>.eval.json``, kept per sampler)."""
    all_timesteps = get_sampler(sampler).all_timesteps  # DDPM's ancestral sampler takes no step count
    overrides = [f"model.sampler={sampler}"] + ([] if all_timesteps else [f"model.sample_steps={steps}"])
    cmd = command(
        "evaluate",
        f"ckpt={ckpt}",
        "metrics=classifier",
        f"metrics.num_samples={args.num_samples}",
        f"metrics.kid_subset_size={min(1000, args.num_samples)}",
        f"metrics.cache_dir={args.out / 'cache'}",
        *overrides,
    )
    load_before = load_average()
    run(cmd, args.threads, args.out / f"eval_{sampler}{steps}.log")
    result = json.loads(ckpt.with_suffix(".eval.json").read_text())
    (args.out / f"eval_{sampler}{steps}.json").write_text(json.dumps(result, indent=2))
    card = result["protocol"]
    # The override must reach sample(): the card records what actually produced the samples.
    if (card["sample_sampler"], card["sample_steps"]) != (sampler, steps):
        raise RuntimeError(f"asked for {sampler} with {steps} steps, evaluated {card['sample_sampler']} {card}")
    return {
        "sampler": sampler,
        "steps": steps,
        "evaluations": get_sampler(sampler).network_evaluations(steps),
        **{name: result["metrics"][f"val/{name}"] for name in METRICS},
        "eval_s": round(card["seconds"], 1),
        "load": f"{load_before} -> {load_average()}",
        "command": shown(cmd, args.threads),
    }


def time_sampling(ckpt: Path, rows: list[dict], args: argparse.Namespace) -> None:
    """Adds ``s_per_image`` (one batch of ``--time-batch``) to each row and writes a grid of its first 64."""
    sys.path.insert(0, str(ROOT))
    from torchvision.utils import save_image

    from gen_lightning.callbacks.samples import image_grid
    from gen_lightning.run.checkpoint import load_module

    torch.set_num_threads(args.threads)
    module = load_module(ckpt)
    module.sample(2, torch.Generator().manual_seed(0), sampler="ddim", steps=2)  # warm-up
    for row in rows:
        steps = None if get_sampler(row["sampler"]).all_timesteps else row["steps"]
        start = time.perf_counter()
        images = module.sample(args.time_batch, torch.Generator().manual_seed(0), sampler=row["sampler"], steps=steps)
        row["s_per_image"] = (time.perf_counter() - start) / args.time_batch
        save_image(image_grid(images[:64]), args.out / f"samples_{row['sampler']}{row['steps']}.png")


def print_table(rows: list[dict], fit: dict, args: argparse.Namespace) -> None:
    print(
        f"\nDDPM on the 8x8 digits, T = {args.timesteps}, trained {fit['global_step']} steps "
        f"({fit['epochs']} epochs, {fit['train_time_s'] / 60:.0f} min, load {fit['load']}, final val/loss "
        f"{fit['val_loss']:.4f}); classifier features, {args.num_samples} samples (KID raw, not x1000)\n"
    )
    print(
        f"{'sampler':<19} {'steps':>5} {'NFE':>4} {'FID_clf':>8} {'IS_clf':>6} {'KID_clf':>8} {'prec':>5} "
        f"{'recall':>6} {'s/image':>8} {'eval s':>6}  load (1/5/15 min, before -> after)"
    )
    for r in rows:
        print(
            f"{r['sampler']:<19} {r['steps']:>5} {r['evaluations']:>4} {r['fid_clf']:>8.2f} {r['is_clf']:>6.3f} "
            f"{r['kid_clf']:>8.1f} {r['precision_clf']:>5.3f} {r['recall_clf']:>6.3f} {r['s_per_image']:>8.4f} "
            f"{r['eval_s']:>6.1f}  {r['load']}"
        )
    print(f"\ns/image: one batch of {args.time_batch}, {args.threads} thread(s), EMA weights\nto reproduce:")
    for command_line in (fit["command"], *(r["command"] for r in rows)):
        print(f"  {command_line}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=7.0, help="training time (trainer.max_time)")
    parser.add_argument("--steps", type=int, default=0, help="training steps instead of --minutes (a shared machine)")
    parser.add_argument("--timesteps", type=int, default=200, help="T of the noise process (DDPM runs all)")
    parser.add_argument("--hidden-dim", type=int, default=32, help="U-Net base width")
    parser.add_argument("--ddim-steps", type=int, nargs="+", default=[50, 25, 10])
    parser.add_argument(
        "--solvers",
        nargs="*",
        default=[f"{name}:{steps}" for name in SOLVER_ROWS for steps in (25, 10)] + ["heun:13", "heun:5"],
        help="few-step solvers as NAME:STEPS (heun: 2 STEPS - 1 network evaluations)",
    )
    parser.add_argument("--num-samples", type=int, default=1000, help="generated samples for the metrics")
    parser.add_argument("--time-batch", type=int, default=100, help="images per timed sampling batch")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the machine is shared)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "benchmarks" / "diffusion_samplers")
    args = parser.parse_args()
    args.out = args.out.resolve()

    run_dir = args.out / "ddpm"
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    fit = {"command": "(reused)", "load": "-"}
    if not ckpt.is_file():  # a second invocation re-evaluates the trained model
        cmd = fit_command(args, run_dir)
        load_before = load_average()
        run(cmd, args.threads, args.out / "fit.log")
        fit.update(command=shown(cmd, args.threads), load=f"{load_before} -> {load_average()}")
    summary = json.loads((run_dir / "metrics.json").read_text())
    fit.update(
        global_step=summary["global_step"],
        epochs=summary["epochs"],
        val_loss=summary["final"].get("val/loss", float("nan")),
        train_time_s=summary["train_time_s"],
    )
    print(json.dumps(fit), flush=True)

    rows = [evaluate(ckpt, "ddpm", args.timesteps, args)]
    rows += [evaluate(ckpt, "ddim", steps, args) for steps in args.ddim_steps]
    for solver in args.solvers:
        name, steps = solver.split(":")
        rows.append(evaluate(ckpt, name, int(steps), args))
    for row in rows:
        print(json.dumps(row), flush=True)
    time_sampling(ckpt, rows, args)
    (args.out / "results.json").write_text(json.dumps({"fit": fit, "samplers": rows}, indent=2))
    print_table(rows, fit, args)


if __name__ == "__main__":
    main()
