"""The project's DDPM U-Net against diffusers' ``UNet2DModel`` of the same size, trained side by side.

diffusers' ``train_unconditional`` example is the field's reference for diffusion training: ``UNet2DModel`` +
``DDPMScheduler``, epsilon prediction, AdamW, EMA. Here both denoisers are trained by one loop on the same data,
batch, noise schedule (the project's ``GaussianDiffusion``, whose betas, ``q_sample`` and samplers are tested
against diffusers' ``DDPMScheduler``/``DDIMScheduler``/``DPMSolverMultistepScheduler`` in tests/), optimiser, warm-up
and EMA (the project's DDPM size preset for the image side), so only the network differs:

- the project's ``diffusion.nets.UNet`` as ``conf/model/ddpm.yaml`` builds it by default;
- diffusers' ``UNet2DModel`` with the same widths, depth, attention (one head) and scale-shift time conditioning
  (``resnet_time_scale_shift="scale_shift"``): parameter counts within 0.04% (8x8: 177,441 against 177,505; 28x28:
  6,946,625 against 6,946,881).

The two trainings start at the same moment in two processes of one torch thread each, for the same wall-clock
budget (``--minutes``), so they share the machine's load. Reported per data set: training steps done and wall /
CPU ms per step (the ratio project / diffusers: target <= 1.0), FID_clf of ``--num-samples`` EMA samples at that
equal wall time (the project's classifier-feature FID, ``metrics=classifier``: a small CNN trained on the data's
labels), and sampling seconds per image with the best 25-evaluation sampler of benchmarks/diffusion_samplers.py
(Heun on Karras levels, 13 steps = 25 network evaluations; the project's samplers drive both networks).

    PYTHONPATH=. python benchmarks/diffusers_side_by_side.py --data digits mnist --minutes 4 6

MNIST: the 10,000 test images of /work/shared/data/mnist10k (``--mnist DIR``), read from its IDX files.

Measured 2026-12-07 01:14-01:25 (digits) on the shared development machine (``grep -m1 "model name"
/proc/cpuinfo``: AMD EPYC, AVX2, 2 cores shared with other agents' jobs, load average 11-16: each process got about
a tenth of a core), one torch thread per process, seed 0, 500 samples for FID_clf (KID raw, not x1000):

    PYTHONPATH=. python benchmarks/diffusers_side_by_side.py --data digits --minutes 4 --num-samples 500

    digits (8x8): 4 min of training each, started together, batch 64, cosine schedule T = 1000, lr 1e-3
      net           params  steps  ms/step  CPU ms    loss  FID_clf  KID_clf  s/image
      project      177,505    264    909.8    80.2  0.2012    92.67    501.6   0.2369
      diffusers    177,441    259    928.6    85.4  0.2316    90.83    588.8   0.2194
      project / diffusers: wall per step 0.980, CPU per step 0.939, sampling 1.079

    mnist (28x28, 10,000 images; run 01:45-02:14 with --data mnist --minutes 4, load average 3-7), batch 64, linear
    schedule T = 1000, lr 2e-4, dropout 0.1
      net           params  steps  ms/step  CPU ms    loss  FID_clf  KID_clf  s/image
      project    6,946,881      7  35219.3  8860.7  1.0007  2284.13  38783.9   2.3097
      diffusers  6,946,625      8  31755.3  8785.4  1.3195  1886.32  19886.1   2.5209
      project / diffusers: wall per step 1.109, CPU per step 1.009, sampling 0.916

On MNIST a step of the 6.9M-parameter U-Net costs ~8.8 s of one CPU thread, so 4 minutes on this shared machine
gave 7-8 steps: the per-step CPU time is at parity (1.01x; the wall ratio 1.11 is one step of difference over 7-8
under a changing load), the project samples 9% faster per image, and the FID_clf numbers are of untrained networks
(not a comparison). A meaningful MNIST FID at equal time needs a GPU or a much longer run.

Reading: per training step the project's U-Net is as fast as diffusers' (0.98x wall, 0.94x CPU: target <= 1.0
met) at the same parameter count; at equal wall time the two are not told apart on the digits (FID_clf 92.7 against
90.8 and KID_clf 502 against 589 after ~260 steps, far from converged: 500 samples), so diffusers' U-Net is not
better at equal time and is not added as ``model.net``; diffusers samples 8% faster per image (0.219 against 0.237 s
with Heun-13 on 1 thread; on MNIST the project's was 9% faster).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLER = {"sampler": "heun", "sample_steps": 13}  # 25 network evaluations (benchmarks/diffusion_samplers.py)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", nargs="+", default=["digits", "mnist"], choices=["digits", "mnist"])
    parser.add_argument("--minutes", nargs="+", type=float, default=[4.0, 6.0], help="training budget per data set")
    parser.add_argument("--num-samples", type=int, default=1000, help="samples for FID_clf")
    parser.add_argument("--time-batch", type=int, default=16, help="images timed for the sampling speed")
    parser.add_argument("--mnist", type=Path, default=ROOT.parent / "shared" / "data" / "mnist10k")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--worker", choices=["project", "diffusers"], help=argparse.SUPPRESS)
    parser.add_argument("--data-override", nargs="*", default=[], help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args()


# ---- the diffusers network as the project's denoiser ----------------------------------------------------------
def diffusers_unet(module):
    """diffusers' ``UNet2DModel`` shaped like ``module.net`` (the project's U-Net of the DDPM ``module``), called
    as the project's denoisers are: ``net(x_t, t) -> epsilon``."""
    import torch
    from diffusers import UNet2DModel

    from gen_lightning.diffusion.nets import group_norm

    hp = module.hparams
    widths = tuple(hp.hidden_dim * m for m in hp.channel_mult)
    sides = [hp.image_size // 2**i for i in range(len(widths))]
    attention = [side in hp.attention_resolutions for side in sides]
    unet = UNet2DModel(
        sample_size=hp.image_size,
        in_channels=hp.channels,
        out_channels=hp.channels,
        block_out_channels=widths,
        layers_per_block=hp.num_res_blocks,
        down_block_types=tuple("AttnDownBlock2D" if a else "DownBlock2D" for a in attention),
        up_block_types=tuple("AttnUpBlock2D" if a else "UpBlock2D" for a in reversed(attention)),
        norm_num_groups=group_norm(widths[0]).num_groups,
        attention_head_dim=max(widths),  # one head, as the project's num_heads=1
        resnet_time_scale_shift="scale_shift",  # the project's ResBlock: (1 + scale) * norm(h) + shift
        dropout=hp.dropout,
    )

    class Denoiser(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.unet = unet

        def forward(self, x, t, labels=None):
            return self.unet(x, t).sample

    return Denoiser()


# ---- one worker: train for the budget, then sample and score ---------------------------------------------------
def worker(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(1)
    from gen_lightning.config import compose
    from gen_lightning.diffusion.module import DDPM
    from gen_lightning.metrics.evaluate import evaluate_module
    from gen_lightning.nn.ema import EMA
    from gen_lightning.run.build import build_datamodule

    cfg = compose(["model=ddpm", f"seed={args.seed}", *args.data_override])
    dm = build_datamodule(cfg.data)
    torch.manual_seed(args.seed)
    kwargs = {k: v for k, v in cfg.model.items() if k != "_target_"}
    module = DDPM(**{**kwargs, **dm.model_kwargs(), **SAMPLER})
    if args.worker == "diffusers":
        module.net = diffusers_unet(module)
        module.ema = EMA(module.net, decay=module.hparams.ema_decay)
    params = sum(p.numel() for p in module.net.parameters())
    optimizer = module.configure_optimizers()
    opt, sched = optimizer["optimizer"], optimizer["lr_scheduler"]["scheduler"]
    budget, steps, losses = args.minutes[0] * 60, 0, []
    module.train()
    start, cpu_start = time.perf_counter(), time.process_time()
    while time.perf_counter() - start < budget:
        for images, _ in dm.train_dataloader():
            x0 = module.encode(images)
            t = torch.randint(0, module.process.num_timesteps, (x0.shape[0],))
            loss = module.process.training_losses(module.net, x0, t, torch.randn_like(x0), {}).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            module.update_ema()
            steps, losses = steps + 1, [*losses[-99:], loss.item()]
            if time.perf_counter() - start >= budget:
                break
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    module.eval()
    with torch.no_grad():
        module.sample(2, torch.Generator().manual_seed(1))  # first call: kernel selection
        t0 = time.perf_counter()
        module.sample(args.time_batch, torch.Generator().manual_seed(0))
        per_image = (time.perf_counter() - t0) / args.time_batch
    metrics_cfg = {**cfg.metrics, "num_samples": args.num_samples}
    scores = evaluate_module(module, dm, metrics_cfg)["metrics"]
    result = {
        "net": args.worker, "params": params, "steps": steps, "wall_s": wall, "cpu_s": cpu,
        "ms_per_step": 1e3 * wall / steps, "cpu_ms_per_step": 1e3 * cpu / steps,
        "train_loss_last100": sum(losses) / len(losses), "s_per_image": per_image,
        "fid_clf": scores["val/fid_clf"], "kid_clf": scores["val/kid_clf"], "is_clf": scores["val/is_clf"],
        "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }  # fmt: skip
    args.out.write_text(json.dumps(result))


# ---- the driver --------------------------------------------------------------------------------------------------
def side_by_side(args: argparse.Namespace, data: str, minutes: float, tmp: Path) -> dict[str, dict]:
    if data == "digits":
        overrides = ["data=digits"]
    else:
        # The IDX files as distributed, read by the package (data/images/idx.py): the same batches as the parquet
        # copy this benchmark used to write (checked: train and val batches equal), without the copy.
        idx = [f"data.path={args.mnist}", "data.source=local", "data.train_split=test"]
        overrides = ["data=parquet", *idx, "metrics=classifier"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    running = {}
    for net in ("project", "diffusers"):
        out = tmp / f"{data}-{net}.json"
        cmd = [sys.executable, __file__, "--worker", net, "--minutes", str(minutes), "--out", str(out),
               "--num-samples", str(args.num_samples), "--time-batch", str(args.time_batch), "--seed", str(args.seed),
               "--data-override", *overrides]  # fmt: skip
        running[net] = (subprocess.Popen(cmd, env=env, cwd=ROOT), out)
    results = {}
    for net, (proc, out) in running.items():
        if proc.wait() != 0:
            raise SystemExit(f"the {net} worker on {data} failed (exit status {proc.returncode})")
        results[net] = json.loads(out.read_text())
    return results


def main() -> None:
    args = parse_args()
    if args.worker:
        return worker(args)
    print(f"host: {host()}; torch threads: 1 per process; load average at start {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        for data, minutes in zip(args.data, args.minutes):
            rows = side_by_side(args, data, minutes, Path(tmp))
            p, d = rows["project"], rows["diffusers"]
            print(f"\n{data}: {minutes:g} min of training each, started together; load average now "
                  f"{os.getloadavg()[0]:.1f}")  # fmt: skip
            print(f"  {'net':<10} {'params':>9} {'steps':>6} {'ms/step':>8} {'CPU ms':>7} {'loss':>7} {'FID_clf':>8} "
                  f"{'KID_clf':>8} {'s/image':>8}")  # fmt: skip
            for r in (p, d):
                print(f"  {r['net']:<10} {r['params']:>9,} {r['steps']:>6} {r['ms_per_step']:>8.1f} "
                      f"{r['cpu_ms_per_step']:>7.1f} {r['train_loss_last100']:>7.4f} {r['fid_clf']:>8.2f} "
                      f"{r['kid_clf']:>8.1f} {r['s_per_image']:>8.4f}")  # fmt: skip
            ratios = [p[k] / d[k] for k in ("ms_per_step", "cpu_ms_per_step", "s_per_image")]
            print("  project / diffusers: wall per step {:.3f}, CPU per step {:.3f}, sampling {:.3f}".format(*ratios))


def host() -> str:
    from gen_lightning.nn.host import cpu_name

    return f"{cpu_name()}, {os.cpu_count()} cores"


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
