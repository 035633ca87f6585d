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


# ---- trainer=fsdp (gen_lightning/nn/fsdp.py): torch's FSDP2 on two CPU processes (gloo) ------------------------
CPU_FSDP = ["trainer=fsdp", "trainer.accelerator=cpu", "trainer.devices=2", "trainer.max_epochs=-1"]


@pytest.mark.slow  # four commands of two processes and one sample: 23 min at load 12 on the shared 2-core machine
def test_fsdp_trains_like_ddp_and_its_sharded_checkpoints_resume_exactly_and_load(tmp_path):
    """GPT (its blocks sharded one by one) under trainer=fsdp: the weights of DDP up to the order of the gradient
    reduction; a run stopped at step 4 and resumed to 8 from its sharded last.ckpt equals the uninterrupted one bit
    for bit; the sharded folder loads whole in one process (load_module, ``gen-lightning sample``)."""
    from gen_lightning.run.checkpoint import load_module

    def fit(name: str, *extra: str) -> None:
        proc = gen_lightning("fit", *tiny_overrides(tmp_path / name, *extra, model="gpt"), timeout=900)
        assert proc.returncode == 0, proc.stderr[-3000:]

    fit("full", *CPU_FSDP, "trainer.max_steps=8")
    fit("cut", *CPU_FSDP, "trainer.max_steps=4")
    fit("cut", "resume=true", "trainer.max_steps=8")
    fit("ddp", *CPU_DDP, "trainer.devices=2", "trainer.max_steps=8")
    last = {name: tmp_path / name / "checkpoints" / "last.ckpt" for name in ("full", "cut", "ddp")}
    assert last["full"].is_dir() and (last["full"] / "meta.pt").is_file()  # sharded: a folder of shards
    full, cut, ddp = (load_module(last[name]).state_dict() for name in ("full", "cut", "ddp"))
    assert full.keys() == cut.keys() == ddp.keys()
    assert all(torch.equal(full[k], cut[k]) for k in full)  # exact resume
    for k in full:
        torch.testing.assert_close(full[k], ddp[k], rtol=1e-5, atol=1e-6)
    assert json.loads((tmp_path / "cut" / "metrics.json").read_text())["global_step"] == 8
    out = tmp_path / "samples.txt"
    proc = gen_lightning("sample", f"ckpt={last['full']}", "n=2", "length=20", f"out={out}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert out.read_text().strip()


@pytest.mark.parametrize(("model", "blocks"), [
    ("gpt", {"Block"}), ("bert", {"Block"}), ("transformer_seq2seq", {"EncoderLayer", "DecoderLayer"}),
    ("ddpm", {"ResBlock", "Attention"}),
])  # fmt: skip
def test_fsdp_shards_the_repeated_blocks_of_each_family(tmp_path, model, blocks):
    """The auto-wrap policy: the layers of GPT, BERT and the seq2seq Transformer and the U-Net's residual and
    attention blocks are each a unit of their own (gathered one at a time), found without a list per family."""
    from hydra.utils import instantiate

    from gen_lightning.config import compose
    from gen_lightning.nn.fsdp import repeated_blocks
    from gen_lightning.run.build import build_datamodule

    cfg = compose(tiny_overrides(tmp_path, model=model))
    module = instantiate(cfg.model, **build_datamodule(cfg.data).model_kwargs(), _convert_="all")
    found = repeated_blocks(module)
    assert blocks <= {type(b).__name__ for b in found}
    for i, block in enumerate(found):  # inner blocks before the blocks that hold them
        assert not any(inner is later for later in found[i + 1 :] for inner in block.modules() if inner is not block)


def test_fsdp_shards_the_module_that_is_called_under_a_wrapper():
    """The EMA wrapper holds no parameter of its own; its averaged copy is called directly (``sampling_net()``), so
    the copy is the unit: a sharded unit gathers its parameters only when it is the one called."""
    from gen_lightning.diffusion.module import DDPM
    from gen_lightning.nn.fsdp import called_module

    module = DDPM(channels=1, image_size=8, attention_resolutions=[])
    assert called_module("ema", module.ema) == ("ema.shadow", module.ema.shadow)
    assert called_module("net", module.net) == ("net", module.net)
