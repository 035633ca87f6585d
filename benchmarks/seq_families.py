"""LSTM, GRU, GPT and BERT on tiny Shakespeare for the same wall-clock budget, through ``gen-lightning fit``.

Each model, at about 0.8M parameters, is trained by ``gen-lightning fit`` in its own process (one torch thread,
``trainer.max_time`` = ``--minutes``) on windows of 64 characters, batch 32, validating every ``--val-every``
steps on the first ``--val-batches`` validation batches. The schedule is the same warm-up + cosine for all
(``gen_lightning/nn/optim.py``, learning rates of each family's config), with ``lr_decay_steps`` set to the
number of steps the model is expected to reach in the budget (timed on a few steps before the run, ``--decay-steps
auto``), so each run ends near the floor of its schedule. Dropout is 0 (a few minutes do not overfit 1M
characters); gradients are clipped at norm 1.0. The final weights (``last.ckpt``) are then evaluated on the whole
validation split with the models' own validation step: ``val/loss`` in nats per token, ``val/bpc`` in bits.
BERT's are masked-token numbers (15% of positions predicted from both sides): not comparable with the others'.

    PYTHONPATH=. python benchmarks/seq_families.py --path /path/to/tinyshakespeare/input.txt --minutes 3

Measured on this project's build machine (2 CPU cores shared with other engineers' jobs, load average 2.6-3.2, one
torch thread, torch 2.14.1, lightning 2.6.6), 3 minutes each, 2026-11-26 14:23-14:37 (val on the whole split):
    | model | params  | steps | lr_decay_steps | val/loss | val/bpc | train time | command |
    | lstm  | 835,585 |   923 |           1123 |   1.6642 |  2.4009 |      181 s |   194 s |  hidden 224, 2 layers
    | gru   | 822,849 |   675 |            752 |   1.6482 |  2.3778 |      182 s |   194 s |  hidden 256, 2 layers
    | gpt   | 804,096 |   985 |            936 |   1.9562 |  2.8222 |      183 s |   195 s |  4 layers, 4 heads, 128
    | bert  | 826,817 |   799 |            934 |   2.4017 |  3.4649 |      184 s |   198 s |  masked: not comparable
The last in-training validations (first 20 batches of 32) read 1.6437, 1.6306, 1.9543, 2.4246. At this budget the
recurrent nets lead, with fewer or as many steps; the Transformer keeps nanoGPT's learning rate and warm-up, which
were not tuned for 1,000 steps of batch 32, so the ranking is for this budget and these settings only.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]

# About 0.8M parameters each (65 characters): the nanoGPT CPU size for the Transformers, and recurrent widths that
# match it (LSTM: 8H^2 per layer, GRU: 6H^2 per layer).
MODELS = {
    # dropout as the presets had it when the numbers above were measured
    "lstm": ["model=lstm", "model.hidden_dim=224", "model.num_layers=2", "model.dropout=0.2"],
    "gru": ["model=gru", "model.hidden_dim=256", "model.num_layers=2", "model.dropout=0.2"],
    "gpt": ["model=gpt", "model.num_layers=4", "model.num_heads=4", "model.hidden_dim=128", "model.dropout=0.2"],
    "bert": ["model=bert", "model.num_layers=4", "model.num_heads=4", "model.hidden_dim=128", "model.dropout=0.1"],
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--path", required=True, help="tiny Shakespeare (input.txt)")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--minutes", type=float, default=3.0, help="training wall-clock budget per model")
    parser.add_argument("--block-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--val-every", type=int, default=250, help="steps between validations")
    parser.add_argument("--val-batches", type=int, default=20, help="batches per validation during training")
    parser.add_argument("--decay-steps", default="auto", help="lr_decay_steps: a number, or auto (timed)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=1337)
    parser.add_argument("--out-dir", default="runs/seq_families")
    return parser.parse_args()


def data_overrides(args: argparse.Namespace) -> list[str]:
    return ["data=text", f"data.path={args.path}", f"data.block_size={args.block_size}"] + [
        f"data.batch_size={args.batch_size}"
    ]


def build(name: str, args: argparse.Namespace):
    """The composed config's data module and model, as ``gen-lightning fit`` would build them."""
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    from gen_lightning.config import config_dir, register_experiments

    register_experiments()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose("config", overrides=[*MODELS[name], *data_overrides(args), "model.dropout=0.0"])
    dm = instantiate(cfg.data)
    dm.setup("fit")
    return dm, instantiate(cfg.model, **dm.model_kwargs(), _convert_="all")


def expected_steps(name: str, args: argparse.Namespace, steps: int = 12) -> int:
    """Training steps that fit in the budget, from the time of a few steps (forward, backward, AdamW)."""
    dm, model = build(name, args)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    batches = iter(dm.train_dataloader())
    for i in range(steps + 2):  # two warm-up steps
        if i == 2:
            start = time.perf_counter()
        inputs, targets = next(batches)
        loss = F.cross_entropy(model(inputs).flatten(0, 1), targets.flatten())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    per_step = (time.perf_counter() - start) / steps
    return max(100, int(60 * args.minutes / per_step))


def fit(name: str, decay_steps: int, run_dir: Path, args: argparse.Namespace) -> float:
    """Run ``gen-lightning fit`` for one model; returns the command's wall time in seconds."""
    h, rem = divmod(int(60 * args.minutes), 3600)
    overrides = [
        *MODELS[name],
        *data_overrides(args),
        "model.dropout=0.0",
        f"model.lr_decay_steps={decay_steps}",
        f"+trainer.max_time=00:{h:02d}:{rem // 60:02d}:{rem % 60:02d}",
        "trainer.max_steps=-1",
        f"trainer.val_check_interval={args.val_every}",
        "trainer.check_val_every_n_epoch=null",
        f"trainer.limit_val_batches={args.val_batches}",
        "trainer.gradient_clip_val=1.0",
        "trainer.enable_progress_bar=false",
        "logger=none",
        "metrics=none",
        f"seed={args.seed}",
        f"run_dir={run_dir}",
    ]
    print("  gen-lightning fit " + " ".join(overrides), flush=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    command = [sys.executable, "-m", "gen_lightning.cli", "fit", *overrides]
    done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{name} failed:\n{done.stderr[-4000:]}")
    return time.perf_counter() - start


def evaluate(run_dir: Path) -> tuple[dict, int]:
    """Whole-validation-split metrics of the final weights, and the parameter count."""
    import lightning as L

    from gen_lightning.commands.sample import run_datamodule
    from gen_lightning.run.checkpoint import load_module

    ckpt = run_dir / "checkpoints" / "last.ckpt"
    module = load_module(ckpt)
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False)
    metrics = trainer.validate(module, datamodule=run_datamodule(ckpt), verbose=False)[0]
    return metrics, sum(p.numel() for p in module.parameters())


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    out_dir = Path(args.out_dir) / time.strftime("%Y%m%d-%H%M%S")
    rows = []
    for name in args.models:
        decay = expected_steps(name, args) if args.decay_steps == "auto" else int(args.decay_steps)
        print(f"{name}: lr_decay_steps {decay}, load average {os.getloadavg()[0]:.2f}", flush=True)
        seconds = fit(name, decay, out_dir / name, args)
        summary = json.loads((out_dir / name / "metrics.json").read_text())
        metrics, params = evaluate(out_dir / name)
        rows.append(
            {
                "model": name,
                "params": params,
                "steps": summary["global_step"],
                "decay": decay,
                "val_loss_in_training": summary["final"].get("val/loss", float("nan")),
                "val_loss": metrics["val/loss"],
                "val_bpc": metrics["val/bpc"],
                "train_s": summary["train_time_s"],
                "wall_s": seconds,
                "load": os.getloadavg()[0],
            }
        )
        print(f"  {json.dumps(rows[-1])}", flush=True)
    columns = ["model", "params", "steps", "lr_decay_steps", "val/loss (last in training)", "val/loss (all val)"]
    columns += ["val/bpc (all val)", "train time", "command wall time", "load after"]
    print("\n| " + " | ".join(columns) + " |\n" + "|---" * len(columns) + "|")
    for r in rows:
        print(
            f"| {r['model']} | {r['params']:,} | {r['steps']} | {r['decay']} | {r['val_loss_in_training']:.4f} | "
            f"{r['val_loss']:.4f} | {r['val_bpc']:.4f} | {r['train_s']:.0f} s | {r['wall_s']:.0f} s | {r['load']:.2f} |"
        )
    (out_dir / "results.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
