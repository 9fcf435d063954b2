"""Training across processes with PyTorch's DistributedDataParallel, as started by `torchrun`.

torchrun sets WORLD_SIZE, RANK and LOCAL_RANK; without them (a plain `python train.py`) everything here is
a no-op for a world of one. Every rank draws the same shuffling and augmentation from the same seed and
trains on its own shard of every batch (rows rank, rank + world, ...); gradients are averaged across ranks,
so one step sees the whole batch, as in a single process. Only rank 0 writes files.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from .cli import UserError


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    def shard(self, rows: torch.Tensor) -> torch.Tensor:
        """This rank's rows of a batch."""
        return rows[self.rank::self.size]

    def sum(self, *values: float) -> list[float]:
        """The sums over ranks of a few numbers (every rank gets them)."""
        if not self.distributed:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64)
        dist.all_reduce(t)
        return t.tolist()

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()


def start(device_name: str) -> tuple[World, str]:
    """Joins the process group torchrun set up (gloo on CPU, NCCL on CUDA); returns the world and the device
    this rank should use ('cuda:LOCAL_RANK' for CUDA)."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World(), device_name
    world = World(int(os.environ["RANK"]), size, int(os.environ.get("LOCAL_RANK", "0")))
    cuda = device_name == "cuda" or (device_name == "auto" and torch.cuda.is_available())
    if cuda:
        if torch.cuda.device_count() <= world.local_rank:
            raise UserError(f"rank {world.rank} needs GPU {world.local_rank}, but {torch.cuda.device_count()} are visible")
        torch.cuda.set_device(world.local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    return world, f"cuda:{world.local_rank}" if cuda else "cpu"


def stop(world: World) -> None:
    if world.distributed and dist.is_initialized():
        dist.destroy_process_group()


def wrap(model: torch.nn.Module, world: World, device: torch.device) -> torch.nn.Module:
    """The model as the training loop should call it: DDP-wrapped when there are several ranks."""
    if not world.distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel
    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
