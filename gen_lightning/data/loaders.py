"""Data loaders that make resumed runs exact and DDP evaluation complete.

Lightning checkpoints keep no sampler position, and a plain ``RandomSampler`` draws its seed from the global
RNG. ``EpochSampler`` instead derives each epoch's order from ``(seed, epoch)`` alone and can start an epoch
part-way through, so a run resumed mid-epoch sees exactly the batches the uninterrupted run would have seen.
``ExactResume`` (gen_lightning/callbacks/resume.py) records the position and calls ``skip``.

Under DDP every process takes a strided shard of the permutation. Training shards are padded to equal length
(every process must step the same number of times); evaluation shards are not, so each sample is counted once.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from gen_lightning.nn.distributed import dist_info as _dist_info


class EpochSampler(Sampler[int]):
    """Shuffled (or sequential) indices of one process's shard, a pure function of ``(seed, epoch)``."""

    def __init__(self, num_items: int, *, shuffle: bool, seed: int = 0, pad: bool = True) -> None:
        if num_items <= 0:
            raise ValueError("cannot sample from an empty dataset")
        self.num_items = num_items
        self.shuffle = shuffle
        self.seed = seed
        self.pad = pad
        self.epoch = 0
        self.start = 0  # items of this epoch's shard to skip, set by ``skip`` on resume

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def skip(self, num_items: int) -> None:
        """Start the next iteration ``num_items`` into the shard (only that one iteration)."""
        self.start = num_items

    def _shard(self) -> list[int]:
        rank, world = _dist_info()
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed + 1_000_003 * self.epoch)
            order = torch.randperm(self.num_items, generator=g).tolist()
        else:
            order = list(range(self.num_items))
        if self.pad and world > 1:
            total = math.ceil(self.num_items / world) * world
            order += order[: total - len(order)]
        return order[rank::world]

    def __iter__(self) -> Iterator[int]:
        shard = self._shard()
        start, self.start = self.start, 0
        return iter(shard[start:])

    def __len__(self) -> int:
        # Computed, not materialised: the shard of an epoch can hold millions of text windows.
        rank, world = _dist_info()
        if self.pad and world > 1:
            size = math.ceil(self.num_items / world)
        else:
            size = len(range(rank, self.num_items, world))
        return size - self.start


def train_loader(dataset: Dataset, batch_size: int, *, seed: int, num_workers: int = 0, collate_fn=None) -> DataLoader:
    """Shuffled batches; the last incomplete batch is dropped so every step sees ``batch_size`` items."""
    sampler = EpochSampler(len(dataset), shuffle=True, seed=seed, pad=True)
    drop_last = len(sampler) >= batch_size
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        drop_last=drop_last,
        collate_fn=collate_fn,
        num_workers=num_workers,
        persistent_workers=num_workers > 0,
        # A private generator: creating an iterator must not draw from the global RNG (exact resume).
        generator=torch.Generator().manual_seed(seed),
    )


def eval_loader(dataset: Dataset, batch_size: int, *, num_workers: int = 0, collate_fn=None) -> DataLoader:
    """Ordered batches; under DDP each item is seen by exactly one process (no padding duplicates)."""
    sampler = EpochSampler(len(dataset), shuffle=False, pad=False)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        collate_fn=collate_fn,
        num_workers=num_workers,
        persistent_workers=num_workers > 0,
        generator=torch.Generator().manual_seed(0),
    )


class BatchShardSampler(Sampler[list[int]]):
    """Batches ``[b * B, (b + 1) * B)`` of the first ``num_items`` items; process ``r`` of ``W`` takes batches
    ``r, r + W, ...``. Which items share a batch does not depend on the number of processes, so per-batch
    seeds (stochastic decoding) give the same outputs on one process or many; nothing is padded or repeated."""

    def __init__(self, num_items: int, batch_size: int) -> None:
        self.num_items, self.batch_size = num_items, batch_size

    def _batches(self) -> range:
        rank, world = _dist_info()
        return range(rank, math.ceil(self.num_items / self.batch_size), world)

    def __iter__(self) -> Iterator[list[int]]:
        for b in self._batches():
            yield list(range(b * self.batch_size, min((b + 1) * self.batch_size, self.num_items)))

    def __len__(self) -> int:
        return len(self._batches())


class _Indexed(Dataset):
    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int):
        return i, self.dataset[i]


def evaluation_loader(dataset: Dataset, num_items: int | None, batch_size: int, collate_fn) -> DataLoader:
    """The contract's ``evaluation_loader`` for conditional and prediction data (docs/CONTRACT.md): the first
    ``num_items`` examples (all when None), batch-sharded across processes (``BatchShardSampler``).

    ``dataset[i]`` is one raw example; ``collate_fn(examples) -> dict`` builds a batch of them (``"source"``,
    ``"target"``, ...). The loader adds ``"index"`` (int64 positions in the split) and ``"batch"`` (the global
    batch number, for per-batch seeds)."""
    count = len(dataset) if num_items is None else min(num_items, len(dataset))
    if count <= 0:
        raise ValueError("cannot evaluate on an empty split")

    def collate(items):
        indices = [i for i, _ in items]
        out = collate_fn([x for _, x in items])
        out["index"] = torch.tensor(indices, dtype=torch.long)
        out["batch"] = indices[0] // batch_size
        return out

    return DataLoader(
        _Indexed(dataset),
        batch_sampler=BatchShardSampler(count, batch_size),
        collate_fn=collate,
        generator=torch.Generator().manual_seed(0),  # an iterator must not draw from the global RNG
    )
