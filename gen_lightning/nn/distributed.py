"""Where this process stands in a distributed run: its rank and the world size, and a barrier that is a no-op alone.

Shared by the data loaders (DDP shards) and the metric protocols (gathering samples, caching on rank 0).
"""

from __future__ import annotations

import torch


def dist_info() -> tuple[int, int]:
    """``(rank, world_size)`` of this process; ``(0, 1)`` without an initialised process group."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def barrier() -> None:
    """Wait for every process (nothing to wait for alone)."""
    if dist_info()[1] > 1:
        torch.distributed.barrier()
