"""Image-to-image on MNIST: the three experiments of issue 12 against their baselines, with the targets checked.

Runs ``gen-lightning fit`` for each row as a user does (one process at a time, one torch thread, nice 5), on the
10,000 MNIST test images, read from their IDX files as distributed (``--mnist DIR``; default ../shared/data/mnist10k):

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

Measured 2026-11-30 on the development machine shared with other agents' jobs (2 CPU cores, load average 13-24
during the runs: each process got 10-20% of a core, so wall time is 5-10x the CPU time; on 2 idle cores the wall
time is about the CPU time), one torch thread, seed 0. CPU s: user + system seconds of the whole ``fit`` (data
set-up, training, validation, the protocol's evaluations; the digit classifiers were already cached):

    task      model                  PSNR   SSIM     L1  FID_clf content  wall s  CPU s
    sr        bicubic               14.59  0.401  0.106  1599.66   0.780     419     42
    sr        srresnet              21.83  0.907  0.028    30.68   0.948    1349    129
    pix2pix   edges (input)          8.75  0.172  0.156   460.08   0.661     108     11
    pix2pix   pix2pix               22.40  0.932  0.023     9.02   0.960    1460    234
    cyclegan  untranslated A->B       nan    nan    nan   814.23   0.588     113     11
    cyclegan  untranslated B->A       nan    nan    nan   534.17   0.841     113     11
    cyclegan  cyclegan A->B           nan    nan    nan    69.32   0.574    2846    323
    cyclegan  cyclegan B->A           nan    nan    nan    89.49   0.800    2846    323

(pix2pix and CycleGAN rows: the experiments' own runs, timed by ``/usr/bin/time``, scored again by this script.)
These rows read a parquet copy of the IDX files; the same images read from the IDX files themselves
(2026-12-07, ``gen-lightning fit experiment=sr_mnist_x4 data.images.path=../shared/data/mnist10k``, seed 0, AMD
EPYC, load average about 12) gave SRResNet PSNR 21.82, SSIM 0.906, L1 0.028, FID_clf 28.57 (its
digit classifier retrained under the new data key), content 0.950 in 1411 s of training.
Targets: SRResNet +7.24 dB PSNR and +0.506 SSIM over bicubic (targets +3 dB, +0.10): met. pix2pix: 96.0% of the
outputs read as their edge map's digit (target 90%): met. CycleGAN: fid_clf below the untranslated images' both
ways (69 < 814, 89 < 534): met; content preservation MNIST -> digits 57.4% (target 70%): not met, digits -> MNIST
80.0%: met. The digits classifier itself reads only 58.8% of untranslated MNIST digits correctly (it learned 1,527
blurry 8x8 scans), so A -> B content_acc measures that classifier's domain gap as much as the translation; the
sample grids show CycleGAN turning some MNIST digits into other digits (a 7 into a 3, a 4 into a 6), the known
failure of cycle consistency alone (Zhu et al. section 5.3). A second run with a 4x identity loss
(``model.identity_weight=2.0``, 305 CPU s) read 59.1% A -> B (FID_clf 83.4) and 79.3% B -> A (FID_clf 89.9): the
stronger pull to the identity keeps the MNIST digits as readable as untranslated ones (58.8%), not more.
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

# task -> rows: (name, fit overrides); "{data}" is the folder of MNIST's IDX files
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


def mnist_folder(idx_dir: Path) -> Path:
    """The folder of MNIST's t10k IDX files (the experiments read them as distributed), absolute: runs start
    elsewhere."""
    if not any((idx_dir / f"t10k-images-idx3-ubyte{gz}").is_file() for gz in ("", ".gz")):
        sys.exit(f"MNIST IDX files (t10k-images-idx3-ubyte.gz) not found in {idx_dir}: pass --mnist DIR")
    return idx_dir.resolve()


def evaluate_run(run_dir: Path, reverse: bool = False) -> dict:
    """The run's protocol on its last checkpoint (the current code's numbers, also for a reused run); ``reverse``:
    B -> A of a CycleGAN run (or of the untranslated B images), the same protocol on the swapped domains."""
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from gen_lightning.data.images import UnpairedImageDataModule
    from gen_lightning.img2img.bicubic import Resize
    from gen_lightning.metrics.evaluate import evaluate_module
    from gen_lightning.metrics.paired import PairedImageMetrics
    from gen_lightning.run.checkpoint import load_module

    cfg = OmegaConf.load(run_dir / "config.yaml")
    module = load_module(run_dir / "checkpoints" / "last.ckpt")
    metrics = {k: v for k, v in OmegaConf.to_container(cfg.metrics).items() if k != "_target_"}
    if not reverse:
        return evaluate_module(module, instantiate(cfg.data), PairedImageMetrics(**metrics))["metrics"]
    swapped = UnpairedImageDataModule(domain_a=cfg.data.domain_b, domain_b=cfg.data.domain_a)
    swapped.setup("fit")
    if isinstance(module, Resize):
        module = Resize(**swapped.model_kwargs())
    else:
        metrics["options"] = {"direction": "b2a"}
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
    final = evaluate_run(run_dir)
    row = {"task": task, "model": name, "wall_s": wall, "cpu_s": cpu, "load": load}
    row.update({k: final.get(f"val/{k}", float("nan")) for k in NAMES})
    rows = [row]
    if task == "cyclegan":
        back = evaluate_run(run_dir, reverse=True)
        rows.append({**row, "model": f"{name} B->A", **{k: back.get(f"val/{k}", float("nan")) for k in NAMES}})
        row["model"] = f"{name} A->B"
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "benchmarks" / "img2img")
    parser.add_argument("--mnist", type=Path, default=MNIST)
    args = parser.parse_args()
    data = mnist_folder(args.mnist)
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
