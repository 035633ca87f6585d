"""Framework overhead: nanoGPT's CPU configuration through ``gen-lightning fit`` against a plain PyTorch loop.

Both sides train the same network on the same data with the same optimiser, schedule and clipping
(``experiments/nanogpt_char_cpu.yaml``: GPT, 4 layers, 4 heads, width 128, block 64, batch 12, one torch thread):

- plain: the loop of ``benchmarks/nanogpt_plain.py`` (``build``, ``make_optimizer``, ``train_step``), no evaluation;
- fit: ``gen-lightning fit experiment=nanogpt_char_cpu data.path=FILE trainer.max_steps=N logger=none metrics=none
  trainer.enable_progress_bar=false trainer.precision=32-true model.fused_optimizer=false`` (the plain loop's float32
  and multi-tensor AdamW, not the experiment's speed defaults: ``--fit-overrides``), run through
  ``gen_lightning.cli.main`` unchanged except that one timing callback (``StepTimer``) is appended to the callbacks
  ``gen_lightning.run.train.build_callbacks`` returns.

What is timed: one whole iteration, from the start of one training batch to the start of the next (data fetch,
forward, backward, clipping, optimiser and schedule steps; on the fit side also everything Lightning and the
callbacks do per step: logging, the non-finite-loss guard, the periodic ``last.ckpt`` every 200 steps), in wall
time and in CPU time of the process (``time.process_time``, which the other jobs on a shared machine disturb far
less). Start-up (imports, Hydra, data set-up, model construction) and the first ``--warmup`` iterations are left
out, and so is the iteration during which the fit side validates (evaluation, text previews and the checkpoints of
a validation are evaluation costs, which the plain side does not pay either). Two designs:

- A B A B: plain and fit in alternate fresh processes, ``--pairs`` times; overhead = mean over pairs of
  (fit ms/iter) / (plain ms/iter). Includes any cost of the fit process itself, but on a shared machine the load
  changes between runs by more than the effect measured (pair ratios below spread by +-15%).
- interleaved: inside one fit process, the timing callback runs ``--interleave`` plain steps (a second copy of the
  model, optimiser and data) before every ``--interleave`` framework steps, so both sides see the same load, the
  same process and the same moment: the per-step cost of the framework, to a few per cent.
Then it times the generation of ``--gen-tokens`` tokens with and without the key/value cache (``nanogpt_plain``).

    PYTHONPATH=. python benchmarks/nanogpt_overhead.py --path /path/to/tinyshakespeare/input.txt

Measured on this project's build machine (2 CPU cores shared with four other engineers' jobs, load average 3.3-5.9,
one torch thread per process, torch 2.14.1, lightning 2.6.6; 300 steps per run, the first 50 and the one with a
validation left out; defaults: 3 A B pairs, 2 interleaved runs of 10-step blocks), 2026-11-26 14:09-14:18:
    A B A B   wall ms/iter: plain 100.0 (124.0, 94.0, 82.0), fit 108.7 (138.6, 92.2, 95.3); fit / plain 1.087
              (pairs 1.117, 0.981, 1.162); CPU ms/iter: plain 60.4, fit 67.6; fit / plain 1.119 (1.173, 1.069, 1.115)
    interleaved wall ms/iter: plain 133.2 (120.2, 146.3), fit 139.0 (128.5, 149.5); fit / plain 1.045 (1.069, 1.022)
              CPU ms/iter: plain 68.4 (64.1, 72.8), fit 71.0 (67.6, 74.3); fit / plain 1.038 (1.054, 1.021)
    generation of 500 tokens (one sequence, context 64): 0.55 s with the kv cache, 1.18 s without (2.1x), same
    tokens (load 5.9; an earlier run at load 4.8: 1.02 s and 1.79 s).
An earlier A B A B run with 4 pairs (13:45-13:53, load 2.9-5.2) gave wall 1.055 (pairs 0.808, 0.764, 1.111, 1.539)
and CPU 1.160 (1.087, 1.019, 1.098, 1.434): the wall-time ratio of separate processes is load noise, not a
measurement. The interleaved design puts the framework's per-step cost at about 4% (target: within 5%). A cProfile
of 60 fit steps finds it in Lightning's own loop (the closure, ``self.log`` of ``train/loss`` with its
``_ResultMetric.to``, hook dispatch, the data fetcher): about 2-3 ms per step of ~60 ms; this project's callbacks
(non-finite guard, exact resume, last.ckpt, summary) take under 0.3 ms per step together.
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
FLOAT32 = ["trainer.precision=32-true", "model.fused_optimizer=false"]  # the plain loop's settings
sys.path.insert(0, str(ROOT / "benchmarks"))  # nanogpt_plain, run as a script or imported

import nanogpt_plain  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--path", required=True, help="tiny Shakespeare (input.txt)")
    parser.add_argument("--steps", type=int, default=300, help="training iterations per run")
    parser.add_argument("--warmup", type=int, default=50, help="first iterations left out of the mean")
    parser.add_argument("--pairs", type=int, default=3, help="plain/fit process pairs, run alternately (A B A B)")
    parser.add_argument("--interleaved-runs", type=int, default=2, help="fit processes with plain steps interleaved")
    parser.add_argument("--interleave", type=int, default=10, help="steps per block in the interleaved runs")
    parser.add_argument("--threads", type=int, default=1, help="torch threads in every run")
    parser.add_argument("--gen-tokens", type=int, default=500)
    parser.add_argument("--seed", type=int, default=1337)
    parser.add_argument(
        "--fit-overrides",
        nargs="*",
        default=FLOAT32,
        help="overrides of the fit side (default: nanoGPT's float32 multi-tensor AdamW, so that only the framework's "
        "overhead differs; benchmarks/nanogpt_speed.py passes none to time the framework's own speed defaults)",
    )
    parser.add_argument("--worker", choices=["plain", "fit"], help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    return parser.parse_args()


def clock() -> tuple[float, float]:
    """(wall time, CPU time of this process), in seconds."""
    return time.perf_counter(), time.process_time()


def since(start: tuple[float, float]) -> tuple[float, float]:
    """Wall and CPU milliseconds from ``start`` to now."""
    now = clock()
    return 1e3 * (now[0] - start[0]), 1e3 * (now[1] - start[1])


class PlainLoop:
    """nanogpt_plain's model, optimiser and data; ``step()`` runs one timed iteration."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.net, dm = nanogpt_plain.build(args.path, args.seed)
        self.optimizer, self.scheduler = nanogpt_plain.make_optimizer(self.net)
        self.batches = iter(dm.train_dataloader())

    def step(self) -> tuple[float, float]:
        start = clock()
        nanogpt_plain.train_step(self.net, self.optimizer, self.scheduler, next(self.batches))
        return since(start)


# ----- the workers, each in its own process ------------------------------------------------------------------------


def plain_worker(args: argparse.Namespace) -> dict:
    loop = PlainLoop(args)
    times = [loop.step() for _ in range(args.steps)]
    out = {"plain": times[args.warmup :]}
    if args.gen_tokens > 0:
        out["generation"] = nanogpt_plain.time_generation(loop.net, args.gen_tokens, args.seed)
    return out


def fit_worker(args: argparse.Namespace) -> dict:
    """``gen-lightning fit`` with a timing callback; with ``--interleave K``, K plain steps run before every K
    framework steps, in the same process, from the same callback (excluded from the framework's times)."""
    import lightning as L

    from gen_lightning import cli
    from gen_lightning.run import train

    plain = PlainLoop(args) if args.interleave else None

    class StepTimer(L.Callback):
        def __init__(self) -> None:
            self.fit: list[tuple[float, float]] = []  # framework iterations: batch start to next batch start
            self.plain: list[tuple[float, float]] = []
            self.last: tuple[float, float] | None = None
            self.validated = False

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
            if self.last is not None and not self.validated and batch_idx > args.warmup:
                self.fit.append(since(self.last))
            self.validated = False
            if plain is not None and batch_idx % args.interleave == 0:
                times = [plain.step() for _ in range(args.interleave)]
                self.plain += times if batch_idx >= args.warmup else []
            self.last = clock()

        def on_validation_start(self, trainer, pl_module) -> None:
            self.validated = True  # the iteration that contains a validation is left out

    timer = StepTimer()
    build_callbacks = train.build_callbacks
    train.build_callbacks = lambda *a, **k: [*build_callbacks(*a, **k), timer]
    overrides = [
        "experiment=nanogpt_char_cpu",
        f"data.path={args.path}",
        f"trainer.max_steps={args.steps + 1}",  # the (N + 1)th batch start closes the Nth iteration
        "logger=none",
        "metrics=none",
        "trainer.enable_progress_bar=false",
        f"seed={args.seed}",
        f"run_dir={Path(args.out).with_suffix('')}",
        *args.fit_overrides,
    ]
    cli.main(["fit", *overrides])
    return {"fit": timer.fit, **({"plain": timer.plain} if plain else {})}


def run_worker(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    load = os.getloadavg()[0]
    out = plain_worker(args) if args.worker == "plain" else fit_worker(args)
    out.update(load=[load, os.getloadavg()[0]], threads=torch.get_num_threads())
    Path(args.out).write_text(json.dumps(out))


# ----- the driver -------------------------------------------------------------------------------------------------


def launch(side: str, args: argparse.Namespace, out: Path, interleave: int = 0, gen_tokens: int = 0) -> dict:
    """Run one worker in a fresh process; print and return its per-iteration times."""
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "PYTHONPATH": str(ROOT)}
    command = [sys.executable, __file__, "--worker", side, "--out", str(out), "--path", args.path]
    command += ["--steps", str(args.steps), "--warmup", str(args.warmup), "--threads", str(args.threads)]
    command += ["--seed", str(args.seed), "--gen-tokens", str(gen_tokens), "--interleave", str(interleave)]
    command += ["--fit-overrides", *args.fit_overrides]
    done = subprocess.run(command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if done.returncode:
        raise SystemExit(f"the {side} run failed:\n{done.stderr}")
    result = json.loads(out.read_text())
    load = "-".join(f"{x:.2f}" for x in result["load"])
    for name in ("plain", "fit"):
        if name in result:
            wall, cpu = zip(*result[name])
            print(
                f"  {name:5s}: wall {statistics.fmean(wall):6.1f} ms/iter (median {statistics.median(wall):5.1f}), "
                f"CPU {statistics.fmean(cpu):5.1f} (median {statistics.median(cpu):5.1f}); {len(wall)} iterations, "
                f"{result['threads']} thread, load average {load}",
                flush=True,
            )
    return result


def report(pairs: list[tuple[list, list]]) -> None:
    """Each side's mean over runs, and fit / plain per pair averaged over the pairs; wall and CPU, mean and median."""
    for index, clock_name in enumerate(("wall", "cpu")):
        for stat_name, stat in (("mean", statistics.fmean), ("median", statistics.median)):
            plain = [stat([t[index] for t in p]) for p, _ in pairs]
            fit = [stat([t[index] for t in f]) for _, f in pairs]
            ratios = [f / p for f, p in zip(fit, plain)]
            listed = lambda xs: ", ".join(f"{x:.1f}" for x in xs)  # noqa: E731
            print(
                f"  {clock_name} ms/iter ({stat_name} of each run): plain {statistics.fmean(plain):.1f} "
                f"({listed(plain)}), fit {statistics.fmean(fit):.1f} ({listed(fit)}); "
                f"fit / plain {statistics.fmean(ratios):.3f} (pairs {', '.join(f'{r:.3f}' for r in ratios)})"
            )


def main() -> None:
    args = parse_args()
    if args.worker:
        return run_worker(args)
    print(f"{args.steps} steps per run, first {args.warmup} excluded, {args.threads} thread(s)")
    generation = None
    with tempfile.TemporaryDirectory(prefix="nanogpt_overhead_") as tmp:
        if args.pairs:
            print(f"A B A B: plain and fit in alternate processes, {args.pairs} pairs")
            pairs = []
            for k in range(args.pairs):
                gen_tokens = args.gen_tokens if k == args.pairs - 1 else 0
                plain = launch("plain", args, Path(tmp) / f"plain{k}.json", gen_tokens=gen_tokens)
                fit = launch("fit", args, Path(tmp) / f"fit{k}.json")
                pairs.append((plain["plain"], fit["fit"]))
                generation = plain.get("generation", generation)
            report(pairs)
        if args.interleaved_runs:
            print(f"interleaved: {args.interleave} plain steps before every {args.interleave} fit steps, one process")
            pairs = []
            for k in range(args.interleaved_runs):
                result = launch("fit", args, Path(tmp) / f"interleaved{k}.json", interleave=args.interleave)
                pairs.append((result["plain"], result["fit"]))
            report(pairs)
    if generation:
        print(
            f"generation of {args.gen_tokens} tokens: {generation['cache']:.2f} s with the kv cache, "
            f"{generation['no_cache']:.2f} s without ({generation['no_cache'] / generation['cache']:.1f}x), "
            f"same tokens: {generation['same_tokens']}; load average {os.getloadavg()[0]:.2f}"
        )


if __name__ == "__main__":
    main()
