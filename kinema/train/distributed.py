"""torchrun set-up: process group, device, and wrapping a model for DDP or FSDP2."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from kinema.errors import ConfigError


@dataclass
class Dist:
    """Where this process sits in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def setup() -> Dist:
    """Join the process group when launched by torchrun (NCCL on GPU, gloo on CPU)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    rank = dist.get_rank() if dist.is_initialized() else 0
    return Dist(rank=rank, world_size=world_size, local_rank=local_rank, device=device)


def teardown() -> None:
    """Leave the process group."""
    if dist.is_initialized():
        dist.destroy_process_group()


def wrap(model: nn.Module, env: Dist, parallel: str) -> nn.Module:
    """DDP (replicated weights, averaged gradients) or FSDP2 (sharded weights) over the job's ranks."""
    if not env.enabled:
        return model
    if parallel == "ddp":
        from torch.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(model, device_ids=[env.local_rank] if env.device.type == "cuda" else None)
    if parallel == "fsdp":
        from torch.distributed.fsdp import fully_shard

        for block in getattr(model, "blocks", []):
            fully_shard(block)
        fully_shard(model)
        return model
    raise ConfigError(f"train.parallel {parallel!r}: choose ddp or fsdp")


def full_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """Unsharded, unwrapped weights on CPU (every rank must call this under FSDP)."""
    inner = model.module if hasattr(model, "module") and not hasattr(model, "blocks") else model
    state = {}
    for name, tensor in inner.state_dict().items():
        if hasattr(tensor, "full_tensor"):
            tensor = tensor.full_tensor()
        state[name] = tensor.detach().cpu().clone()
    return state


def all_reduce_mean(value: torch.Tensor, env: Dist) -> torch.Tensor:
    """Average a scalar over ranks (for logging)."""
    if env.enabled:
        value = value.detach().clone()
        dist.all_reduce(value)
        value /= env.world_size
    return value
