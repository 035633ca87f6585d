"""GAN families under one wall-clock budget: how far DCGAN, WGAN-GP (and SNGAN) get in the same CPU minutes.

Each model trains through ``gen-lightning fit`` for ``--minutes`` of training time (Lightning's
``trainer.max_time``; validation epochs count, the final metric evaluation does not) on the 10,000 MNIST test
images (28x28, written once as a parquet file; the embedded 8x8 digits when the IDX files are absent), then
the classifier-feature metrics run once on ``--num-samples`` samples from the EMA generator: FID, IS, KID and
precision/recall (k = 3) against the training split. One model at a time, one torch thread.

    PYTHONPATH=. python benchmarks/gan_budget.py [--minutes 4] [--models dcgan wgan_gp sngan] [--num-samples 2000]

Lightning's ``global_step`` counts both optimizers' steps; the table splits it into critic (D) steps, one per
batch, and generator (G) steps, one every ``n_critic`` batches (DCGAN 1; WGAN-GP 5 in the table below).

Measured 2026-11-26 on the development machine, idle apart from this script (2 CPU cores, no GPU, load average
below 1), one torch thread, seed 0, ``--minutes 4 --models dcgan wgan_gp sngan``, 2,000 samples; classifier
features (its validation accuracy 0.983), reference: the 8,500-image training split (its own IS_clf: 9.48); KID
raw (not x1000), 100 subsets of 1,000; "eval s" includes training the classifier once (first row):

    model    budget D steps G steps epochs  FID_clf IS_clf  KID_clf  prec recall eval s
    dcgan        4m    1431    1431     11   152.75  5.228    355.2 0.553  0.690   33.9
    wgan_gp      4m    1221     244     10  1122.48  2.935   4662.6 0.851  0.016    5.3
    sngan        4m    1920     384     15   280.68  4.260    921.8 0.610  0.498    6.0

An earlier run of dcgan and wgan_gp on the same machine under load 3.3-5.6 from other jobs got half the steps
(764 / 567 D steps) and FID_clf 255.55 / 2343.69: compare rows only within one run of this script.

Under the same clock DCGAN makes 3.7x the generator steps of SNGAN and 5.9x those of WGAN-GP (one per batch
against one per 5 batches; WGAN-GP's critic step with the gradient penalty's double backward costs more than
SNGAN's spectral-norm step). In the last sample grids DCGAN's samples are mostly recognisable digits, SNGAN's
(384 generator steps) sharp strokes of which some read as digits (FID 1.8x DCGAN's, recall 0.50), WGAN-GP's
(244) blurry, low-contrast digit-shaped blobs (FID 7x, recall 0.02).
A high precision with recall near 0 (WGAN-GP; 1.000 / 0.000 in the loaded run) is not quality: near-identical
images all land inside the k-NN ball of some outlying real image (Kynkaanniemi et al. 2019's precision trusts
every real radius); read precision only beside recall and FID. Published comparisons give these GANs 100k+
generator iterations; 4 CPU minutes rank the methods by speed of early progress, not by final quality.

These numbers were made with the presets of their date: WGAN-GP and SNGAN with the papers' 5 critic steps per
generator step (lr 1e-4 and 2e-4). Since then both presets take 2 critic steps at lr 5e-4 (measured faster on the
digits, see conf/model/wgan_gp.yaml), and 8x8 images get two up-sampling stages (gan/nets.py ``feature_plan``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import yaml
from cli_runs import ROOT, command, load_average, mnist_parquet, run, shown

METRICS = ("fid_clf", "is_clf", "kid_clf", "precision_clf", "recall_clf")


def fit_command(model: str, data: list[str], args: argparse.Namespace, run_dir: Path) -> list[str]:
    return command(
        "fit",
        f"model={model}",
        *data,
        "logger=none",
        "trainer.enable_progress_bar=false",
        "trainer.max_epochs=-1",  # the clock alone stops training
        f"+trainer.max_time={{seconds:{round(args.minutes * 60)}}}",
        "metrics.every_n_epochs=0",  # only the final evaluation, outside the budget
        f"metrics.num_samples={args.num_samples}",
        f"metrics.cache_dir={args.out / 'cache'}",
        f"seed={args.seed}",
        f"run_dir={run_dir}",
    )


def train_and_measure(model: str, data: list[str], args: argparse.Namespace) -> dict:
    run_dir = args.out / model
    if (run_dir / "metrics.json").is_file():
        raise FileExistsError(f"{run_dir} already holds a run: choose another --out or remove it")
    cmd = fit_command(model, data, args, run_dir)
    load_before = load_average()
    wall = run(cmd, args.threads, args.out / f"{model}.log")
    summary = json.loads((run_dir / "metrics.json").read_text())
    n_critic = int(yaml.safe_load((run_dir / "config.yaml").read_text())["model"]["n_critic"])
    g_steps = summary["global_step"] // (n_critic + 1)  # global_step = D steps + G steps, G = D // n_critic
    return {
        "model": model,
        "minutes": args.minutes,
        "d_steps": summary["global_step"] - g_steps,
        "g_steps": g_steps,
        "epochs": summary["epochs"],
        "train_time_s": summary["train_time_s"],  # RunSummary's clock: includes the final evaluation
        "eval_s": round(summary["protocol"]["seconds"], 1),  # includes training the classifier if not cached
        "wall_s": round(wall, 1),
        "load": f"{load_before} -> {load_average()}",
        **{name: summary["final"][f"val/{name}"] for name in METRICS},
        "command": shown(cmd, args.threads),
    }


def print_table(rows: list[dict], dataset: str, num_samples: int) -> None:
    print(f"\n{dataset}, classifier features, {num_samples} samples (KID: raw, not x1000)\n")
    head = f"{'model':<8} {'budget':>6} {'D steps':>7} {'G steps':>7} {'epochs':>6} {'FID_clf':>8} {'IS_clf':>6}"
    print(f"{head} {'KID_clf':>8} {'prec':>5} {'recall':>6} {'eval s':>6}  load (1/5/15 min, before -> after)")
    for r in rows:
        print(
            f"{r['model']:<8} {r['minutes']:>5g}m {r['d_steps']:>7} {r['g_steps']:>7} {r['epochs']:>6} "
            f"{r['fid_clf']:>8.2f} {r['is_clf']:>6.3f} {r['kid_clf']:>8.1f} {r['precision_clf']:>5.3f} "
            f"{r['recall_clf']:>6.3f} {r['eval_s']:>6.1f}  {r['load']}"
        )
    print("\nto reproduce one row:")
    for r in rows:
        print(f"  {r['command']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=4.0, help="training time per model (trainer.max_time)")
    parser.add_argument("--models", nargs="+", default=["dcgan", "wgan_gp"], help="conf/model presets")
    parser.add_argument("--num-samples", type=int, default=2000, help="generated samples for the metrics")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run (the machine is shared)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "benchmarks" / "gan_budget")
    args = parser.parse_args()
    args.out = args.out.resolve()

    parquet = mnist_parquet(args.out)
    if parquet is not None:
        dataset, data = "MNIST test set (10,000 28x28)", ["metrics=classifier", "data=parquet", f"data.path={parquet}"]
    else:
        dataset, data = "embedded digits (1,797 8x8)", ["data=digits"]
    rows = []
    for model in args.models:
        rows.append(train_and_measure(model, data, args))
        print(json.dumps(rows[-1]), flush=True)
    (args.out / "results.json").write_text(json.dumps(rows, indent=2))
    print_table(rows, dataset, args.num_samples)


if __name__ == "__main__":
    main()
