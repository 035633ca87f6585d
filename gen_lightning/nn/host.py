"""The speed options this host runs fast: ``trainer.precision: auto`` resolved when a run is prepared.

bf16 mixed precision pays only where the hardware multiplies bf16 natively: a CPU with AVX-512 BF16 or AMX (or an
Arm core with the BF16 extension), a CUDA GPU of compute capability 8.0 or newer. Elsewhere bf16 is emulated: on an
AMD EPYC with AVX2 only, a 768x128 @ 128x512 product takes 1.7 ms in float32 and 115 ms in bf16, and the nanoGPT
experiment in bf16-mixed ran ~10x slower than nanoGPT's own float32 loop (issue 25). So:

- ``auto`` becomes ``bf16-mixed`` on a CPU or GPU that multiplies bf16 natively, ``16-mixed`` (float16 with loss
  scaling) on an older CUDA GPU, ``32-true`` anywhere else; the choice replaces ``auto`` in the run's config (so
  ``config.yaml`` says what ran, and a resume on another host keeps it) and is logged with its reason;
- an explicit bf16 setting on a CPU that emulates bf16 is honoured, with one warning naming the measured cost.

The other speed options need no host rule: the fused AdamW (``model.fused_optimizer``) is faster on every CPU
measured (3.4 ms against 14.4 per step of 50 128x128 tensors on the AVX2 EPYC), attention runs in float32 on the CPU
under autocast (``transformer/nets.py``), and ``model.compile`` stays a choice (it pays on GPUs and long runs).
"""

from __future__ import annotations

import functools
import platform
import time
import warnings
from pathlib import Path

import torch
from omegaconf import DictConfig, open_dict

AUTO = "auto"
# Native bf16 instructions, by their /proc/cpuinfo names (x86: AVX-512 BF16, AMX; Arm: the BF16 extension).
BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16"})


class SlowPrecisionWarning(UserWarning):
    """A precision asked for explicitly that this host runs many times slower than float32."""


@functools.cache
def cpu_flags() -> frozenset[str] | None:
    """The CPU's feature flags from /proc/cpuinfo (x86 ``flags``, Arm ``Features``); None where there is none."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return None


@functools.cache
def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "this CPU"


def cpu_bf16_is_fast() -> bool:
    """Whether this CPU multiplies bf16 natively. oneDNN's probe also answers True on AVX-512 cores without the BF16
    instructions (where it emulates them), so the CPU flags must name them too where they can be read."""
    flags = cpu_flags()
    return onednn_bf16_supported() and (flags is None or bool(flags & BF16_FLAGS))


def onednn_bf16_supported() -> bool:
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a build without oneDNN
        return False


def device_type(accelerator: str | None) -> str:
    """The device a ``trainer.accelerator`` value trains on here: ``cpu``, ``cuda``, ``mps`` (or another name)."""
    accelerator = str(accelerator or AUTO)
    if accelerator in ("gpu", "cuda"):
        return "cuda"
    if accelerator == AUTO:  # Lightning's order: CUDA, then Apple's GPU, then the CPU
        if torch.cuda.is_available():
            return "cuda"
        return "mps" if torch.backends.mps.is_available() else "cpu"
    return accelerator


def auto_precision(device: str, float16: bool = True) -> tuple[str, str]:
    """The precision ``auto`` means on ``device``, and why; ``float16=False``: a strategy that takes no 16-mixed
    (Lightning's ``ModelParallelStrategy``, under ``trainer=fsdp``)."""
    if device == "cpu":
        if cpu_bf16_is_fast():
            return "bf16-mixed", f"{cpu_name()} multiplies bf16 natively (AVX-512 BF16 / AMX)"
        return "32-true", f"{cpu_name()} has no native bf16 (no AVX-512 BF16 or AMX): bf16 would be emulated, slower"
    if device == "cuda":
        name = torch.cuda.get_device_name()
        if torch.cuda.is_bf16_supported(including_emulation=False):
            return "bf16-mixed", f"{name} multiplies bf16 natively"
        if not float16:
            return "32-true", f"{name} has no native bf16, and trainer=fsdp takes no 16-mixed"
        return "16-mixed", f"{name} has no native bf16: float16 with loss scaling"
    return "32-true", f"no precision rule for {device}: float32"


def bf16_slowdown(size: int = 128, repeats: int = 5) -> float:
    """How many times slower a (size x size) bf16 matrix product is than the float32 one on this CPU (measured)."""
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(size, size, generator=g), torch.randn(size, size, generator=g)
    seconds = {}
    for dtype in (torch.float32, torch.bfloat16):
        x, y = a.to(dtype), b.to(dtype)
        x @ y  # first call: kernel selection
        start = time.perf_counter()
        for _ in range(repeats):
            x @ y
        seconds[dtype] = time.perf_counter() - start
    return seconds[torch.bfloat16] / max(seconds[torch.float32], 1e-9)


def choose_speed_options(cfg: DictConfig) -> list[str]:
    """Resolve ``trainer.precision: auto`` in ``cfg`` (in place) and warn about an explicit bf16 this CPU emulates.
    Returns the lines for the run's log."""
    trainer = cfg.get("trainer")
    if trainer is None or "precision" not in trainer:
        return []
    precision, device = str(trainer.precision), device_type(trainer.get("accelerator"))
    if precision == AUTO:
        strategy = trainer.get("strategy")
        sharded = isinstance(strategy, DictConfig) and str(strategy.get("_target_", "")).endswith("fsdp.FSDP")
        chosen, reason = auto_precision(device, float16=not sharded)
        with open_dict(trainer):
            trainer.precision = chosen
        return [f"trainer.precision=auto -> {chosen}: {reason}"]
    if precision.startswith("bf16") and device == "cpu" and not cpu_bf16_is_fast():
        from lightning.pytorch.utilities import rank_zero_only

        if rank_zero_only.rank == 0:  # one warning per run, not one per DDP process
            warnings.warn(
                f"trainer.precision={precision} on {cpu_name()}, which has no native bf16 (no AVX-512 BF16 or AMX): "
                f"a bf16 matrix product takes {bf16_slowdown():.0f}x the float32 one here, so this run may train "
                "several times slower than in float32; trainer.precision=auto chooses 32-true on this CPU",
                SlowPrecisionWarning,
                stacklevel=2,
            )
        return [f"trainer.precision={precision} as given ({cpu_name()} emulates bf16: slower than 32-true)"]
    return [f"trainer.precision={precision} as given"]
