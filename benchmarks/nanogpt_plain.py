"""nanoGPT's CPU configuration as a plain PyTorch loop (no Lightning): the baseline for ``gen-lightning fit``.

Same network (``GPTNet``), data (``TextDataModule``: 90/10 split, shuffled windows of 64 characters, batch
12), optimiser (AdamW, decay on matrices only, betas 0.9/0.99, weight decay 0.1), schedule (100 warm-up
steps, cosine from 1e-3 to 1e-4 over 2000 steps) and clipping (1.0) as ``experiments/nanogpt_char_cpu.yaml``.
Prints the wall time per training iteration (evaluations excluded), the validation loss every 250 steps on
the first 20 validation batches (nanoGPT's eval_iters=20), and the time to generate 500 tokens with and
without the key/value cache (which must give the same tokens).

    PYTHONPATH=. python benchmarks/nanogpt_plain.py --path /path/to/tinyshakespeare/input.txt --threads 1

Measured on this project's build machine: 2 CPU cores shared with four other engineers' jobs (load average
4-6 throughout), one torch thread, torch 2.14.1, tiny Shakespeare. Times on such a machine vary by +-30%.
    seed 1337 (run under `nice`): 173.9 ms per iteration (348 s for 2000), val loss 1.9001 (first 20 batches)
    seed 1: 129.3 ms per iteration, val loss 1.9044 (first 20 batches), 1.9101 (whole validation split)
    seed 2: 108.8 ms per iteration, val loss 1.8952 (first 20 batches), 1.9149 (whole validation split)
    500 tokens from the seed-1337 model (1 sequence, context 64): 2.59 s with the kv cache, 4.82 s without
    (1.9x; identical tokens). Past 64 tokens the cache is refilled every 32 tokens, and at this size Python
    overhead per token dominates, so the gain is small; it grows with the width and the context length.
The Lightning run of the same configuration (tests/test_transformer.py, slow) reached the same val loss,
1.9001, at seed 1337: the two loops train identically (``gen-lightning fit experiment=nanogpt_char_cpu`` too:
1.9001 on the first 20 batches, 1.9126 on the whole split).
    --no-embedding-decay, seed 1337 (load 5.2-5.5): 118.9 ms per iteration, val loss 1.8999 (first 20 batches),
    1.9135 (whole validation split): the embeddings' weight decay is not what separates these runs from 1.88.
"""

from __future__ import annotations

import argparse
import itertools
import time

import torch
import torch.nn.functional as F

from gen_lightning.data.text import TextDataModule
from gen_lightning.nn.optim import adamw_warmup_cosine
from gen_lightning.transformer.nets import GPTNet, TransformerConfig


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--path", default=None, help="text file (default: the embedded text)")
    parser.add_argument("--iters", type=int, default=2000, help="training iterations")
    parser.add_argument("--eval-interval", type=int, default=250)
    parser.add_argument("--eval-iters", type=int, default=20, help="validation batches per evaluation")
    parser.add_argument("--gen-tokens", type=int, default=500)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--seed", type=int, default=1337)
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast (the framework's CPU default)")
    parser.add_argument("--fused", action="store_true", help="fused AdamW (the framework's default)")
    parser.add_argument(
        "--no-embedding-decay", action="store_true", help="no weight decay on the embeddings (nanoGPT before mid-2023)"
    )
    return parser.parse_args()


@torch.no_grad()
def evaluate(net: GPTNet, loader, batches: int) -> float:
    """Token-weighted mean cross-entropy over the first ``batches`` validation batches."""
    net.eval()
    total, count = 0.0, 0
    for inputs, targets in itertools.islice(loader, batches):
        total += F.cross_entropy(net(inputs).flatten(0, 1), targets.flatten(), reduction="sum").item()
        count += targets.numel()
    net.train()
    return total / count


def make_optimizer(
    net: GPTNet, decay_embeddings: bool = True, fused: bool = False
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    """AdamW (decay on matrices only) and the warm-up + cosine schedule of the nanoGPT CPU configuration.

    ``decay_embeddings=False`` moves the token and position embeddings (the token one is tied to the output
    layer) to the group without decay, as nanoGPT's optimiser groups did before its ``dim() >= 2`` rule (minGPT's
    rule: decay Linear weights only).
    """
    opt = adamw_warmup_cosine(
        net.named_parameters(), lr=1e-3, min_lr=1e-4, betas=(0.9, 0.99), weight_decay=0.1,
        warmup_steps=100, lr_decay_steps=2000, fused=fused,
    )  # fmt: skip
    optimizer = opt["optimizer"]
    if not decay_embeddings:  # before any step: the optimiser has no state yet
        embeddings = {id(p) for name, p in net.named_parameters() if name.endswith("_emb.weight")}
        decay, no_decay = optimizer.param_groups
        no_decay["params"] += [p for p in decay["params"] if id(p) in embeddings]
        decay["params"] = [p for p in decay["params"] if id(p) not in embeddings]
    return optimizer, opt["lr_scheduler"]["scheduler"]


def train_step(net: GPTNet, optimizer, scheduler, batch, bf16: bool = False) -> torch.Tensor:
    """One iteration: forward (under CPU bf16 autocast if ``bf16``), backward, clip the global norm at 1.0, AdamW
    step, schedule step."""
    inputs, targets = batch  # (B, T) each
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        loss = F.cross_entropy(net(inputs).flatten(0, 1), targets.flatten())
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
    optimizer.step()
    scheduler.step()
    return loss


def train(net: GPTNet, dm: TextDataModule, args: argparse.Namespace) -> None:
    optimizer, scheduler = make_optimizer(net, decay_embeddings=not args.no_embedding_decay, fused=args.fused)
    batches = iter(dm.train_dataloader())  # one epoch is ~84k batches: more than any run here
    train_seconds = 0.0
    for step in range(1, args.iters + 1):
        start = time.perf_counter()
        loss = train_step(net, optimizer, scheduler, next(batches), bf16=args.bf16)
        train_seconds += time.perf_counter() - start
        if step % args.eval_interval == 0 or step == args.iters:
            val = evaluate(net, dm.val_dataloader(), args.eval_iters)
            ms = 1e3 * train_seconds / step
            print(f"step {step}: train loss {loss.item():.4f}, val loss {val:.4f}, {ms:.1f} ms/iter")
    ms = 1e3 * train_seconds / args.iters
    print(f"training: {args.iters} iterations, {ms:.1f} ms per iteration, {train_seconds:.0f} s in all")
    whole = evaluate(net, dm.val_dataloader(), len(dm.val_dataloader()))
    print(f"final val loss on the whole validation split: {whole:.4f}")


def time_generation(net: GPTNet, tokens: int, seed: int) -> dict[str, float]:
    """Seconds to sample ``tokens`` tokens for one sequence with and without the kv cache (same generator)."""
    net.eval()
    prompt = torch.zeros(1, 1, dtype=torch.long)
    outputs, seconds = {}, {}
    for use_cache in (True, False):
        generator = torch.Generator().manual_seed(seed)
        start = time.perf_counter()
        outputs[use_cache] = net.generate(prompt, tokens, generator=generator, use_cache=use_cache)
        seconds["cache" if use_cache else "no_cache"] = time.perf_counter() - start
        print(f"generation of {tokens} tokens, kv cache {use_cache}: {time.perf_counter() - start:.2f} s")
    same = torch.equal(outputs[True], outputs[False])
    print(f"same tokens with and without the cache: {same}")
    return {**seconds, "same_tokens": same}


def build(path: str | None, seed: int) -> tuple[GPTNet, TextDataModule]:
    """The data module (block 64, batch 12) and the seeded 4-layer, 4-head, width-128 GPT of the configuration."""
    torch.manual_seed(seed)
    dm = TextDataModule(path=path, block_size=64, batch_size=12, seed=seed)
    dm.setup("fit")
    cfg = TransformerConfig(
        vocab_size=dm.tokenizer.vocab_size, block_size=64, num_layers=4, num_heads=4, hidden_dim=128,
        dropout=0.0, bias=False,
    )  # fmt: skip
    return GPTNet(cfg), dm


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    net, dm = build(args.path, args.seed)
    print(f"{sum(p.numel() for p in net.parameters()):,} parameters, {torch.get_num_threads()} threads")
    train(net, dm, args)
    time_generation(net, args.gen_tokens, args.seed)


if __name__ == "__main__":
    main()
