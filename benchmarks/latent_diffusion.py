"""Latent DDPM against pixel DDPM at equal training wall time: FID_clf and sampling time per image.

For each data set, through ``gen-lightning fit`` as a user runs it (one subprocess per command, one torch thread):
1. a VAE (``model=vae``, MLP) trains for ``--vae-seconds``: the autoencoder of the latent model (its time is
   reported apart: an autoencoder is trained once and reused, Rombach et al. 2022);
2. ``model=latent_ddpm model.autoencoder_ckpt=<the VAE's last.ckpt>`` and ``model=ddpm`` each train for
   ``--seconds`` of ``trainer.max_time`` (validation included), then are scored once by the classifier-feature
   protocol (``metrics=classifier``: FID_clf of ``--num-samples`` samples against the training images, DDIM 20
   steps, EMA weights), outside the budget;
3. the seconds per image of ``sample`` (DDIM 20 steps, a batch of 64, one thread) are timed in this process, and a
   grid of 64 samples of each model is written beside the runs (``samples_<data>_<model>.png``).
Data: the embedded 8x8 digits, and the 10,000 MNIST test images (../shared/data/mnist10k as parquet via
``cli_runs.mnist_parquet``; ``conf/data/mnist.yaml`` reads the hub, offline here). Pixel DDPM on MNIST is shrunk
(hidden_dim 32, one res block) so that it trains and samples in CPU minutes; its size preset is for GPUs.

    PYTHONPATH=. python benchmarks/latent_diffusion.py [--seconds 45 --mnist-seconds 75 --vae-seconds 30]

Measured 2026-12-06 on "AMD EPYC" (AVX2, no AVX-512), 2 cores shared with other agents' jobs (load average
5-9), one thread per run. The budgets are small (CPU seconds, to keep the whole benchmark near 10 minutes): the
numbers rank early progress, not converged quality. FID_clf: classifier features, lower is better, comparable only
within a data set. ``steps``: optimizer steps reached in the budget; ``train s``: RunSummary's clock (validation
and the final evaluation included, hence above the budget for the slow pixel model); s/image: DDIM 20 steps.

Default command (732 s in all), ``--seconds 45 --mnist-seconds 75 --vae-seconds 30 --num-samples 300``:

    data    model        train s  steps  FID_clf  s/image  load (1/5/15 min, before -> after)
    digits  latent_ddpm       46    300   102.77   0.0052  6.22/5.99/6.84 -> 5.92/5.94/6.72
    digits  ddpm              47    208   146.01   0.0177  5.92/5.94/6.72 -> 5.76/5.87/6.63
    mnist   latent_ddpm       77   1189   536.17   0.0034  5.63/5.85/6.57 -> 6.38/5.91/6.46
    mnist   ddpm             121     24  2276.00   0.1714  6.38/5.91/6.46 -> 3.48/5.06/6.04
    autoencoders (MLP VAE, latent_dim 16, in 30 s): digits 426 steps, MNIST 529 steps

An earlier run (1034 s), ``--seconds 60 --mnist-seconds 90 --vae-seconds 40 --num-samples 500``, pixel DDPM on
MNIST with its preset's lr 2e-4 and 1,000 warm-up steps:

    digits  latent_ddpm       61    489    84.32   0.0064  (VAE: 898 steps in 40 s)
    digits  ddpm              65    162   194.63   0.0212
    mnist   latent_ddpm       91   1157   615.00   0.0053  (VAE: 422 steps in 40 s)
    mnist   ddpm             145     22  2283.82   0.3697

Reading: at equal training time the latent model wins on both sets, by the most where a pixel U-Net step is dear:
its 16-dimensional MLP takes 1,200 steps on MNIST while the 28x28 U-Net (batch 128, one thread, ~3 s a step)
takes 24 and still draws noise; it also samples 3x (digits) to 50-70x (MNIST) faster per image. On the digits the
pixel model's 200 steps give digit-like strokes with speckle, the latent model's 300-500 clean but VAE-blurred
digits. The latent model's quality is capped by its autoencoder (half a minute of VAE training: blurred
reconstructions; FID_clf of 536-615 on MNIST reflects that blur); the pixel model has no such cap: whether it
overtakes with a longer budget, this CPU benchmark does not measure.
Grids: ``samples_<data>_<model>.png`` in --out.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from cli_runs import ROOT, command, load_average, mnist_parquet, run, shown

sys.path.insert(0, str(ROOT))
from gen_lightning.callbacks.samples import image_grid  # noqa: E402
from gen_lightning.run.checkpoint import load_module  # noqa: E402

# Pixel DDPM on MNIST: a narrower U-Net than its size preset (made for GPUs) and the small-image preset's
# optimisation (lr 1e-3, 100 warm-up steps: the 32x32 row's 1,000 warm-up steps would never end in the budget).
PIXEL_MNIST = ["model.hidden_dim=32", "model.num_res_blocks=1", "model.attention_resolutions=[]", "model.lr=1e-3",
               "model.warmup_steps=100"]  # fmt: skip


def fit(name: str, model: str, data: list[str], seconds: float, extra: list[str], args, scored: bool = True) -> dict:
    """Train ``model`` for ``seconds`` of trainer.max_time (then FID_clf when ``scored``); its summary and command."""
    run_dir = args.out / name
    if (run_dir / "metrics.json").is_file():
        raise FileExistsError(f"{run_dir} already holds a run: choose another --out or remove it")
    cmd = command(
        "fit",
        f"model={model}",
        *data,
        "logger=none",
        "trainer.enable_progress_bar=false",
        "trainer.max_epochs=-1",  # the clock alone stops training
        f"+trainer.max_time={{seconds:{round(seconds)}}}",
        *(metrics(args) if scored else ["metrics=none"]),
        f"seed={args.seed}",
        f"run_dir={run_dir}",
        *extra,
    )
    load = load_average()
    wall = run(cmd, args.threads, args.out / f"{name}.log")
    summary = json.loads((run_dir / "metrics.json").read_text())
    return {"run": name, "steps": summary["global_step"], "train_s": summary["train_time_s"], "wall_s": round(wall),
            "final": summary["final"], "load": f"{load} -> {load_average()}", "command": shown(cmd, args.threads),
            "ckpt": run_dir / "checkpoints" / "last.ckpt"}  # fmt: skip


def metrics(args) -> list[str]:
    return [
        "metrics=classifier",
        "metrics.every_n_epochs=0",  # one evaluation, when training ends, outside the budget
        f"metrics.num_samples={args.num_samples}",
        f"metrics.cache_dir={args.out / 'cache'}",
    ]


def seconds_per_image(ckpt: Path, png: Path, n: int = 64) -> float:
    """``sample`` of ``n`` images (the configured DDIM 20 steps), one thread; writes their grid to ``png``."""
    from torchvision.utils import save_image

    torch.set_num_threads(1)
    module = load_module(ckpt)
    module.sample(2, torch.Generator().manual_seed(0))  # warm-up
    start = time.perf_counter()
    images = module.sample(n, torch.Generator().manual_seed(0))
    elapsed = time.perf_counter() - start
    save_image(image_grid(images), png)
    return elapsed / n


def compare(data_name: str, data: list[str], seconds: float, pixel_extra: list[str], args) -> list[dict]:
    vae = fit(f"{data_name}_vae", "vae", data, args.vae_seconds, [], args, scored=False)
    print(json.dumps({k: str(v) for k, v in vae.items()}), flush=True)
    quiet = ["model.sample_time_batch=0"]
    rows = []
    for model, extra in (("latent_ddpm", [f"model.autoencoder_ckpt={vae['ckpt']}"]), ("ddpm", pixel_extra)):
        row = fit(f"{data_name}_{model}", model, data, seconds, [*quiet, *extra], args)
        row["s_per_image"] = seconds_per_image(row["ckpt"], args.out / f"samples_{data_name}_{model}.png")
        row |= {"data": data_name, "model": model, "fid_clf": row["final"]["val/fid_clf"], "vae_steps": vae["steps"]}
        rows.append(row)
        print(json.dumps({k: str(v) for k, v in row.items()}), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=45, help="training time of each diffusion model, digits")
    parser.add_argument("--mnist-seconds", type=float, default=75, help="the same on MNIST")
    parser.add_argument("--vae-seconds", type=float, default=30, help="training time of each autoencoder")
    parser.add_argument("--num-samples", type=int, default=300, help="generated samples for FID_clf")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run (the machine is shared)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "benchmarks" / "latent_diffusion")
    args = parser.parse_args()
    args.out = args.out.resolve()
    start = time.perf_counter()
    rows = compare("digits", ["data=digits"], args.seconds, [], args)
    parquet = mnist_parquet(args.out)
    if parquet is not None:
        rows += compare("mnist", ["data=parquet", f"data.path={parquet}"], args.mnist_seconds, PIXEL_MNIST, args)
    else:
        print("MNIST IDX files not found beside the project: digits only")
    (args.out / "results.json").write_text(json.dumps(rows, indent=2, default=str))
    print(f"\nFID_clf ({args.num_samples} samples, DDIM 20 steps, EMA), equal training wall time per data set\n")
    print(f"{'data':<7} {'model':<12} {'train s':>7} {'steps':>6} {'FID_clf':>8} {'s/image':>8}  load")
    for r in rows:
        print(f"{r['data']:<7} {r['model']:<12} {r['train_s']:>7.0f} {r['steps']:>6} {r['fid_clf']:>8.2f} "
              f"{r['s_per_image']:>8.4f}  {r['load']}")  # fmt: skip
    vae_steps = ", ".join(f"{r['data']} {r['vae_steps']}" for r in rows[::2])
    print(f"\nautoencoders (VAE steps in --vae-seconds): {vae_steps}")
    print(f"whole benchmark: {time.perf_counter() - start:.0f} s\nto reproduce one row:")
    for r in rows:
        print(f"  {r['command']}")


if __name__ == "__main__":
    main()
