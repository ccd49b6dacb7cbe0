"""Several processes, one training: what :func:`~course_lib.core.training.fit` needs from ``torch.distributed``.

``torchrun --nproc_per_node N -m course_lib.<unit> train ...`` starts N copies of the command with
``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE`` set. Each copy calls :func:`context`, which joins the
process group (NCCL on CUDA, gloo on the CPU) and pins its GPU; ``fit`` does the rest (see its
module). Every collective is PyTorch's. Without ``torchrun`` :func:`context` returns the
single-process context and nothing changes.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = ["Context", "context", "shard", "world_size", "is_main_process", "finish"]


@dataclass(frozen=True)
class Context:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def mean(self, value: torch.Tensor) -> torch.Tensor:
        """The mean of a tensor over all processes (the tensor itself in one process)."""
        if not self.distributed:
            return value
        value = value.detach().clone().float()
        dist.all_reduce(value)  # a sum
        return value / self.world_size

    def weighted_means(self, means: dict, count: int) -> dict:
        """Per-process means over ``count`` samples -> the means over all samples of all processes."""
        if not self.distributed:
            return means
        keys = sorted(means)
        sums = torch.tensor([means[k] * count for k in keys] + [count], dtype=torch.float64, device=self.device)
        dist.all_reduce(sums)
        return {k: float(s / sums[-1]) for k, s in zip(keys, sums[:-1])}

    def gather(self, obj) -> list:
        """``obj`` of every process, in rank order (``[obj]`` in one process)."""
        if not self.distributed:
            return [obj]
        out = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()


def _launched() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ


def world_size() -> int:
    """The number of processes of a ``torchrun`` launch (1 without one), before joining the group."""
    return int(os.environ["WORLD_SIZE"]) if _launched() else 1


def is_main_process() -> bool:
    """False only in the processes 1..N-1 of a ``torchrun`` launch (they write nothing)."""
    return int(os.environ.get("RANK", "0")) == 0


def context(device: torch.device) -> Context:
    """The process group of a ``torchrun`` launch (joined on first call), or the single-process context.
    On CUDA each process takes the GPU ``LOCAL_RANK`` (``device`` is replaced by it)."""
    if not _launched():
        return Context(device=device)
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Context(dist.get_rank(), dist.get_world_size(), local_rank, device)


def shard(order: list, batch_size: int, ctx: Context, accumulate: int = 1) -> list:
    """This process's samples of an epoch whose global order is ``order``.

    Global step ``k`` uses ``order[k*G:(k+1)*G]`` with ``G = batch_size * accumulate * world_size``,
    exactly the batches one process with batch ``G`` would see; process ``r`` takes the ``r``-th run of
    ``batch_size * accumulate`` samples of it and cuts them into ``accumulate`` batches of ``batch_size``.
    A last incomplete global batch is dropped, as one process drops its last incomplete batch.
    """
    per_process = batch_size * accumulate
    global_batch = per_process * ctx.world_size
    mine = []
    for start in range(0, len(order) - global_batch + 1, global_batch):
        first = start + ctx.rank * per_process
        mine.extend(order[first:first + per_process])
    return mine


def finish() -> None:
    """Leave the process group at the end of a command (nothing to do in one process)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
