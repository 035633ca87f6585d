"""How many intra-op threads torch uses for a run (``threads: auto | N`` in conf/config.yaml).

Small models gain nothing from more threads and lose much when the machine is busy: the OpenMP threads of one
operation wait on each other, and a core taken by another process stalls them all (issue 25: tiny models with 2
threads ran 15-25x slower than with 1 beside two busy processes). ``auto`` gives one thread to a model whose work
per step (trainable parameters x samples per step, a sample of a sequence model counting its ``block_size``
tokens) is below ``SMALL_WORK``, and this process's share of the CPUs to a larger one.

The share is the CPUs this process may run on (``os.sched_getaffinity``), or fewer where a parallel study gave the
run a share of them (``CPU_SHARE_ENV``, set by ``gen_lightning/studies/jobs.py``). An explicit choice is kept:
``threads: N`` in the config, else ``OMP_NUM_THREADS`` in the environment, else a thread count set with
``torch.set_num_threads`` in this process before the run (other than the one this module set last). The choice
and its reason are logged and written in ``metrics.json`` (``threads``).

Measured on a 2-core AMD EPYC shared with other jobs (``benchmarks/study_parallel.py threads``, milliseconds per
training step, 1 thread against 2; load average in brackets): the quick study's VAE (work 9.7e6) 31 against 556
[3.5], DCGAN on the digits (2.0e7) 203 against 3,188 [7.0], the default GPT on the embedded text (809k parameters
x 32 x 64 tokens = 1.7e9) 1,073 against 2,721 [11] and 582 against 2,137 [7]. Every model measured is faster with
one thread on a machine that is not idle, so ``SMALL_WORK`` lies above them all; what a larger model gains from
more threads on an idle many-core machine could not be measured here.
"""

from __future__ import annotations

import os

import torch

SMALL_WORK = 1e10  # parameters x samples per step below which one thread is fastest (measured, see above)
CPU_SHARE_ENV = "GEN_LIGHTNING_CPU_SHARE"  # the number of CPUs a parallel study gives each of its runs
_AT_START = torch.get_num_threads()  # torch's count when this process started (before any run set one)
_last_set: int | None = None  # the count this module set last (a later different count was set by the user)


def work_per_step(params: int, data_cfg) -> int:
    """Trainable parameters x samples per step (a sequence sample counts its tokens): what one step computes."""
    batch = int(data_cfg.get("batch_size") or 1)
    tokens = int(data_cfg.get("block_size") or 1)
    return params * batch * tokens


def cpu_share(env=os.environ) -> int:
    """The CPUs this process may use: its affinity, or the share a parallel study gave it."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    share = env.get(CPU_SHARE_ENV)
    return max(1, min(cpus, int(share))) if share else cpus


def check(setting) -> int | str:
    """``auto`` or a positive integer; anything else is one clear error."""
    if setting == "auto" or (isinstance(setting, int) and not isinstance(setting, bool) and setting >= 1):
        return setting
    raise ValueError(f"threads={setting!r}: threads must be auto (chosen from the model's size) or a positive integer")


def choose(setting, params: int, data_cfg, env=os.environ, processes: int = 1) -> tuple[int, str]:
    """``(threads, why)`` for a model of ``params`` trainable parameters trained on ``data_cfg`` by ``processes``
    processes on this machine (DDP on the CPU)."""
    if check(setting) != "auto":
        return setting, f"threads={setting} in the config"
    if env.get("OMP_NUM_THREADS"):
        return torch.get_num_threads(), f"OMP_NUM_THREADS={env['OMP_NUM_THREADS']} set in the environment"
    current = torch.get_num_threads()
    if current not in (_AT_START, _last_set):
        return current, "torch.set_num_threads in this process"
    work = work_per_step(params, data_cfg)
    if work < SMALL_WORK:
        return 1, f"auto: {params / 1e6:.2g}M parameters x samples per step = {work:.2g} < {SMALL_WORK:.0e}"
    share = max(1, cpu_share(env) // processes)
    return share, f"auto: {work:.2g} parameters x samples per step >= {SMALL_WORK:.0e}: this process's {share} CPUs"


def cpu_processes(trainer_cfg) -> int:
    """The training processes of one node that share its CPUs (``trainer.devices`` of a CPU DDP run)."""
    devices = trainer_cfg.get("devices", 1)
    on_cpu = str(trainer_cfg.get("accelerator", "auto")) == "cpu"
    return devices if on_cpu and isinstance(devices, int) and devices > 1 else 1


def apply(cfg, params: int) -> dict:
    """Set torch's intra-op threads as ``cfg.threads`` chooses (``check``ed here); ``{"threads": n, "why": ...}``
    for the run's log and summary."""
    global _last_set
    threads, why = choose(cfg.get("threads", "auto"), params, cfg.data, processes=cpu_processes(cfg.trainer))
    if threads != torch.get_num_threads():
        torch.set_num_threads(threads)
    _last_set = threads
    return {"threads": threads, "why": why}
