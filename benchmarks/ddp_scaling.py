"""Data-parallel scaling on CPU (gloo): samples/s of every family on 1 and 2 processes, with and without DDP's
search for unused parameters.

For each family, ``gen-lightning fit`` runs ``--steps`` optimizer steps three ways: one process (``trainer=cpu``),
two processes with ``trainer=ddp`` as shipped (``strategy: ddp``: every backward reaches all parameters, so DDP
never searches the autograd graph for unused ones; the GANs add zero gradients for the network a step does not
train, ``gen_lightning/gan/module.py`` and ``gen_lightning/img2img/base.py``), and two processes with
``strategy=ddp_find_unused_parameters_true`` (the search on every backward, the setting the GANs needed before). No
validation, no logger, one torch thread per process. A timing callback (added in every process: Lightning's DDP
launcher re-runs this script) measures, after ``--warmup`` batches, the wall and CPU time of rank 0; samples/s =
batches x batch size x processes / wall seconds, and CPU ms per sample = (CPU seconds of one rank x processes) /
samples. The three ways alternate ``--repeats`` times, so they see the same load. On a machine with 2 cores shared
by other jobs a second process also gets a second share of the CPU, so wall-clock scaling overstates what 2 idle
cores would do; CPU per sample is the cost.

    PYTHONPATH=. python benchmarks/ddp_scaling.py [--families vae dcgan ...] [--steps 60] [--repeats 2]

Measured 2026-12-01 00:23-00:45 on the 2-core development machine, otherwise idle (load 0.6-1.5), one thread per
process, ``--steps 40 --repeats 2``, timing only the intervals inside an epoch (see ``Timer``); per family:
samples/s mean (each repeat) for 1 process, 2 ddp, 2 find-unused; scaling; CPU ms/sample 1 | 2 ddp | 2 find-unused:

    vae       8526 ( 8911, 8140) 9397 ( 9482, 9311) 10268 ( 8162, 12374) 1.10 0.12 | 0.16 | 0.15
    dcgan     3777 ( 3421, 4132) 4397 ( 4344, 4451) 3982 ( 4347, 3618) 1.16 0.27 | 0.35 | 0.43
    wgan_gp   3739 ( 4015, 3462) 4415 ( 4141, 4688) 3781 ( 3844, 3717) 1.18 0.27 | 0.41 | 0.41
    ddpm      736 ( 723, 750) 1284 ( 1278, 1290) 1269 ( 1231, 1307) 1.74 1.36 | 1.47 | 1.45
    lstm      191 ( 193, 189) 358 ( 368, 349) 338 ( 341, 335) 1.88 5.24 | 5.38 | 5.48
    gpt       202 ( 196, 208) 362 ( 364, 359) 353 ( 366, 339) 1.79 4.95 | 5.31 | 5.55
    bert      186 ( 186, 187) 315 ( 273, 358) 339 ( 331, 346) 1.69 5.36 | 5.92 | 5.57
    seq2seq   148 ( 163, 134) 283 ( 292, 274) 296 ( 299, 293) 1.90 6.80 | 6.69 | 6.48
    pix2pix   1779 ( 1820, 1737) 1341 ( 1517, 1164) 1377 ( 1353, 1401) 0.75 0.56 | 1.13 | 1.00
    srgan     756 ( 723, 790) 849 ( 906, 793) 797 ( 850, 744) 1.12 1.32 | 1.93 | 2.03
    cyclegan  170 ( 169, 171) 245 ( 245, 245) 237 ( 254, 220) 1.44 5.89 | 7.17 | 7.47

The language models, seq2seq and DDPM scale 1.7-1.9x on 2 processes at 3-10% more CPU per sample (gloo's
all-reduce); the GANs 1.2x, CycleGAN 1.4x, SRGAN 1.1x; pix2pix (0.75x) has steps too small for the all-reduce to pay.
With and without the unused-parameter search: within the spread of the two repeats. The first measurement (one
repeat) gave wgan_gp 4.3x: its timed window of 16 batches held an epoch boundary (a new data-loader iterator) in
one configuration and not the other; intervals across epoch boundaries are now left out, and wgan_gp reads 1.18x.
GPU steps, where the search is not hidden by the compute: not measured (no device lent).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEXT = ["data=text_embedded", "data.block_size=64", "data.batch_size=32", "data.train_stride=64"]
FAMILIES = {  # family -> (overrides, batch size per process); sizes that take ~0.1 s per step on one core
    "vae": (["model=vae", "data=digits", "data.batch_size=64"], 64),
    "dcgan": (["model=dcgan", "data=digits", "data.batch_size=64", "model.hidden_dim=32"], 64),
    "wgan_gp": (["model=wgan_gp", "data=digits", "data.batch_size=64", "model.hidden_dim=32"], 64),
    "ddpm": (
        [
            "model=ddpm",
            "data=digits",
            "data.batch_size=64",
            "model.hidden_dim=32",
            "model.channel_mult=[1,2]",
            "model.num_res_blocks=1",
            "model.attention_resolutions=[]",
            "model.num_timesteps=200",
            "model.sample_time_batch=0",
        ],
        64,
    ),
    "lstm": (["model=lstm", *TEXT, "model.hidden_dim=256"], 32),
    "gpt": (["model=gpt", *TEXT, "model.num_layers=4", "model.num_heads=4", "model.hidden_dim=128"], 32),
    "bert": (["model=bert", *TEXT, "model.num_layers=4", "model.num_heads=4", "model.hidden_dim=128"], 32),
    "seq2seq": (
        [
            "model=transformer_seq2seq",
            "data=summarization",
            "data.vocab_size=400",
            "data.max_len=48",
            "data.batch_size=32",
            "model.max_len_a=0",
            "model.max_len_b=12",
            "model.hidden_dim=128",
            "model.num_layers=2",
            "model.num_decoder_layers=2",
            "model.num_heads=4",
        ],
        32,
    ),
    # img2img: the adversarial steps (gen_lightning/img2img/base.py adds the zero gradients under DDP)
    "pix2pix": (
        [
            "model=pix2pix",
            "data=paired",
            "data.transform=edges",
            "data.batch_size=32",
            "model.hidden_dim=32",
            "model.d_hidden_dim=32",
            "model.d_layers=1",
        ],
        32,
    ),
    "srgan": (
        [
            "model=srgan",
            "data=paired",
            "data.batch_size=32",
            "model.hidden_dim=32",
            "model.num_res_blocks=2",
            "model.pretrain_steps=0",
            "model.d_hidden_dim=16",
            "model.d_dense_dim=64",
        ],
        32,
    ),
    "cyclegan": (
        [
            "model=cyclegan",
            "data=unpaired",
            "data.domain_a.source=digits",
            "data.domain_a.name=null",
            "data.domain_a.image_size=8",
            "data.domain_a.val_split=null",
            "data.domain_b.image_size=4",
            "data.domain_b.pad=2",
            "data.batch_size=8",
            "model.hidden_dim=16",
            "model.num_res_blocks=2",
            "model.d_hidden_dim=16",
            "model.d_layers=1",
        ],
        8,
    ),
}
DDP = ["trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2"]
WAYS = {
    "1 process": ["trainer=cpu"],
    "2 processes, ddp": DDP,
    "2 processes, find unused": [*DDP, "trainer.strategy=ddp_find_unused_parameters_true"],
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", nargs="+", default=list(FAMILIES), choices=list(FAMILIES))
    parser.add_argument("--steps", type=int, default=60, help="optimizer steps per run (a GAN counts both)")
    parser.add_argument("--warmup", type=int, default=10, help="batches before timing")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--worker", nargs="*", help=argparse.SUPPRESS)  # fit overrides of one timed run
    parser.add_argument("--out", help=argparse.SUPPRESS)
    return parser.parse_args()


def worker(args: argparse.Namespace) -> None:
    """One ``gen-lightning fit`` (each DDP process runs this too) with a timer; rank 0 writes the times."""
    import lightning as L

    from gen_lightning import cli
    from gen_lightning.run import train

    class Timer(L.Callback):
        """Sums the intervals between consecutive batch ends inside an epoch, after ``--warmup`` batches: an
        epoch's first interval (a new data-loader iterator, a DistributedSampler reshuffle) is left out, since with
        data this small the epoch boundaries fall at different batches for 1 and 2 processes and one boundary can
        cost more than the whole timed window (what made wgan_gp's 4.3x of the first measurement)."""

        def __init__(self) -> None:
            self.last, self.wall, self.cpu, self.batches, self.seen = None, 0.0, 0.0, 0, 0

        def on_train_epoch_start(self, trainer, pl_module) -> None:
            self.last = None

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            now = (time.perf_counter(), time.process_time())
            self.seen += 1
            if self.last is not None and self.seen > args.warmup:
                self.wall += now[0] - self.last[0]
                self.cpu += now[1] - self.last[1]
                self.batches += 1
            self.last = now

        def on_train_end(self, trainer, pl_module) -> None:
            if trainer.is_global_zero:
                out = {"wall": self.wall, "cpu": self.cpu, "batches": self.batches, "world": trainer.world_size}
                Path(args.out).write_text(json.dumps(out))

    timer = Timer()
    build_callbacks = train.build_callbacks
    train.build_callbacks = lambda *a, **k: [*build_callbacks(*a, **k), timer]
    cli.main(["fit", *args.worker])


def run_one(family: str, way: str, args: argparse.Namespace, tmp: Path, k: int) -> dict:
    overrides, batch = FAMILIES[family]
    run_dir = tmp / f"{family}_{k}_{way.replace(' ', '_').replace(',', '')}"
    fit = [*overrides, *WAYS[way], f"trainer.max_steps={args.steps}", "trainer.max_epochs=-1",
           "trainer.limit_val_batches=0", "logger=none", "metrics=none", "trainer.enable_progress_bar=false",
           f"run_dir={run_dir}"]  # fmt: skip
    out = tmp / f"{run_dir.name}.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "WANDB_MODE": "offline"}
    cmd = [sys.executable, __file__, "--warmup", str(args.warmup), "--out", str(out), "--worker", *fit]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{family}, {way} failed:\n{done.stderr[-3000:]}")
    result = json.loads(out.read_text())
    samples = result["batches"] * batch * result["world"]
    return {
        "samples_per_s": samples / result["wall"],
        "cpu_ms_per_sample": 1e3 * result["cpu"] * result["world"] / samples,
    }


def main() -> None:
    if os.environ.get("LOCAL_RANK", "0") != "0":  # a DDP child: Lightning re-runs this script with the overrides
        sys.path.insert(0, str(ROOT))
        from gen_lightning import cli

        return cli.main(sys.argv[1:])
    args = parse_args()
    if args.worker is not None:
        return worker(args)
    load = lambda: "/".join(f"{x:.2f}" for x in os.getloadavg())  # noqa: E731
    print(f"{args.steps} steps per run, first {args.warmup} batches untimed, {args.repeats} repeats, 1 thread/process")
    header = "".join(f"{w:>34s}" for w in WAYS)
    print(f"samples/s: mean (each repeat); scaling: 2 processes (ddp) / 1 process\n{'family':8s}{header}   scaling   "
          "CPU ms/sample (1 | 2 ddp | 2 find unused)   load")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="ddp_scaling_") as tmp:
        for family in args.families:
            before = load()
            results = {way: [] for way in WAYS}
            for k in range(args.repeats):
                for way in WAYS:
                    results[way].append(run_one(family, way, args, Path(tmp), k))
            mean = {w: statistics.fmean(r["samples_per_s"] for r in rs) for w, rs in results.items()}
            cpu = {w: statistics.fmean(r["cpu_ms_per_sample"] for r in rs) for w, rs in results.items()}
            runs = {w: ", ".join(f"{r['samples_per_s']:.0f}" for r in rs) for w, rs in results.items()}
            cells = "".join(f"{mean[w]:>12.0f} ({runs[w]:>18s}) " for w in WAYS)
            ways = list(WAYS)
            print(
                f"{family:8s}{cells}  {mean[ways[1]] / mean[ways[0]]:5.2f}     "
                f"{cpu[ways[0]]:6.2f} | {cpu[ways[1]]:6.2f} | {cpu[ways[2]]:6.2f}          {before} -> {load()}",
                flush=True,
            )


if __name__ == "__main__":
    main()
