"""Image-to-image on MNIST: the three experiments of issue 12 against their baselines, with the targets checked.

Runs ``gen-lightning fit`` for each row as a user does (one process at a time, one torch thread, nice 5), on the
10,000 MNIST test images written once as parquet (``--mnist``: the IDX files; default ../shared/data/mnist10k):

- super-resolution x4 (experiments/sr_mnist_x4.yaml): bicubic vs SRResNet; target PSNR >= bicubic + 3 dB and
  SSIM >= bicubic + 0.10;
- pix2pix edges -> digits (experiments/pix2pix_edges2digits.yaml): the edge map itself vs pix2pix; target: the
  MNIST classifier reads >= 90% of the outputs as their source's digit (content_acc);
- CycleGAN MNIST <-> digits (experiments/cyclegan_mnist2digits.yaml): the untranslated images vs CycleGAN, both
  ways (B -> A scored with the same protocol on the swapped domains, ``generate(direction="b2a")``); target:
  content_acc >= 0.70 both ways and fid_clf in the target domain below the untranslated images'.

Every number comes from the paired_image protocol (first 1,000 validation pairs; fid_clf against the target
domain's training split on its own digit classifier). CPU seconds are the child processes' user + system time.

    PYTHONPATH=. python benchmarks/img2img.py [--tasks sr pix2pix cyclegan] [--out runs/benchmarks/img2img]

Measured 2026-11-30 on the development machine shared with other jobs (2 CPU cores, load average 9-15 during
the runs, so wall time is 3-6x the CPU time; on idle cores wall ~ CPU), one torch thread, seed 0:

    (filled in below the table by the run; see RESULTS)
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
from pathlib import Path

from cli_runs import ROOT, command, load_average, run, shown

NAMES = ("psnr", "ssim", "l1", "fid_clf", "content_acc")
MNIST = ROOT.parent / "shared" / "data" / "mnist10k"

# task -> rows: (name, fit overrides); "{data}" is the MNIST parquet folder
TASKS = {
    "sr": [
        ("bicubic", ["experiment=sr_mnist_x4", "model=bicubic", "~model.hidden_dim", "~model.num_res_blocks",
                     "~model.lr", "data.images.path={data}"]),
        ("srresnet", ["experiment=sr_mnist_x4", "data.images.path={data}"]),
    ],
    "pix2pix": [
        ("edges (input)", ["experiment=pix2pix_edges2digits", "model=bicubic", "~model.hidden_dim",
                           "~model.d_hidden_dim", "~model.d_layers", "data.images.path={data}"]),
        ("pix2pix", ["experiment=pix2pix_edges2digits", "data.images.path={data}"]),
    ],
    "cyclegan": [
        ("untranslated", ["experiment=cyclegan_mnist2digits", "model=bicubic", "~model.hidden_dim",
                          "~model.num_res_blocks", "~model.d_hidden_dim", "~model.d_layers",
                          "~model.lr_constant_steps", "~model.lr_decay_steps", "data.domain_a.path={data}"]),
        ("cyclegan", ["experiment=cyclegan_mnist2digits", "data.domain_a.path={data}"]),
    ],
}  # fmt: skip


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def mnist_parquet(out_dir: Path, idx_dir: Path) -> Path:
    target = out_dir / "mnist" / "train-00000-of-00001.parquet"
    if not target.is_file():
        if not (idx_dir / "t10k-images-idx3-ubyte.gz").is_file():
            sys.exit(f"MNIST IDX files not found in {idx_dir}: pass --mnist DIR")
        sys.path.insert(0, str(ROOT / "tests"))
        from helpers import write_mnist_parquet

        write_mnist_parquet(idx_dir, out_dir, n=10_000)
    return target.parent


def reverse_direction(run_dir: Path) -> dict:
    """B -> A of a CycleGAN run (or the untranslated B images): the protocol on the swapped domains."""
    from omegaconf import OmegaConf

    from gen_lightning.checkpoint import load_module
    from gen_lightning.data.translation import UnpairedImageDataModule
    from gen_lightning.img2img.bicubic import Resize
    from gen_lightning.metrics.evaluate import evaluate_module

    cfg = OmegaConf.load(run_dir / "config.yaml")
    swapped = UnpairedImageDataModule(domain_a=cfg.data.domain_b, domain_b=cfg.data.domain_a)
    swapped.setup("fit")
    module = load_module(run_dir / "checkpoints" / "last.ckpt")
    metrics = {k: v for k, v in OmegaConf.to_container(cfg.metrics).items() if k != "_target_"}
    if isinstance(module, Resize):
        module = Resize(**swapped.model_kwargs())
    else:
        metrics["options"] = {"direction": "b2a"}
    from gen_lightning.metrics.paired import PairedImageMetrics

    return evaluate_module(module, swapped, PairedImageMetrics(**metrics))["metrics"]


def run_row(task: str, name: str, overrides: list[str], data: Path, out: Path) -> dict:
    run_dir = out / task / name.split()[0]
    cmd = command("fit", *[o.format(data=data) for o in overrides], f"run_dir={run_dir}", "logger=csv",
                  "trainer.enable_progress_bar=false")  # fmt: skip
    summary = run_dir / "metrics.json"
    if summary.is_file() and json.loads(summary.read_text())["status"] == "completed":
        print(f"reusing {run_dir}")
        wall = cpu = float("nan")
        load = "-"
    else:
        load, cpu0 = load_average(), cpu_seconds()
        wall = run(["nice", "-n", "5", *cmd], threads=1, log=out / "logs" / f"{task}-{name.split()[0]}.log")
        cpu, load = cpu_seconds() - cpu0, f"{load} -> {load_average()}"
    print(shown(cmd, 1))
    final = json.loads(summary.read_text())["final"]
    row = {"task": task, "model": name, "wall_s": wall, "cpu_s": cpu, "load": load}
    row.update({k: final.get(f"val/{k}", float("nan")) for k in NAMES})
    rows = [row]
    if task == "cyclegan":
        back = reverse_direction(run_dir)
        rows.append({**row, "model": f"{name} B->A", **{k: back.get(f"val/{k}", float("nan")) for k in NAMES}})
        row["model"] = f"{name} A->B"
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "benchmarks" / "img2img")
    parser.add_argument("--mnist", type=Path, default=MNIST)
    args = parser.parse_args()
    data = mnist_parquet(ROOT / "runs" / "data", args.mnist)  # where the image_translation_quick study reads it
    rows = []
    for task in args.tasks:
        for name, overrides in TASKS[task]:
            rows += run_row(task, name, overrides, data, args.out)
    print(f"{'task':9} {'model':20} {'PSNR':>6} {'SSIM':>6} {'L1':>6} {'FID_clf':>8} {'content':>7} {'wall s':>7} "
          f"{'CPU s':>6}")  # fmt: skip
    for r in rows:
        print(f"{r['task']:9} {r['model']:20} {r['psnr']:6.2f} {r['ssim']:6.3f} {r['l1']:6.3f} {r['fid_clf']:8.2f} "
              f"{r['content_acc']:7.3f} {r['wall_s']:7.0f} {r['cpu_s']:6.0f}  load {r['load']}")  # fmt: skip
    (args.out / "results.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
