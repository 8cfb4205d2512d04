"""Distributed data-parallel training with ``torchrun``, with no code change.

When a script runs under ``torchrun --nproc_per_node N`` (the ``RANK``, ``WORLD_SIZE`` and
``MASTER_ADDR`` variables are set), the Learner initialises the process group (NCCL on
GPUs, gloo on the CPU) unless the script already did, puts each process on its own GPU
(``LOCAL_RANK``), trains through ``DistributedDataParallel``, shards the in-memory loaders by
rank, gathers validation predictions so that losses and metrics cover the whole validation
set, and lets only rank 0 print and write files.

Several nodes: the same script with ``torchrun --nnodes M --nproc_per_node N
--rdzv_backend c10d --rdzv_endpoint HOST:PORT`` on each node. Hugging Face Accelerate
users can launch with ``accelerate launch``, which sets the same variables.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
from torch import Tensor

__all__ = ["all_gather_cat", "all_reduce_sum", "barrier", "in_process_group", "init_from_env", "is_main_process", "rank", "world_size"]


def init_from_env() -> bool:
    """Initialise the default process group from torchrun's environment variables when they
    are set and no group exists yet. Returns whether a multi-process group is active."""
    if not dist.is_available():
        return False
    if not dist.is_initialized() and int(os.environ.get("WORLD_SIZE", "1")) > 1 and "MASTER_ADDR" in os.environ:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend)
    return world_size() > 1


def in_process_group() -> bool:
    """Whether torch.distributed is available and a process group is initialised."""
    return dist.is_available() and dist.is_initialized()


def world_size() -> int:
    """Processes in the group; 1 outside one."""
    return dist.get_world_size() if in_process_group() else 1


def rank() -> int:
    """This process's rank; 0 outside a group."""
    return dist.get_rank() if in_process_group() else 0


def barrier() -> None:
    """Wait for every process of the group (nothing outside one)."""
    if in_process_group():
        dist.barrier()


def all_reduce_sum(t: Tensor, device: torch.device | None = None) -> Tensor:
    """Sum of ``t`` over all processes (``t`` itself with one process). The collective runs
    on ``device`` (NCCL needs CUDA tensors; default ``t``'s) and the result comes back to
    ``t``'s device."""
    if world_size() == 1:
        return t
    out = t.detach().to(device or t.device, copy=True)
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out.to(t.device)


def is_main_process() -> bool:
    """Rank 0, the process that prints and writes files."""
    return rank() == 0


def all_gather_cat(t: Tensor) -> Tensor:
    """Concatenate ``t`` (first dimension may differ per rank) from every rank, in rank order."""
    if world_size() == 1:
        return t
    n = torch.tensor([t.shape[0]], device=t.device)
    sizes = [torch.zeros_like(n) for _ in range(world_size())]
    dist.all_gather(sizes, n)
    top = int(max(s.item() for s in sizes))
    padded = torch.zeros((top, *t.shape[1:]), dtype=t.dtype, device=t.device)
    padded[: t.shape[0]] = t
    parts = [torch.zeros_like(padded) for _ in range(world_size())]
    dist.all_gather(parts, padded)
    return torch.cat([p[: int(s.item())] for p, s in zip(parts, sizes)])
