"""Process-group setup for torchrun jobs (evaluation, submission, training), in one place.

    with distributed() as dist:                      # a single process when not under torchrun
        for i in shard(range(n), dist): ...          # this rank's items: r, r+W, r+2W, ...
        with shared_failure(dist): ...               # one rank failing fails every rank, no hang
        with shared_check(dist): ...                 # a refused request: the same error on every rank
        device = rank_device("cuda", dist)           # under torchrun: "cuda:LOCAL_RANK"
        parts = gather_objects(my_results, dist)     # list of every rank's object, rank order

Single-process runs (WORLD_SIZE unset or 1) never touch torch.distributed.
"""
from __future__ import annotations

import contextlib
import os
import pickle
from dataclasses import dataclass
from typing import Any, Iterator, Sequence, TypeVar

import torch

from .errors import FlowmatchError, InputError

T = TypeVar("T")
__all__ = ["DistInfo", "init_distributed", "leave_distributed", "distributed", "collective_backend",
           "gather_objects", "shared_failure", "shared_check", "rank_device", "shard", "shard_range", "barrier",
           "all_reduce_mean", "wrap_ddp", "unwrap"]


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in a (possibly single-process) job."""
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    owns_group: bool = False       # this call created the process group (and leave_distributed ends it)

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def collective_backend(use_cuda: bool | None = None) -> str:
    """"nccl" when CUDA is used (default: when a GPU is visible), else "gloo"; the environment
    variable FLOWMATCH_DIST_BACKEND overrides (e.g. gloo for object gathering on GPU machines)."""
    forced = os.environ.get("FLOWMATCH_DIST_BACKEND")
    if forced:
        return forced
    use_cuda = torch.cuda.is_available() if use_cuda is None else use_cuda
    return "nccl" if use_cuda else "gloo"


def _device(device: str, local_rank: int) -> torch.device:
    if device not in ("auto", "cpu", "cuda"):
        raise InputError(f"device must be 'auto', 'cpu' or 'cuda', got {device!r}")
    use_cuda = torch.cuda.is_available() if device == "auto" else device == "cuda"
    if use_cuda and not torch.cuda.is_available():
        raise InputError("device='cuda' was asked for but no CUDA device is visible; use --device cpu")
    if not use_cuda:
        return torch.device("cpu")
    dev = torch.device(f"cuda:{local_rank}")
    torch.cuda.set_device(dev)
    return dev


def init_distributed(device: str = "cpu", backend: str | None = None) -> DistInfo:
    """Join the torchrun process group when launched by torchrun (WORLD_SIZE > 1), else describe a
    single process.

    device: "cpu", "cuda" (cuda:LOCAL_RANK, made current) or "auto" (cuda when visible).
    backend: default collective_backend() for that device.  An existing group is reused (and not
    owned, so leave_distributed leaves it alone)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    dev = _device(device, local)
    if world <= 1:
        return DistInfo(device=dev)
    import torch.distributed as dist

    owns = False
    if not dist.is_initialized():
        dist.init_process_group(backend=backend or collective_backend(dev.type == "cuda"))
        owns = True
    return DistInfo(dist.get_rank(), dist.get_world_size(), local, dev, owns)


def leave_distributed(info: DistInfo) -> None:
    """Destroy the process group if `info` created it."""
    if info.owns_group:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


@contextlib.contextmanager
def distributed(device: str = "cpu", backend: str | None = None) -> Iterator[DistInfo]:
    """init_distributed for the block, leave_distributed after it (also when it raises)."""
    info = init_distributed(device, backend)
    try:
        yield info
    finally:
        leave_distributed(info)


def gather_objects(obj: Any, info: DistInfo) -> list[Any]:
    """Every rank's picklable `obj`, in rank order (a one-element list in a single process)."""
    if not info.distributed:
        return [obj]
    import torch.distributed as dist

    out: list[Any] = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


@contextlib.contextmanager
def _agreed_failure(info: DistInfo, same_error: bool) -> Iterator[None]:
    """Run the block; then every rank learns whether any rank's block raised (one gather)."""
    error: Exception | None = None
    try:
        yield
    except Exception as exc:  # noqa: BLE001 - re-raised below, after the other ranks know
        error = exc
    if info.distributed:
        report = None if error is None else _portable(error) if same_error else f"{type(error).__name__}: {error}"
        failed = [(r, e) for r, e in enumerate(gather_objects(report, info)) if e is not None]
        if error is None and failed:
            raise failed[0][1] if same_error else FlowmatchError(f"rank {failed[0][0]} failed: {failed[0][1]}")
    if error is not None:
        raise error


def shared_failure(info: DistInfo) -> contextlib.AbstractContextManager[None]:
    """Run a rank's share of the work; then tell every rank whether any rank failed.

    Without this, one rank raising (bad frame, method error) would leave the others waiting in the
    next collective until the timeout.  The failing rank re-raises its own exception; the others
    raise FlowmatchError naming it."""
    return _agreed_failure(info, same_error=False)


def _portable(exc: BaseException) -> BaseException:
    """`exc` if it survives pickling (another rank can raise it), else a FlowmatchError naming it."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:  # noqa: BLE001 - an exception type with a constructor pickle cannot call
        return FlowmatchError(f"{type(exc).__name__}: {exc}")


def shared_check(info: DistInfo) -> contextlib.AbstractContextManager[None]:
    """Checks of a request that every rank makes before its share of the work: when the check fails
    on any rank, every rank raises that error, of the same class and with the same message (so the
    command line gives every rank the same one line and exit code), and no rank starts working.

    A rank whose own check failed raises its own error; the others raise the first failing rank's.
    Checks that could differ between ranks (this rank's GPU, a folder one machine cannot see) need
    it; identical checks get it for the price of one gather."""
    return _agreed_failure(info, same_error=True)


def rank_device(device: str, info: DistInfo) -> str:
    """The device this rank computes on, for a command's --device (cpu, cuda, cuda:N).

    Under torchrun a bare "cuda" is cuda:LOCAL_RANK (one GPU per process on each machine), made the
    current device so that NCCL collectives use it too; "cpu", "cuda:N" (every rank on GPU N) and
    single-process runs keep `device` as given.  MethodUnavailableError when this rank's GPU is not
    there (more processes than GPUs on this machine)."""
    if not info.distributed or device != "cuda":
        return device
    from ._devices import require_device

    dev = require_device(f"cuda:{info.local_rank}")
    torch.cuda.set_device(dev)
    return str(dev)


def shard(items: Sequence[T], info: DistInfo) -> Sequence[T]:
    """This rank's share: items r, r+W, r+2W, ... (every rank must see the same order)."""
    return items[info.rank::info.world_size]


def shard_range(n: int, info: DistInfo) -> range:
    """This rank's contiguous block of indices 0..n-1; block sizes differ by at most one, rank order.

    For streamed inputs (video: a rank can stop reading after its last item) and for resume-safe
    output folders: shard the full list first, then skip the items whose output exists, so that
    the split never depends on what one rank happened to see on disk."""
    if n < 0:
        raise InputError(f"cannot shard a negative number of items ({n})")
    q, r = divmod(n, info.world_size)
    lo = info.rank * q + min(info.rank, r)
    return range(lo, lo + q + (info.rank < r))


# ---------------------------------------------------------------------------------------------
# collectives for training (no-ops in a single process)


def barrier(info: DistInfo) -> None:
    if info.distributed:
        import torch.distributed as dist

        dist.barrier()


def all_reduce_mean(value: torch.Tensor | float, info: DistInfo) -> torch.Tensor:
    """Mean of a scalar/tensor over all ranks (the value itself in a single process)."""
    t = value.detach().clone() if isinstance(value, torch.Tensor) else torch.tensor(float(value))
    if info.distributed:
        import torch.distributed as dist

        t = t.to(info.device if dist.get_backend() == "nccl" else "cpu")
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        t = t / info.world_size
    return t


def wrap_ddp(model: torch.nn.Module, info: DistInfo) -> torch.nn.Module:
    """DistributedDataParallel around `model` when distributed, else the model itself."""
    if not info.distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [info.device.index] if info.device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The plain module inside a DDP/compiled wrapper (for state dicts)."""
    while hasattr(model, "module") and isinstance(model.module, torch.nn.Module):
        model = model.module
    return getattr(model, "_orig_mod", model)
