"""Work done once, by rank 0, in distributed training, and its result shared with the other ranks.

Statistics that every rank needs and that take a pass over the audio (the
speakers' CMVN statistics, the prosody expert's fit) are computed by rank 0
alone: :func:`computed_on_rank0` runs a function there and broadcasts its
result; :func:`sync_from_rank0` copies a module's parameters, buffers and
``requires_grad`` flags from rank 0. Outside distributed training (no
``torch.distributed`` process group, or a group of one) both run locally.
"""

from __future__ import annotations

from typing import Any, Callable, Tuple, TypeVar

import torch

T = TypeVar("T")


def world_and_rank() -> Tuple[int, int]:
    """``(world size, rank)`` of the default process group; ``(1, 0)`` without one."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_world_size(), torch.distributed.get_rank()
    return 1, 0


def computed_on_rank0(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)`` run on rank 0 only; every rank returns its result.

    A collective call: every rank must make it, in the same order. The result
    travels pickled (:func:`torch.distributed.broadcast_object_list`). When
    ``fn`` raises on rank 0, rank 0 raises its exception and the other ranks
    a ``RuntimeError`` quoting it (instead of waiting forever).
    """
    world, rank = world_and_rank()
    if world == 1:
        return fn(*args, **kwargs)
    error = None
    message: list = [None]
    if rank == 0:
        try:
            message = [(True, fn(*args, **kwargs))]
        except Exception as exc:  # re-raised below, after the others have heard of it
            error = exc
            message = [(False, f"{type(exc).__name__}: {exc}")]
    torch.distributed.broadcast_object_list(message, src=0)
    if error is not None:
        raise error
    ok, value = message[0]
    if not ok:
        raise RuntimeError(f"rank 0 failed: {value}")
    return value


@torch.no_grad()
def sync_from_rank0(module: torch.nn.Module) -> None:
    """Give ``module`` rank 0's parameters, buffers and ``requires_grad`` flags (collective; no-op alone).

    Args:
        module: The same architecture on every rank.
    """
    world, _ = world_and_rank()
    if world == 1:
        return
    flags = computed_on_rank0(lambda: {n: p.requires_grad for n, p in module.named_parameters()})
    for name, param in module.named_parameters():
        torch.distributed.broadcast(param.data, src=0)
        param.requires_grad_(flags[name])
    for buf in module.buffers():
        torch.distributed.broadcast(buf, src=0)
