"""Launching as a cluster does, on one host: two "nodes" started by torchrun on the loopback address give the weights
of two processes on one node (gloo). Multi-node launch itself is torch's and Lightning's (TorchElasticEnvironment
reads torchrun's variables); what is tested is that the project's run set-up (preflight, run directory, lock,
rank-sharded samplers, checkpoints) behaves under it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest
import torch
from conftest import tiny_overrides
from helpers import module_weights
from test_cli import gen_lightning

CPU_DDP = ["trainer=ddp", "trainer.accelerator=cpu", "trainer.max_steps=6", "trainer.max_epochs=-1"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun_nodes(nodes: int, *args: str, timeout: int = 600) -> list[subprocess.CompletedProcess]:
    """``gen-lightning fit ARGS`` on ``nodes`` one-process "nodes" of torchrun, all on 127.0.0.1."""
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    launched = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "torch.distributed.run",
                f"--nnodes={nodes}",
                "--nproc_per_node=1",
                f"--node_rank={rank}",
                "--master_addr=127.0.0.1",
                f"--master_port={port}",
                "-m",
                "gen_lightning.cli",
                "fit",
                *args,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )  # fmt: skip
        for rank in range(nodes)
    ]
    done = []
    for proc in launched:
        out, err = proc.communicate(timeout=timeout)
        done.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    return done


@pytest.mark.slow  # four fresh interpreters importing torch and Lightning: ~1 min on the shared 2-core machine
def test_two_nodes_on_the_loopback_equal_two_processes_on_one_node(tmp_path):
    one_node = tmp_path / "one_node"
    proc = gen_lightning("fit", *tiny_overrides(one_node, *CPU_DDP, "trainer.devices=2"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    two_nodes = tmp_path / "two_nodes"
    nodes = torchrun_nodes(2, *tiny_overrides(two_nodes, *CPU_DDP, "trainer.num_nodes=2", "trainer.devices=1"))
    for rank, node in enumerate(nodes):
        assert node.returncode == 0, f"node {rank}: {node.stderr[-3000:]}"
    assert sum(node.stdout.count("run finished") for node in nodes) == 1  # one message, from global rank 0
    for run_dir in (one_node, two_nodes):
        assert json.loads((run_dir / "metrics.json").read_text())["global_step"] == 6
    # Each process trains on its own shard: a node that read the other's batches (or all of them) changes the weights.
    a, b = (module_weights(d / "checkpoints" / "last.ckpt") for d in (one_node, two_nodes))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
