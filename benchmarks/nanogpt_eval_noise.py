"""How noisy is nanoGPT's validation estimate? One checkpoint, three ways of measuring its validation loss.

nanoGPT's ``estimate_loss`` (its ``train.py``) averages the loss of ``eval_iters`` batches of windows drawn at
uniformly random offsets of the validation split (with replacement); its README's CPU result, "val loss 1.88", is
one such draw with ``eval_iters=20`` and batch 12 (240 windows of 64 characters). ``gen-lightning fit`` instead
validates on the first ``limit_val_batches`` of the fixed, non-overlapping validation windows. This script loads a
GPT checkpoint and reports, on the same weights:

1. the first ``--batches`` fixed windows (what ``experiments/nanogpt_char_cpu.yaml`` logs as ``val/loss``);
2. every fixed window of the validation split (the quantity both protocols estimate);
3. ``--repeats`` independent draws of nanoGPT's estimate (``--batches`` x ``--batch-size`` random windows, seeds
   0, 1, ...): their mean, standard deviation, range, and how often a draw is at or below ``--target``.

    PYTHONPATH=. python benchmarks/nanogpt_eval_noise.py --ckpt RUN_DIR/checkpoints/last.ckpt \\
        --path /path/to/tinyshakespeare/input.txt

Measured on the final weights of ``gen-lightning fit experiment=nanogpt_char_cpu`` (seed 1337, 2000 steps; one
thread, 97 s at load average 5.5-6.0), 2026-11-26:
    1. first 20 fixed batches of 12: 1.9001 (the run's metrics.json val/loss)
    2. all 1742 fixed windows:       1.9126
    3. 100 draws of 20 random batches of 12: mean 1.9103, std 0.0157, min 1.8697, max 1.9556, quartiles
       1.8988 / 1.9107 / 1.9220; 3 of 100 at or below 1.88.
nanoGPT's estimator is centred on the whole-split loss; a reading of 1.88 from these weights is a 2-sigma draw.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from gen_lightning.data.text import TextDataModule
from gen_lightning.transformer.gpt import GPT


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", required=True, help="a GPT checkpoint (e.g. RUN_DIR/checkpoints/last.ckpt)")
    parser.add_argument("--path", required=True, help="the text the model was trained on")
    parser.add_argument("--batches", type=int, default=20, help="nanoGPT's eval_iters")
    parser.add_argument("--batch-size", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=100, help="independent draws of the random estimate")
    parser.add_argument("--target", type=float, default=1.88, help="the published number to compare with")
    parser.add_argument("--val-fraction", type=float, default=0.1)
    parser.add_argument("--threads", type=int, default=1)
    return parser.parse_args()


@torch.no_grad()
def window_losses(net, ids: torch.Tensor, starts: torch.Tensor, block: int, chunk: int = 240) -> torch.Tensor:
    """Mean cross-entropy (nats per token) of each window ``ids[s : s + block + 1]``: (len(starts),)."""
    out = []
    for part in starts.split(chunk):
        windows = torch.stack([ids[s : s + block + 1] for s in part.tolist()]).long()  # (n, block + 1)
        logits = net(windows[:, :-1])  # (n, block, V)
        loss = F.cross_entropy(logits.transpose(1, 2), windows[:, 1:], reduction="none")  # (n, block)
        out.append(loss.mean(dim=1))
    return torch.cat(out)


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    model = GPT.load_from_checkpoint(args.ckpt, map_location="cpu").eval()
    block = model.hparams.block_size
    dm = TextDataModule(path=args.path, block_size=block, batch_size=args.batch_size, val_fraction=args.val_fraction)
    dm.setup("fit")
    if dm.tokenizer.to_config() != model.tokenizer.to_config():
        raise ValueError(f"{args.ckpt} was trained with another vocabulary than {args.path}'s")
    ids = dm.val_set.ids  # the validation split, (N,) token ids
    net = model.net
    start = time.perf_counter()

    fixed = torch.arange(0, len(ids) - block, block)  # the non-overlapping windows of the fixed protocol
    fixed_losses = window_losses(net, ids, fixed, block)
    first = fixed_losses[: args.batches * args.batch_size].mean().item()
    print(f"validation split: {len(ids):,} tokens, {len(fixed)} fixed windows of {block}")
    print(f"1. first {args.batches} fixed batches of {args.batch_size}: {first:.4f}")
    print(f"2. all {len(fixed)} fixed windows:             {fixed_losses.mean().item():.4f}")

    per_draw = args.batches * args.batch_size
    draws = []
    for seed in range(args.repeats):
        g = torch.Generator().manual_seed(seed)
        starts = torch.randint(len(ids) - block, (per_draw,), generator=g)  # as nanoGPT's get_batch
        draws.append(window_losses(net, ids, starts, block).mean().item())
    mean, std = statistics.fmean(draws), statistics.stdev(draws)
    below = sum(d <= args.target for d in draws)
    print(
        f"3. {args.repeats} draws of {args.batches} random batches of {args.batch_size}: mean {mean:.4f}, "
        f"std {std:.4f}, min {min(draws):.4f}, max {max(draws):.4f}, "
        f"quartiles {' / '.join(f'{q:.4f}' for q in statistics.quantiles(draws, n=4))}; "
        f"{below} of {args.repeats} at or below {args.target}"
    )
    print(f"({time.perf_counter() - start:.0f} s, {torch.get_num_threads()} thread)")


if __name__ == "__main__":
    main()
