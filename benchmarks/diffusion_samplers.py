"""DDPM against DDIM on one trained diffusion model: sample quality against sampling time (Song et al. 2021, table 1).

One DDPM (Ho et al. 2020) is trained through ``gen-lightning fit`` for ``--minutes`` of wall-clock time on the
embedded 8x8 digits with a U-Net of 0.70M parameters (28x28 costs ~12x per step: 1,000 DDPM samples over
T = 1000 steps would take about 2 hours on this CPU). Its last checkpoint is then evaluated by
``gen-lightning evaluate`` once per sampler, changing only the loaded model's sampling hyperparameters
(``model.sampler=ddpm``: ancestral, all T steps; ``model.sampler=ddim model.sample_steps=S``: deterministic
DDIM, eta = 0), with the classifier-feature metrics on ``--num-samples`` samples (the same seeds for every
sampler). The time per image is measured apart from the metrics: one batch of ``--time-batch`` images per
sampler, in this process, one torch thread.

    PYTHONPATH=. python benchmarks/diffusion_samplers.py [--minutes 7] [--timesteps 200] [--num-samples 1000]

Measured 2026-11-26 on the shared development machine (2 CPU cores shared with other engineers' jobs, no GPU),
one torch thread, seed 0, defaults: T = 200 (linear betas scaled by 1000 / T), 7 minutes of training = 2,484 steps
of batch 64 (108 epochs, final val/loss 0.0701, load 2.9/4.1/4.5 -> 3.4/3.5/4.0), EMA weights; 1,000 samples,
classifier features (its validation accuracy 0.989), reference: the 1,527-image training split (its own IS_clf:
9.70); KID raw (not x1000), 100 subsets of 1,000 (std 9-23, so DDPM's -16.4 is zero within noise):

    sampler steps  FID_clf IS_clf  KID_clf  prec recall  s/image eval s  load 1/5/15 min, before -> after
    ddpm      200     3.28  8.970    -16.4 0.813  0.914   0.1372  135.3  3.4/3.5/4.0 -> 2.6/3.2/3.8
    ddim       50     5.85  8.957     22.6 0.778  0.946   0.0325   27.4  2.6/3.2/3.8 -> 2.4/3.1/3.8
    ddim       25     7.51  8.924     50.0 0.793  0.931   0.0165   18.4  2.4/3.1/3.8 -> 2.5/3.0/3.7
    ddim       10    18.35  8.680    219.5 0.797  0.881   0.0062   13.7  2.5/3.0/3.7 -> 2.7/3.0/3.7

Time is linear in the steps (0.62-0.69 ms per image and step, batch 100). ``eval s`` is the whole evaluation
(generation in batches of 250, features, metrics; ~7 s beyond generation for DDIM 10), not a clean timing. The
shape matches Song et al.'s CIFAR-10 table (2021, table 1: DDPM 3.17 over 1000 steps; DDIM 4.67 at 50 steps,
13.36 at 10): all-T ancestral sampling is best, DDIM 50 is 4.2x faster for FID +2.6, DDIM 10 is 22x faster
and triples DDIM 50's FID (here 18.35 / 5.85 = 3.1x; theirs 13.36 / 4.67 = 2.9x); IS and recall hold up.
Deterministic DDIM draws the same digit from the same noise at 10, 25 and 50 steps (``samples_*.png``).
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
from gen_lightning.diffusion.solvers import evaluations  # noqa: E402

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
    overrides = [f"model.sampler={sampler}"] + ([f"model.sample_steps={steps}"] if sampler != "ddpm" else [])
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
        "evaluations": evaluations(sampler, steps) if sampler != "ddpm" else steps,
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
    from gen_lightning.checkpoint import load_module

    torch.set_num_threads(args.threads)
    module = load_module(ckpt)
    module.sample(2, torch.Generator().manual_seed(0), sampler="ddim", steps=2)  # warm-up
    for row in rows:
        steps = row["steps"] if row["sampler"] != "ddpm" else None
        start = time.perf_counter()
        images = module.sample(args.time_batch, torch.Generator().manual_seed(0), sampler=row["sampler"], steps=steps)
        row["s_per_image"] = (time.perf_counter() - start) / args.time_batch
        save_image(image_grid(images[:64]), args.out / f"samples_{row['sampler']}{row['steps']}.png")


def print_table(rows: list[dict], fit: dict, args: argparse.Namespace) -> None:
    print(
        f"\nDDPM on the 8x8 digits, T = {args.timesteps}, trained {fit['global_step']} steps "
        f"({fit['epochs']} epochs, {args.minutes:g} min, load {fit['load']}, final val/loss "
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
