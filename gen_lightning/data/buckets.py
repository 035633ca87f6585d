"""Batches of sentences of similar length, exactly resumable mid-epoch and sharded across DDP processes.

Training (torchtext's ``BucketIterator`` "pool" scheme): each epoch shuffles the examples with a generator seeded
by ``(seed, epoch)`` alone, cuts the permutation into pools of ``pool`` batches, sorts each pool by length and cuts
it into batches, then shuffles the order of the batches. Padding stays small while every epoch differs. Under DDP
every process computes the same batch list and takes every ``world``-th batch, after dropping the last
``len % world`` batches of the epoch (different ones each epoch), so processes step equally often and no example
is seen twice in an epoch. Evaluation batches are sorted by length once, and sharded without dropping or padding
(every example is counted exactly once over all processes).

``skip(n)`` starts the next iteration ``n`` batches into this process's shard: ``ExactResume``
(gen_lightning/callbacks/resume.py) calls it on a run resumed mid-epoch; ``set_epoch`` is called by Lightning.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import Sampler

from gen_lightning.data.loaders import _dist_info


class BucketBatchSampler(Sampler[list[int]]):
    """Lists of example indices of similar ``lengths``; a pure function of ``(seed, epoch)`` and the rank."""

    def __init__(
        self, lengths: Sequence[int], batch_size: int, *, shuffle: bool, seed: int = 0, pool: int = 50
    ) -> None:
        if len(lengths) == 0:
            raise ValueError("cannot batch an empty dataset")
        if batch_size < 1 or pool < 1:
            raise ValueError(f"batch_size and pool must be positive, got {batch_size} and {pool}")
        self.lengths = torch.as_tensor(lengths, dtype=torch.long)
        self.batch_size, self.shuffle, self.seed, self.pool = batch_size, shuffle, seed, pool
        self.epoch = 0
        self.start = 0  # batches of this epoch's shard to skip, set by ``skip`` on resume

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def skip(self, num_batches: int) -> None:
        """Start the next iteration ``num_batches`` into the shard (only that one iteration)."""
        self.start = num_batches

    def _by_length(self, indices: torch.Tensor) -> list[torch.Tensor]:
        order = torch.sort(self.lengths[indices], stable=True).indices
        return list(indices[order].split(self.batch_size))

    def _batches(self) -> list[list[int]]:
        if not self.shuffle:
            return [b.tolist() for b in self._by_length(torch.arange(len(self.lengths)))]
        g = torch.Generator().manual_seed(self.seed + 1_000_003 * self.epoch)
        perm = torch.randperm(len(self.lengths), generator=g)
        batches = [b for chunk in perm.split(self.pool * self.batch_size) for b in self._by_length(chunk)]
        order = torch.randperm(len(batches), generator=g).tolist()
        return [batches[i].tolist() for i in order]

    def _shard(self) -> list[list[int]]:
        rank, world = _dist_info()
        batches = self._batches()
        if self.shuffle and world > 1:
            batches = batches[: len(batches) - len(batches) % world]
            if not batches:
                raise ValueError(f"{len(self.lengths)} training examples make fewer batches than {world} processes")
        return batches[rank::world]

    def __iter__(self) -> Iterator[list[int]]:
        # A generator: nothing runs until the first batch is drawn. Lightning creates the epoch's iterator before
        # ``on_train_start``, where ``ExactResume`` calls ``skip`` on a resumed run.
        shard = self._shard()
        start, self.start = self.start, 0
        yield from shard[start:]

    def __len__(self) -> int:
        rank, world = _dist_info()
        if not self.shuffle:
            total = len(self._batches())
            return len(range(rank, total, world)) - self.start
        # Every pool but the last makes exactly `pool` batches; the last pool's batches follow from its size.
        n, full = len(self.lengths), self.pool * self.batch_size
        total = (n // full) * self.pool + -(-(n % full) // self.batch_size)
        if world > 1:
            total -= total % world
        return total // world - self.start
