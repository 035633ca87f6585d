"""Where the time of ``gen-lightning fit experiment=nanogpt_char_cpu`` goes: a phase table of one whole run.

Two parts, each in a fresh process with ``--threads`` torch threads:

1. The iteration, taken apart (``--iters`` plain-PyTorch iterations of ``nanogpt_plain``'s network, data, optimiser
   and schedule, after 20 warm-up ones): CPU milliseconds of the data window fetch, forward (with the loss),
   backward, gradient clipping and the optimiser + schedule step, for nanoGPT's own CPU settings (float32,
   multi-tensor AdamW) and for the framework's defaults (bf16 autocast with float32 attention, fused AdamW); and
   causal attention alone at this shape in float32 and bf16, PyTorch's CPU flash kernel and its math kernel (why
   ``gen_lightning/transformer/nets.py`` keeps attention in float32 under CPU autocast).
2. The whole command (``gen-lightning fit experiment=nanogpt_char_cpu data.path=FILE`` plus ``--overrides``, run
   in-process through ``gen_lightning.cli.main`` with one timing callback added): wall and CPU seconds of start-up
   (imports; config, data, model, logger and trainer set-up), the training iterations (hooks included), the
   gaps between iterations (the data fetch and Lightning's loop), validation loops, text previews, checkpoint
   writes and the end of the run (the final checkpoint, W&B close, metrics.json).

    PYTHONPATH=. python benchmarks/nanogpt_profile.py --path /path/to/tinyshakespeare/input.txt

Measured 2026-11-30 18:30 on the 2-core development machine, otherwise idle (load 0.04-0.93), one thread, defaults
(129 s for the whole script):

    part 1: one iteration, CPU ms, mean of 100
                          data window  forward + loss  backward  clip  optimizer + schedule  total
      nanoGPT settings            0.3            19.9      36.4   0.8                   2.7   60.0
      framework defaults          0.3            13.3      22.9   0.8                   1.3   38.6
      attention alone (B 12, H 4, T 64, D 32), forward + backward: float32 flash 1.70 ms, float32 math 2.54,
      bfloat16 flash 7.39, bfloat16 math 2.69 (hence float32 attention under CPU autocast)
    part 2: gen-lightning fit experiment=nanogpt_char_cpu data.path=.../input.txt
      phase                                                        wall s    CPU s  calls
      start-up: imports                                               4.1      4.0      1
      start-up: config, data, model, logger, trainer                  2.0      1.7      1
      training iterations (forward, backward, optimiser, hooks)      84.6     85.4   2000
      between iterations: data fetch, loop                            1.6      1.6   1999
      W&B logging (every 10 iterations, validations)                  0.2      0.2    208
      checkpoint writes                                               0.4      0.3     18
      text previews (4 x 200 tokens)                                  1.0      1.0      4
      W&B text tables of the previews                                 0.4      0.3      4
      validation loops (whole split, 4 times)                        10.1     10.2      4
      end of run: final checkpoint, W&B close, metrics.json           0.0      0.0      1
      whole process                                                 104.8    105.0      1
      final val/loss (whole split): 1.9123

The iterations are 81% of the run (42 ms each); bf16 autocast cuts forward + backward from 56 to 36 ms, fused AdamW
the optimiser step from 2.7 to 1.3 ms. The rest is validation on the whole split (10%, nanoGPT estimates on 20
batches) and 6 s of start-up. The physical floor of ~20 ms per iteration (4.0 GFLOP at ~200 GFLOP/s) is not reached:
the matrices of this 0.8M-parameter model are too small for full efficiency of one core.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
START = (time.perf_counter(), time.process_time())  # before the heavy imports of the fit worker


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--path", required=True, help="tiny Shakespeare (input.txt)")
    parser.add_argument("--iters", type=int, default=100, help="timed plain iterations per setting (part 1)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads in every run")
    parser.add_argument("--overrides", nargs="*", default=[], help="extra Hydra overrides of the fit (part 2)")
    parser.add_argument("--worker", choices=["iteration", "attention", "fit"], help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    return parser.parse_args()


def clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


# ----- part 1: one iteration taken apart --------------------------------------------------------------------------


def iteration_worker(args: argparse.Namespace) -> dict:
    import torch
    import torch.nn.functional as F

    sys.path.insert(0, str(ROOT / "benchmarks"))
    import nanogpt_plain

    out = {}
    for name, bf16, fused in (("nanoGPT settings", False, False), ("framework defaults", True, True)):
        net, dm = nanogpt_plain.build(args.path, 1337)
        optimizer, scheduler = nanogpt_plain.make_optimizer(net, fused=fused)
        batches = iter(dm.train_dataloader())
        parts = {k: 0.0 for k in ("data window", "forward + loss", "backward", "clip", "optimizer + schedule")}
        for i in range(20 + args.iters):
            marks = [time.process_time()]
            inputs, targets = next(batches)
            marks.append(time.process_time())
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                loss = F.cross_entropy(net(inputs).flatten(0, 1), targets.flatten())
            marks.append(time.process_time())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            marks.append(time.process_time())
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            marks.append(time.process_time())
            optimizer.step()
            scheduler.step()
            marks.append(time.process_time())
            if i >= 20:
                for key, a, b in zip(parts, marks, marks[1:]):
                    parts[key] += 1e3 * (b - a) / args.iters
        out[name] = parts
    return out


def attention_worker(args: argparse.Namespace) -> dict:
    """CPU ms of causal attention forward + backward at the configuration's shape, per dtype and kernel."""
    import torch
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel

    out = {}
    for dtype in (torch.float32, torch.bfloat16):
        q, k, v = (torch.randn(12, 4, 64, 32, dtype=dtype, requires_grad=True) for _ in range(3))  # (B, H, T, D)
        for kernel in (SDPBackend.FLASH_ATTENTION, SDPBackend.MATH):
            with sdpa_kernel(kernel):
                for i in range(10 + args.iters):
                    if i == 10:
                        start = time.process_time()
                    F.scaled_dot_product_attention(q, k, v, is_causal=True).float().sum().backward()
            out[f"{str(dtype).split('.')[1]} {kernel.name.lower()}"] = 1e3 * (time.process_time() - start) / args.iters
    return out


# ----- part 2: the whole command ---------------------------------------------------------------------------------


class Phases:
    """Wall and CPU seconds per named phase; ``span(name)`` is a context manager, ``add`` books an interval."""

    def __init__(self) -> None:
        self.totals: dict[str, list[float]] = {}
        self.nested: list[tuple[str, tuple[float, float], tuple[float, float]]] = []  # wrapped calls

    def add(self, name: str, start: tuple[float, float], end: tuple[float, float] | None = None) -> None:
        end = end or clock()
        total = self.totals.setdefault(name, [0.0, 0.0, 0])
        total[0] += end[0] - start[0]
        total[1] += end[1] - start[1]
        total[2] += 1

    def wrap(self, owner, attribute: str, name: str) -> None:
        """Time every call of ``owner.attribute`` as phase ``name`` (and take it out of the enclosing phase)."""
        original = getattr(owner, attribute)
        phases = self

        def timed(*a, **k):
            start = clock()
            try:
                return original(*a, **k)
            finally:
                phases.add(name, start)
                phases.nested.append((name, start, clock()))

        setattr(owner, attribute, timed)


def fit_worker(args: argparse.Namespace) -> dict:
    import lightning as L
    from lightning.pytorch.callbacks import TQDMProgressBar

    from gen_lightning import cli, tracking
    from gen_lightning.nn.language_model import LanguageModel
    from gen_lightning.run import train

    phases = Phases()
    phases.add("start-up: imports", START)
    marks = {"setup": clock()}

    class Timer(L.Callback):
        def __init__(self) -> None:
            self.batch_start = self.batch_end = self.val_start = None

        def _book(self, name: str, start, end=None) -> None:
            """Book ``start..end`` as ``name`` minus the nested phases (checkpoints, previews) inside it."""
            end = end or clock()
            inner = [(s, e) for _, s, e in phases.nested if s[0] >= start[0] and e[0] <= end[0]]
            wall = end[0] - start[0] - sum(e[0] - s[0] for s, e in inner)
            cpu = end[1] - start[1] - sum(e[1] - s[1] for s, e in inner)
            phases.add(name, (0.0, 0.0), (wall, cpu))

        def on_fit_start(self, trainer, pl_module) -> None:
            phases.add("start-up: config, data, model, logger, trainer", marks["setup"])

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
            if self.batch_end is not None:
                self._book("between iterations: data fetch, loop", self.batch_end)
            self.batch_start = clock()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            self._book("training iterations (forward, backward, optimiser, hooks)", self.batch_start)
            self.batch_end = clock()

        def on_validation_start(self, trainer, pl_module) -> None:
            self.val_start = clock()

        def on_validation_end(self, trainer, pl_module) -> None:
            self._book("validation loops", self.val_start)
            self.batch_end = clock()  # the gap after a validation is not a data fetch

        def on_train_end(self, trainer, pl_module) -> None:
            marks["end"] = clock()

    phases.wrap(L.Trainer, "save_checkpoint", "checkpoint writes")
    phases.wrap(LanguageModel, "preview", "text previews (4 x 200 tokens)")
    phases.wrap(TQDMProgressBar, "on_train_batch_end", "progress bar (every iteration)")
    phases.wrap(tracking.StepWandbLogger, "log_metrics", "W&B logging (every 10 iterations, validations)")
    phases.wrap(tracking, "log_texts", "W&B text tables of the previews")
    build_callbacks = train.build_callbacks
    train.build_callbacks = lambda *a, **k: [*build_callbacks(*a, **k), Timer()]
    with tempfile.TemporaryDirectory(prefix="nanogpt_profile_") as tmp:
        overrides = ["experiment=nanogpt_char_cpu", f"data.path={args.path}", f"run_dir={tmp}/run", *args.overrides]
        cli.main(["fit", *overrides])
        phases.add("end of run: final checkpoint, W&B close, metrics.json", marks["end"])
        phases.totals["end of run: final checkpoint, W&B close, metrics.json"][0] -= sum(
            e[0] - s[0] for n, s, e in phases.nested if n == "checkpoint writes" and s[0] >= marks["end"][0]
        )
        summary = json.loads(Path(tmp, "run", "metrics.json").read_text())
    phases.add("whole process", START)
    return {"phases": phases.totals, "val_loss": summary["final"].get("val/loss"), "overrides": overrides}


# ----- driver -----------------------------------------------------------------------------------------------------


def launch(worker: str, args: argparse.Namespace, out: Path) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "PYTHONPATH": str(ROOT), "WANDB_MODE": "offline"}
    command = [sys.executable, __file__, "--worker", worker, "--out", str(out), "--path", args.path]
    command += ["--iters", str(args.iters), "--threads", str(args.threads), "--overrides", *args.overrides]
    done = subprocess.run(command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if done.returncode:
        raise SystemExit(f"the {worker} worker failed:\n{done.stderr[-3000:]}")
    return json.loads(out.read_text())


def main() -> None:
    args = parse_args()
    if args.worker:
        import torch

        torch.set_num_threads(args.threads)
        workers = {"iteration": iteration_worker, "attention": attention_worker, "fit": fit_worker}
        result = workers[args.worker](args)
        Path(args.out).write_text(json.dumps(result))
        return
    load = lambda: "/".join(f"{x:.2f}" for x in os.getloadavg())  # noqa: E731
    with tempfile.TemporaryDirectory() as tmp:
        print(f"part 1: one iteration, CPU ms, mean of {args.iters} (load {load()})", flush=True)
        parts = launch("iteration", args, Path(tmp) / "iteration.json")
        names = list(next(iter(parts.values())))
        print(f"  {'':22s}" + "".join(f"{n:>22s}" for n in [*names, "total"]))
        for setting, values in parts.items():
            cells = [values[n] for n in names] + [sum(values.values())]
            print(f"  {setting:22s}" + "".join(f"{v:22.1f}" for v in cells))
        kernels = launch("attention", args, Path(tmp) / "attention.json")
        print("  attention alone (B 12, H 4, T 64, D 32), forward + backward, CPU ms: " + ", ".join(
            f"{name} {ms:.2f}" for name, ms in kernels.items()))  # fmt: skip
        print(f"part 2: the whole command (load before {load()})", flush=True)
        fit = launch("fit", args, Path(tmp) / "fit.json")
    print(f"  gen-lightning fit {' '.join(fit['overrides'])}  (load after {load()})")
    print(f"  {'phase':58s} {'wall s':>8s} {'CPU s':>8s} {'calls':>6s}")
    for name, (wall, cpu, calls) in fit["phases"].items():
        print(f"  {name:58s} {wall:8.1f} {cpu:8.1f} {calls:6d}")
    print(f"  final val/loss (whole split): {fit['val_loss']:.4f}")


if __name__ == "__main__":
    main()
