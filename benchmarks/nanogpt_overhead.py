"""Framework overhead: nanoGPT's CPU configuration through ``gen-lightning fit`` against a plain PyTorch loop.

Both sides train the same network on the same data with the same optimiser, schedule and clipping
(``experiments/nanogpt_char_cpu.yaml``: GPT, 4 layers, 4 heads, width 128, block 64, batch 12), each in a fresh
Python process with the same number of torch threads:

- plain: the loop of ``benchmarks/nanogpt_plain.py`` (``build``, ``make_optimizer``, ``train_step``), no evaluation;
- fit: ``gen-lightning fit experiment=nanogpt_char_cpu data.path=FILE trainer.max_steps=N logger=none metrics=none
  trainer.enable_progress_bar=false``, run through ``gen_lightning.cli.main`` unchanged except that one timing
  callback (``StepTimer``) is appended to the callbacks ``gen_lightning.train.build_callbacks`` returns.

What is timed: the wall time of one whole iteration, from the start of one training batch to the start of the next
(data fetch, forward, backward, clipping, optimiser and schedule steps, and on the fit side everything Lightning
and the callbacks do per step: logging, the non-finite-loss guard, the periodic ``last.ckpt`` every 200 steps).
Start-up (imports, Hydra, data set-up, model construction) and the first ``--warmup`` iterations are excluded, and
so is any iteration during which the fit side validates (validation, text previews and the checkpoints written at
a validation are evaluation costs, which the plain side does not pay either). The two sides alternate A B A B
``--pairs`` times, so drift in the load of the shared CPU falls on both; the overhead is the mean over pairs of
(fit ms/iter) / (plain ms/iter), each run's ms/iter being the mean of its steady-state iterations. The script then
times the generation of ``--gen-tokens`` tokens with and without the key/value cache (``nanogpt_plain``'s code).

    PYTHONPATH=. python benchmarks/nanogpt_overhead.py --path /path/to/tinyshakespeare/input.txt

Measured on this project's build machine (2 CPU cores shared with four other engineers' jobs, one torch thread
per process, torch 2.14.1, lightning 2.6.6, tiny Shakespeare; 300 steps per run, the first 50 and the one with a
validation excluded, 3 pairs; the load average is printed beside every run):
    MEASURED-NUMBERS
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

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))  # nanogpt_plain, run as a script or imported

import nanogpt_plain  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--path", required=True, help="tiny Shakespeare (input.txt)")
    parser.add_argument("--steps", type=int, default=300, help="training iterations per run")
    parser.add_argument("--warmup", type=int, default=50, help="first iterations left out of the mean")
    parser.add_argument("--pairs", type=int, default=3, help="plain/fit pairs, run alternately")
    parser.add_argument("--threads", type=int, default=1, help="torch threads in every run")
    parser.add_argument("--gen-tokens", type=int, default=500)
    parser.add_argument("--seed", type=int, default=1337)
    parser.add_argument("--worker", choices=["plain", "fit"], help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    return parser.parse_args()


def clock() -> tuple[float, float]:
    """(wall time, CPU time of this process), in seconds."""
    return time.perf_counter(), time.process_time()


def steady_ms(starts: list[tuple[float, float]], skip: set[int], warmup: int) -> dict[str, list[float]]:
    """Wall and CPU ms of iterations ``warmup..`` (start of batch i to start of batch i + 1), less ``skip``."""
    keep = [i for i in range(warmup, len(starts) - 1) if i not in skip]
    return {
        "wall": [1e3 * (starts[i + 1][0] - starts[i][0]) for i in keep],
        "cpu": [1e3 * (starts[i + 1][1] - starts[i][1]) for i in keep],
    }


# ----- the two workers, each in its own process ----------------------------------------------------------------


def plain_worker(args: argparse.Namespace) -> dict:
    net, dm = nanogpt_plain.build(args.path, args.seed)
    optimizer, scheduler = nanogpt_plain.make_optimizer(net)
    batches = iter(dm.train_dataloader())
    starts = []
    for _ in range(args.steps):
        starts.append(clock())
        nanogpt_plain.train_step(net, optimizer, scheduler, next(batches))
    starts.append(clock())  # the end of the last iteration
    return {"starts": starts, "skip": [], "net": net}


def fit_worker(args: argparse.Namespace) -> dict:
    import lightning as L

    from gen_lightning import cli, train

    class StepTimer(L.Callback):
        """Start time of every training batch; the batches after which a validation ran."""

        def __init__(self) -> None:
            self.starts: list[tuple[float, float]] = []
            self.skip: set[int] = set()

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
            self.starts.append(clock())

        def on_validation_start(self, trainer, pl_module) -> None:
            self.skip.add(len(self.starts) - 1)

    timer = StepTimer()
    build_callbacks = train.build_callbacks
    train.build_callbacks = lambda *a, **k: [*build_callbacks(*a, **k), timer]
    run_dir = Path(args.out).with_suffix("")
    overrides = [
        "experiment=nanogpt_char_cpu",
        f"data.path={args.path}",
        f"trainer.max_steps={args.steps + 1}",  # the (N + 1)th batch start closes the Nth iteration
        "logger=none",
        "metrics=none",
        "trainer.enable_progress_bar=false",
        f"seed={args.seed}",
        f"run_dir={run_dir}",
    ]
    cli.main(["fit", *overrides])
    return {"starts": timer.starts, "skip": sorted(timer.skip)}


def run_worker(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    load = os.getloadavg()[0]
    result = plain_worker(args) if args.worker == "plain" else fit_worker(args)
    ms = steady_ms(result["starts"], set(result["skip"]), args.warmup)
    out = {"side": args.worker, "ms": ms, "load": [load, os.getloadavg()[0]], "threads": torch.get_num_threads()}
    if args.worker == "plain" and args.gen_tokens > 0:
        out["generation"] = nanogpt_plain.time_generation(result["net"], args.gen_tokens, args.seed)
    Path(args.out).write_text(json.dumps(out))


# ----- the driver -------------------------------------------------------------------------------------------------


def launch(side: str, args: argparse.Namespace, out: Path, gen_tokens: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "PYTHONPATH": str(ROOT)}
    command = [sys.executable, __file__, "--worker", side, "--out", str(out), "--path", args.path]
    command += ["--steps", str(args.steps), "--warmup", str(args.warmup), "--threads", str(args.threads)]
    command += ["--seed", str(args.seed), "--gen-tokens", str(gen_tokens)]
    done = subprocess.run(command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if done.returncode:
        raise SystemExit(f"the {side} run failed:\n{done.stderr}")
    result = json.loads(out.read_text())
    wall, cpu = result["ms"]["wall"], result["ms"]["cpu"]
    load = "-".join(f"{x:.2f}" for x in result["load"])
    print(
        f"  {side:5s}: wall {statistics.fmean(wall):6.1f} ms/iter (median {statistics.median(wall):5.1f}), "
        f"CPU {statistics.fmean(cpu):5.1f} ms/iter; {len(wall)} iterations, {result['threads']} thread, "
        f"load average {load}",
        flush=True,
    )
    return result


def report(runs: dict[str, list[dict[str, list[float]]]]) -> None:
    """Per clock and statistic: each side's mean over runs, and fit / plain per pair averaged over the pairs."""
    for clock_name in ("wall", "cpu"):
        for stat_name, stat in (("mean", statistics.fmean), ("median", statistics.median)):
            plain = [stat(run[clock_name]) for run in runs["plain"]]
            fit = [stat(run[clock_name]) for run in runs["fit"]]
            ratios = [f / p for f, p in zip(fit, plain)]
            listed = lambda xs: ", ".join(f"{x:.1f}" for x in xs)  # noqa: E731
            print(
                f"{clock_name} ms/iter, {stat_name} per run: plain {statistics.fmean(plain):.1f} ({listed(plain)}), "
                f"fit {statistics.fmean(fit):.1f} ({listed(fit)}); fit / plain {statistics.fmean(ratios):.3f} "
                f"(pairs {', '.join(f'{r:.3f}' for r in ratios)})"
            )


def main() -> None:
    args = parse_args()
    if args.worker:
        return run_worker(args)
    print(f"{args.steps} steps per run, first {args.warmup} excluded, {args.pairs} pairs, {args.threads} thread(s)")
    runs: dict[str, list[dict[str, list[float]]]] = {"plain": [], "fit": []}
    generation = None
    with tempfile.TemporaryDirectory(prefix="nanogpt_overhead_") as tmp:
        for pair in range(args.pairs):
            print(f"pair {pair + 1}:", flush=True)
            for side in ("plain", "fit"):
                last = pair == args.pairs - 1 and side == "plain"
                result = launch(side, args, Path(tmp) / f"{side}{pair}.json", args.gen_tokens if last else 0)
                runs[side].append(result["ms"])
                generation = result.get("generation", generation)
    report(runs)
    if generation:
        print(
            f"generation of {args.gen_tokens} tokens: {generation['cache']:.2f} s with the kv cache, "
            f"{generation['no_cache']:.2f} s without ({generation['no_cache'] / generation['cache']:.1f}x), "
            f"same tokens: {generation['same_tokens']}; load average {os.getloadavg()[0]:.2f}"
        )


if __name__ == "__main__":
    main()
