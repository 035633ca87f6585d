"""``trainer=fsdp``: fully sharded data parallel training (Zhao et al. 2023, "PyTorch FSDP") of any family.

Built on Lightning's ``ModelParallelStrategy`` (torch's FSDP2, ``fully_shard``: parameters as DTensors sharded over
the processes, gathered one block at a time for its forward and backward). Lightning's ``FSDPStrategy`` wraps
torch's FSDP1, which refuses CPU processes in torch 2.14 ("FSDP needs a non-CPU accelerator device"); FSDP2 runs on
CPUs with gloo too, so the same strategy is tested on two CPU processes (tests/test_distributed.py).

``ModelParallelStrategy`` asks each LightningModule for a ``configure_model`` hook that shards it; here the strategy
does it for every family alike (the auto-wrap policy): each element of an ``nn.ModuleList`` (the repeated blocks:
GPT's, BERT's and the seq2seq Transformer's layers, the U-Net's residual and attention blocks) is sharded as one
unit, inner blocks first, then every child of the LightningModule that holds parameters (the network; an EMA's
averaged copy, which is called directly).

Checkpoints are sharded (``sharded_checkpoints=true``, the default): ``last.ckpt`` is a folder of
torch.distributed.checkpoint shards (weights and optimizer state) with ``meta.pt`` (loop progress, callback states,
hyperparameters). It is written into a temporary folder beside the target and swapped in only when every process
has finished, so a process killed while saving leaves the previous ``last.ckpt`` whole. ``run/checkpoint.read``
reads such a folder as one full checkpoint (``sample``, ``evaluate``, the checks before a resume); a resume loads
each process's shards.
"""

from __future__ import annotations

import os
import shutil
import warnings
from pathlib import Path

import torch
from lightning.fabric.utilities.init import _materialize_distributed_module
from lightning.fabric.utilities.optimizer import _optimizers_to_device
from lightning.pytorch.strategies import ModelParallelStrategy
from lightning.pytorch.trainer.states import TrainerFn
from torch import nn


def repeated_blocks(module: nn.Module) -> list[nn.Module]:
    """The elements of every ``nn.ModuleList`` under ``module`` that hold parameters, each after the blocks it holds
    (``fully_shard`` takes the inner units first)."""
    blocks, seen = [], set()
    for sub in reversed(list(module.modules())):  # reversed pre-order: every module after its descendants
        if isinstance(sub, nn.ModuleList):
            for block in sub:
                if id(block) not in seen and holds_parameters(block):
                    blocks.append(block)
                    seen.add(id(block))
    return blocks


def shard(module: nn.Module, mesh) -> list[str]:
    """``fully_shard`` the repeated blocks of ``module``, then its children with parameters; returns their names."""
    from torch.distributed.fsdp import fully_shard

    names = {id(sub): name for name, sub in module.named_modules()}
    sharded = []
    for block in repeated_blocks(module):
        fully_shard(block, mesh=mesh)
        sharded.append(names[id(block)])
    for name, child in module.named_children():
        if holds_parameters(child):
            name, child = called_module(name, child)
            fully_shard(child, mesh=mesh)
            sharded.append(name)
    return sharded


def holds_parameters(module: nn.Module) -> bool:
    return any(True for _ in module.parameters())


def called_module(name: str, module: nn.Module) -> tuple[str, nn.Module]:
    """The module under a wrapper that holds no parameters of its own and one child with all of them (``nn/ema.py``'s
    EMA and its ``shadow``): the wrapped one is what gets called (``sampling_net()``), and only a sharded module
    that is called gathers its parameters."""
    while not any(True for _ in module.parameters(recurse=False)):
        holding = [(n, c) for n, c in module.named_children() if holds_parameters(c)]
        if len(holding) != 1:
            break
        child_name, module = holding[0]
        name = f"{name}.{child_name}"
    return name, module


class FSDP(ModelParallelStrategy):
    """Every process holds a 1/N shard of every parameter and its optimizer state (see the file docstring)."""

    shards_parameters = True  # every process must take part in each forward pass (callbacks/samples.py)

    def __init__(self, sharded_checkpoints: bool = True, **kwargs) -> None:
        super().__init__(save_distributed_checkpoint=sharded_checkpoints, **kwargs)
        self.sharded_modules: list[str] = []

    def setup_environment(self) -> None:
        # Pure data parallelism: one mesh dimension over all processes of all nodes (no tensor parallelism).
        self._data_parallel_size, self._tensor_parallel_size = self.num_nodes * self.num_processes, 1
        super().setup_environment()

    def setup(self, trainer) -> None:
        """``ModelParallelStrategy.setup`` with the sharding done here instead of a ``configure_model`` hook."""
        assert self.model is not None and self.accelerator is not None
        self.accelerator.setup(trainer)
        if not self.sharded_modules:
            self.sharded_modules = shard(self.lightning_module, self.device_mesh["data_parallel"])
        _materialize_distributed_module(self.model, self.root_device)
        self.model = self.precision_plugin.convert_module(self.model)
        self.model_to_device()
        self.barrier()
        if trainer.state.fn == TrainerFn.FITTING:
            self.setup_optimizers(trainer)
        self.setup_precision_plugin()
        if trainer.state.fn == TrainerFn.FITTING:
            _optimizers_to_device(self.optimizers, self.root_device)

    def save_checkpoint(self, checkpoint: dict, filepath, storage_options=None) -> None:
        """Shards into a temporary folder beside ``filepath``, swapped in once every process has written."""
        if not self._save_distributed_checkpoint:
            return super().save_checkpoint(checkpoint, filepath, storage_options)
        path = Path(self.broadcast(str(filepath)))
        tmp = path.with_name(f".{path.name}.tmp-sharded")
        if self.global_rank == 0 and tmp.exists():
            shutil.rmtree(tmp)
        self.barrier("fsdp-checkpoint-tmp")
        super().save_checkpoint(checkpoint, tmp, storage_options)
        self.barrier("fsdp-checkpoint-written")
        if self.global_rank == 0:
            replace_folder(tmp, path)
        self.barrier("fsdp-checkpoint-replaced")


def replace_folder(new: Path, target: Path) -> None:
    """Put the folder ``new`` at ``target``: the old one (or a file) moved aside first, removed after."""
    old = target.with_name(f".{target.name}.old")
    if old.exists():
        shutil.rmtree(old) if old.is_dir() else old.unlink()
    if target.exists():
        os.replace(target, old)
    os.replace(new, target)
    if old.exists():
        shutil.rmtree(old) if old.is_dir() else old.unlink()


def read_sharded(path: Path) -> dict:
    """A sharded checkpoint folder as one full checkpoint, in one process: ``meta.pt`` with the gathered
    ``state_dict`` (weights only: the optimizer shards are left to a resume, which loads them per process)."""
    from torch.distributed.checkpoint import FileSystemReader
    from torch.distributed.checkpoint.state_dict_loader import _load_state_dict_from_keys

    ckpt = torch.load(path / "meta.pt", map_location="cpu", weights_only=True)
    with warnings.catch_warnings():  # "assuming the intent is to load in a single process": it is
        warnings.filterwarnings("ignore", message=".*single process")
        loaded = _load_state_dict_from_keys(keys={"state_dict"}, storage_reader=FileSystemReader(path))
    ckpt["state_dict"] = loaded["state_dict"]
    return ckpt
