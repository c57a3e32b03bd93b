"""Data-parallel training with torch.distributed, as launched by ``torchrun``.

``torchrun --nproc-per-node N -m stylekit train RECIPE`` sets RANK, WORLD_SIZE,
LOCAL_RANK, MASTER_ADDR and MASTER_PORT; :func:`init_from_env` turns those into a
process group (NCCL on CUDA, gloo on CPU). Each rank reads every N-th sample of the
same seeded stream (:class:`~stylekit.data.ResumableSampler`), DDP averages the
gradients, and rank 0 alone writes logs, samples and checkpoints.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def env_world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def init_from_env(device: str = "auto") -> DistContext:
    """Join the process group torchrun describes (no-op when WORLD_SIZE is unset or 1)."""
    if dist.is_available() and dist.is_initialized():
        return context()
    if env_world_size() <= 1:
        return DistContext()
    use_cuda = torch.cuda.is_available() and (device == "auto" or device.startswith("cuda"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if use_cuda:
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return context()


def context() -> DistContext:
    """The current process group's rank and size (rank 0 of 1 when not distributed)."""
    if not (dist.is_available() and dist.is_initialized()):
        return DistContext()
    return DistContext(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", dist.get_rank())))


def device_for(ctx: DistContext, device: torch.device) -> torch.device:
    """One GPU per process: cuda → cuda:LOCAL_RANK when distributed."""
    if ctx.enabled and device.type == "cuda" and device.index is None:
        return torch.device("cuda", ctx.local_rank % max(torch.cuda.device_count(), 1))
    return device


def barrier(ctx: DistContext) -> None:
    if ctx.enabled:
        dist.barrier()


def broadcast_object(ctx: DistContext, value: Any) -> Any:
    """Rank 0's value on every rank (e.g. the run directory name)."""
    if not ctx.enabled:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def all_reduce_(ctx: DistContext, tensor: torch.Tensor, op: str = "sum") -> torch.Tensor:
    if ctx.enabled:
        dist.all_reduce(tensor, op={"sum": dist.ReduceOp.SUM, "max": dist.ReduceOp.MAX}[op])
    return tensor


def wrap_ddp(model: torch.nn.Module, ctx: DistContext, device: torch.device) -> torch.nn.Module:
    """DDP for gradient all-reduce; the wrapped module keeps the original parameters (checkpoints are unchanged)."""
    if not ctx.enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
