"""GPU efficiency: GPT-2 small tokens/s and MFU, and the DDPM CIFAR-10 U-Net against diffusers' UNet2DModel.

NOT MEASURED ON A GPU YET. The machine this project is built on has no GPU; this script was prepared there and runs
there only as ``--smoke`` (tiny sizes, CPU, a few iterations: it proves the code paths work, its numbers mean
nothing). Run it on one CUDA GPU to fill in the numbers; it writes ``benchmarks/results/gpu_efficiency_<gpu>.json``
with the device, the versions and the command.

1. GPT-2 small (124M: 12 layers, 12 heads, width 768, context 1024, vocabulary 50304, no biases, no dropout) on
   random tokens, batch ``--gpt-batch``: bf16 autocast, ``torch.compile``, PyTorch's scaled-dot-product attention
   (flash kernels on Ampere and newer), fused AdamW, gradient clipping at 1.0. Two ways: ``plain`` (``GPTNet`` and
   the optimiser in a bare loop) and ``framework`` (``gen_lightning.transformer.gpt.GPT`` trained by Lightning with
   ``precision=bf16-mixed``, ``compile=True``, ``fused_optimizer=True``). Reported: ms per iteration, tokens/s and
   MFU computed as nanoGPT's ``estimate_mfu`` does (6N + 12 L H Q T FLOPs per token, N without the position
   embeddings; peak 312 TFLOPS for an A100, 989 for an H100 or H200, else ``--peak-tflops``). With
   ``--nanogpt DIR`` (a checkout of karpathy/nanoGPT, outside this repository) nanoGPT's own ``bench.py`` runs the
   same size in the same session (``--real_data=False``) and its MFU is printed beside ours.
2. DDPM U-Net at Ho et al.'s CIFAR-10 size (``gen_lightning.diffusion.nets.UNet``: width 128, multipliers 1, 2, 2, 2,
   two residual blocks per level, attention at 16x16) against ``diffusers.UNet2DModel`` configured as
   google/ddpm-cifar10-32 (35.7M parameters): training images/s (bf16 autocast, AdamW, batch ``--unet-batch``, the
   epsilon loss at random timesteps) and sampling network evaluations x images per second (bf16, inference mode,
   batch ``--sample-batch``), eager and compiled.

    python benchmarks/gpu_efficiency.py [--nanogpt /path/to/nanoGPT]      # one CUDA GPU
    python benchmarks/gpu_efficiency.py --smoke                            # CPU, tiny sizes: does it run?

Measured: not yet (no GPU run recorded, and no smoke run's output written here).
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gen_lightning.diffusion.nets import UNet  # noqa: E402
from gen_lightning.nn.optim import adamw_warmup_cosine  # noqa: E402
from gen_lightning.transformer.nets import GPTNet, TransformerConfig  # noqa: E402

PEAK_BF16_TFLOPS = {"A100": 312.0, "H100": 989.0, "H200": 989.0}  # dense bf16, SXM


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes on the CPU: check that everything runs")
    parser.add_argument("--iters", type=int, default=30, help="timed iterations per measurement")
    parser.add_argument("--warmup", type=int, default=10, help="iterations before timing (compilation happens here)")
    parser.add_argument("--gpt-batch", type=int, default=12, help="sequences of 1024 tokens per iteration")
    parser.add_argument("--unet-batch", type=int, default=128)
    parser.add_argument("--sample-batch", type=int, default=256)
    parser.add_argument("--peak-tflops", type=float, help="bf16 peak of the GPU (default: by its name)")
    parser.add_argument("--nanogpt", type=Path, help="nanoGPT checkout: also run its bench.py")
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument("--out", type=Path, help="results JSON (default: benchmarks/results/gpu_efficiency_<gpu>.json)")
    args = parser.parse_args()
    if args.smoke:
        args.iters, args.warmup, args.gpt_batch, args.unet_batch, args.sample_batch = 3, 1, 2, 4, 8
    return args


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(step, device: torch.device, iters: int, warmup: int) -> float:
    """Seconds per call of ``step()`` after ``warmup`` calls."""
    for _ in range(warmup):
        step()
    sync(device)
    start = time.perf_counter()
    for _ in range(iters):
        step()
    sync(device)
    return (time.perf_counter() - start) / iters


# ----- 1. GPT-2 small -----------------------------------------------------------------------------------------------


def gpt_config(smoke: bool) -> TransformerConfig:
    if smoke:
        return TransformerConfig(vocab_size=65, block_size=32, num_layers=2, num_heads=2, hidden_dim=64)
    return TransformerConfig(vocab_size=50304, block_size=1024, num_layers=12, num_heads=12, hidden_dim=768)


def mfu(cfg: TransformerConfig, params: int, tokens_per_s: float, peak_tflops: float) -> float:
    """nanoGPT's ``estimate_mfu``: (6 N + 12 L H Q T) FLOPs per token against the bf16 peak."""
    per_token = 6 * params + 12 * cfg.num_layers * cfg.num_heads * (cfg.hidden_dim // cfg.num_heads) * cfg.block_size
    return per_token * tokens_per_s / (peak_tflops * 1e12)


def gpt_plain(cfg, args, device) -> float:
    """Seconds per iteration of the bare loop."""
    net = GPTNet(cfg).to(device)
    opt = adamw_warmup_cosine(
        net.named_parameters(), lr=6e-4, min_lr=6e-5, betas=(0.9, 0.95), weight_decay=0.1, warmup_steps=100,
        lr_decay_steps=10_000, fused=True,
    )  # fmt: skip
    optimizer = opt["optimizer"]
    model = net if args.no_compile else torch.compile(net)
    tokens = torch.randint(cfg.vocab_size, (args.gpt_batch, cfg.block_size + 1), device=device)
    x, y = tokens[:, :-1], tokens[:, 1:]

    def step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16):
            loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return timed(step, device, args.iters, args.warmup)


def gpt_framework(cfg, args, device) -> float:
    """Seconds per iteration of ``GPT`` trained by Lightning (bf16-mixed, compile, fused AdamW), by batch times."""
    import lightning as L
    from torch.utils.data import DataLoader, TensorDataset

    from gen_lightning.transformer.gpt import GPT

    tokenizer = {"kind": "byte"} if cfg.vocab_size == 256 else {"kind": "char", "chars": "".join(map(chr, range(
        0x100, 0x100 + cfg.vocab_size)))}  # fmt: skip
    module = GPT(
        tokenizer, block_size=cfg.block_size, num_layers=cfg.num_layers, num_heads=cfg.num_heads,
        hidden_dim=cfg.hidden_dim, dropout=0.0, bias=False, lr=6e-4, min_lr=6e-5, betas=(0.9, 0.95),
        warmup_steps=100, lr_decay_steps=10_000, fused_optimizer=True, compile=not args.no_compile,
    )  # fmt: skip
    n = args.gpt_batch * (args.iters + args.warmup)
    tokens = torch.randint(cfg.vocab_size, (n, cfg.block_size + 1))
    loader = DataLoader(TensorDataset(tokens[:, :-1], tokens[:, 1:]), batch_size=args.gpt_batch, pin_memory=True)
    times: list[float] = []

    class Timer(L.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
            if batch_idx == args.warmup:
                sync(device)
                times.append(time.perf_counter())

        def on_train_end(self, trainer, pl_module) -> None:
            sync(device)
            times.append(time.perf_counter())

    trainer = L.Trainer(
        accelerator=device.type, devices=1, precision="bf16-mixed", max_steps=args.iters + args.warmup,
        gradient_clip_val=1.0, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, limit_val_batches=0, callbacks=[Timer()],
    )  # fmt: skip
    trainer.fit(module, loader)
    return (times[1] - times[0]) / args.iters


def nanogpt_bench(args) -> dict | None:
    """nanoGPT's own bench.py at GPT-2 small size, random data; its ms per iteration and MFU as it prints them."""
    if args.nanogpt is None:
        return None
    cmd = [sys.executable, "bench.py", "--real_data=False", f"--batch_size={args.gpt_batch}"]
    cmd += [f"--compile={not args.no_compile}"]
    out = subprocess.run(cmd, cwd=args.nanogpt, capture_output=True, text=True, check=True).stdout
    found = re.findall(r"time per iteration: ([\d.]+)ms, MFU: ([\d.]+)%", out)
    ms, mfu_percent = map(float, found[-1])
    return {"ms_per_iter": ms, "mfu_percent": mfu_percent, "command": " ".join(cmd[1:])}


def gpt_section(args, device, peak: float) -> dict:
    cfg = gpt_config(args.smoke)
    params = sum(p.numel() for p in GPTNet(cfg).parameters()) - cfg.block_size * cfg.hidden_dim  # nanoGPT's N
    tokens = args.gpt_batch * cfg.block_size
    out = {"params": params, "batch": args.gpt_batch, "block": cfg.block_size}
    for name, run in (("plain", gpt_plain), ("framework", gpt_framework)):
        seconds = run(cfg, args, device)
        out[name] = {"ms_per_iter": 1e3 * seconds, "tokens_per_s": tokens / seconds}
        out[name]["mfu_percent"] = 100 * mfu(cfg, params, tokens / seconds, peak)
        print(f"GPT {name:9s}: {1e3 * seconds:8.1f} ms/iter, {tokens / seconds:10.0f} tokens/s, MFU "
              f"{out[name]['mfu_percent']:.1f}%", flush=True)  # fmt: skip
    out["nanogpt_bench"] = nanogpt_bench(args)
    if out["nanogpt_bench"]:
        print(f"nanoGPT bench.py: {out['nanogpt_bench']}")
    return out


# ----- 2. DDPM U-Net against diffusers -------------------------------------------------------------------------------


def unets(smoke: bool) -> dict[str, torch.nn.Module]:
    from diffusers import UNet2DModel

    if smoke:
        ours = UNet(3, 8, hidden_dim=16, channel_mult=[1, 2], num_res_blocks=1, attention_resolutions=[4])
        theirs = UNet2DModel(
            sample_size=8, block_out_channels=(16, 32), layers_per_block=1, norm_num_groups=4,
            down_block_types=("DownBlock2D", "AttnDownBlock2D"), up_block_types=("AttnUpBlock2D", "UpBlock2D"),
        )  # fmt: skip
        return {"gen_lightning": ours, "diffusers": theirs}
    ours = UNet(3, 32, hidden_dim=128, channel_mult=[1, 2, 2, 2], num_res_blocks=2, attention_resolutions=[16])
    theirs = UNet2DModel(  # google/ddpm-cifar10-32
        sample_size=32, block_out_channels=(128, 256, 256, 256), layers_per_block=2, dropout=0.1,
        down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"), flip_sin_to_cos=False, freq_shift=1,
    )  # fmt: skip
    return {"gen_lightning": ours, "diffusers": theirs}


def unet_rates(name: str, net: torch.nn.Module, args, device, compiled: bool) -> dict:
    size = 8 if args.smoke else 32
    net = net.to(device)
    call = torch.compile(net) if compiled else net

    def forward(x, t):
        out = call(x, t)
        return out.sample if hasattr(out, "sample") else out  # diffusers returns an output object

    optimizer = torch.optim.AdamW(net.parameters(), lr=2e-4, fused=device.type == "cuda")
    x0 = torch.randn(args.unet_batch, 3, size, size, device=device)

    def train_step() -> None:
        t = torch.randint(0, 1000, (args.unet_batch,), device=device)
        noise = torch.randn_like(x0)
        with torch.autocast(device.type, dtype=torch.bfloat16):
            loss = F.mse_loss(forward(x0 + noise, t).float(), noise)  # cost, not the exact DDPM noising
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    xs = torch.randn(args.sample_batch, 3, size, size, device=device)
    ts = torch.full((args.sample_batch,), 500, device=device)

    def sample_step() -> None:
        with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16):
            forward(xs, ts)

    net.train()
    train_s = timed(train_step, device, args.iters, args.warmup)
    net.eval()
    sample_s = timed(sample_step, device, args.iters, args.warmup)
    row = {
        "params": sum(p.numel() for p in net.parameters()),
        "compiled": compiled,
        "train_images_per_s": args.unet_batch / train_s,
        "sample_evaluations_x_images_per_s": args.sample_batch / sample_s,
    }
    print(f"U-Net {name:13s} compiled={compiled!s:5s}: {row['params'] / 1e6:5.1f}M parameters, train "
          f"{row['train_images_per_s']:9.1f} images/s, sampling {row['sample_evaluations_x_images_per_s']:9.1f} "
          "evaluations x images/s", flush=True)  # fmt: skip
    return row


def unet_section(args, device) -> list[dict]:
    rows = []
    for compiled in [False] if args.no_compile else [False, True]:
        for name, net in unets(args.smoke).items():
            torch.manual_seed(0)
            rows.append({"net": name, **unet_rates(name, net, args, device, compiled)})
    return rows


def main() -> None:
    args = parse_args()
    device = torch.device("cpu" if args.smoke or not torch.cuda.is_available() else "cuda")
    if device.type == "cpu" and not args.smoke:
        raise SystemExit("no CUDA GPU: run on a GPU machine, or pass --smoke to check the script on the CPU")
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    peak = args.peak_tflops or next((v for k, v in PEAK_BF16_TFLOPS.items() if k in gpu), None)
    if peak is None:
        peak = 1.0 if args.smoke else None
        if peak is None:
            raise SystemExit(f"unknown bf16 peak for {gpu!r}: pass --peak-tflops")
    torch.backends.cuda.matmul.allow_tf32 = True
    print(f"device {gpu}, torch {torch.__version__}, bf16 peak {peak} TFLOPS{' (smoke)' if args.smoke else ''}")
    results = {
        "device": gpu,
        "smoke": args.smoke,
        "versions": {"torch": torch.__version__, "python": platform.python_version()},
        "command": " ".join(sys.argv),
        "peak_tflops": peak,
        "gpt2_small": gpt_section(args, device, peak),
        "ddpm_unet": unet_section(args, device),
    }
    slug = re.sub(r"[^A-Za-z0-9]+", "_", gpu).strip("_").lower()
    folder = Path(tempfile.gettempdir()) if args.smoke else ROOT / "benchmarks" / "results"
    out = args.out or folder / f"gpu_efficiency_{slug}.json"
    out.write_text(json.dumps(results, indent=2))
    print(f"written {out}")


if __name__ == "__main__":
    main()
