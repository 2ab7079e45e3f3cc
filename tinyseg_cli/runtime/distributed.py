"""PyTorch DDP under ``torchrun`` (SPEC §1: no home-made launcher), and its no-op twin."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as torch_dist

from tinyseg_cli.errors import TinysegError


@dataclass
class Distributed:
    """This process's rank among ``world`` training processes (1 without ``--distributed``)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    active: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def start(cls, enabled: bool, device_name: str) -> Distributed:
        """Join the process group that ``torchrun`` set up (env:// rendezvous)."""
        if not enabled:
            return cls()
        if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
            raise TinysegError(
                "--distributed needs the environment of torchrun: run "
                "'torchrun --nproc_per_node N -m tinyseg_cli train … --distributed'"
            )
        local_rank = int(os.environ.get("LOCAL_RANK", 0))
        use_cuda = device_name != "cpu" and torch.cuda.is_available()
        if use_cuda:
            torch.cuda.set_device(local_rank)
        torch_dist.init_process_group(backend="nccl" if use_cuda else "gloo")
        return cls(torch_dist.get_rank(), torch_dist.get_world_size(), local_rank, True)

    def device_name(self, requested: str) -> str:
        """Each process drives its own GPU (``cuda:LOCAL_RANK``) under DDP."""
        if self.active and requested in ("auto", "cuda") and torch.cuda.is_available():
            return f"cuda:{self.local_rank}"
        return requested

    def wrap(self, model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
        if not self.active:
            return model
        ids = [device.index] if device.type == "cuda" else None
        return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)

    def mean(self, value: torch.Tensor) -> torch.Tensor:
        """The mean of ``value`` over all processes (for the logged loss)."""
        if not self.active:
            return value
        value = value.clone()
        torch_dist.all_reduce(value, op=torch_dist.ReduceOp.SUM)
        return value / self.world

    def broadcast(self, value: object) -> object:
        """The main process's ``value``, on every process (a picklable object)."""
        if not self.active:
            return value
        holder = [value if self.is_main else None]
        torch_dist.broadcast_object_list(holder, src=0)
        return holder[0]

    def barrier(self) -> None:
        if self.active:
            torch_dist.barrier()

    def close(self) -> None:
        if self.active and torch_dist.is_initialized():
            torch_dist.destroy_process_group()
