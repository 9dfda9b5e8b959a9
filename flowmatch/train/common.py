"""Training utilities shared by the FlowNet and PatchBatch trainers.

- `init_distributed` / `DistInfo` / `all_reduce_mean` / `barrier` / `wrap_ddp`: re-exported from
  flowmatch.distributed (single process or torchrun; no-ops in a single process).
- LR schedules: `step_decay_schedule` (the FlowNet paper's: constant, then halved every N steps,
  with an optional linear warm-up), `fitted_schedule` (warm-up + cosine fitted to the run length);
  `set_lr`.  `GracefulStop`: SIGINT/SIGTERM as a flag, so a run checkpoints before it stops.
- `Progress`: a tqdm bar (main process only) showing running loss/EPE; `ScalarLogger`:
  TensorBoard scalars when the tensorboard package is installed, else nothing.
- Checkpoints: `save_training_state` / `load_training_state` on top of flowmatch.checkpoint
  (model, optimizer, step, RNG state, written atomically), `checkpoint_path`, `latest_checkpoint`
  and `prune_checkpoints` for "checkpoint every N steps, resume from the last complete one".
- `rng_state` / `set_rng_state`: Python, NumPy and torch (CPU and CUDA) generators.
"""
from __future__ import annotations

import math
import os
import random
import re
from typing import Any, Callable

import numpy as np
import torch

from .._atomic import clean_stale_temps
from ..checkpoint import load_checkpoint, load_state_into, save_checkpoint
from ..distributed import DistInfo, all_reduce_mean, barrier, init_distributed, unwrap, wrap_ddp  # noqa: F401
from ..errors import CheckpointError, InputError
from .._signals import GracefulStop  # noqa: F401  (moved down a layer; the trainers use this name)

# ---------------------------------------------------------------------------------------------
# distributed: the set-up and collectives live in flowmatch.distributed (one module for training,
# evaluation and submission); the trainers use them through these names.


def cleanup_distributed() -> None:
    """Destroy the process group if one exists (the trainers own theirs)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def shard(indices: list[int], info: DistInfo) -> list[int]:
    """This rank's share of a global batch: rank r takes items r, r+W, r+2W, ...

    Every rank sees the same global order (seeded by step), so a run with W processes and batch
    B·W per step sees exactly the samples a single process with batch B·W sees."""
    return indices[info.rank::info.world_size]


# ---------------------------------------------------------------------------------------------
# learning-rate schedules


def step_decay_schedule(base_lr: float, decay_start: int, decay_every: int, factor: float = 0.5,
                        warmup_steps: int = 0, warmup_start_lr: float | None = None) -> Callable[[int], float]:
    """lr(step): linear warm-up from warmup_start_lr to base_lr over warmup_steps, constant until
    decay_start, then multiplied by `factor` every decay_every steps (FlowNet: 1e-4, halved every
    100k after 300k; FlowNetC warms up from 1e-6 over the first 10k)."""
    if base_lr <= 0 or decay_every <= 0 or decay_start < 0 or warmup_steps < 0 or not 0 < factor <= 1:
        raise InputError(f"bad schedule: base_lr={base_lr}, decay_start={decay_start}, "
                         f"decay_every={decay_every}, factor={factor}, warmup_steps={warmup_steps}")
    start = base_lr if warmup_start_lr is None else float(warmup_start_lr)

    def lr(step: int) -> float:
        if step < warmup_steps:
            return start + (base_lr - start) * step / warmup_steps
        if step < decay_start:
            return base_lr
        return base_lr * factor ** ((step - decay_start) // decay_every + 1)

    return lr


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


# ---------------------------------------------------------------------------------------------
# progress and logging


class Progress:
    """A tqdm progress bar over steps [start, total) with smoothed scalars in its postfix.

    Only the main process shows it; `update(**scalars)` advances one step."""

    def __init__(self, total: int, start: int = 0, desc: str = "train", enabled: bool = True,
                 smoothing: float = 0.9) -> None:
        self._bar = None
        self._avg: dict[str, float] = {}
        self._smoothing = smoothing
        if enabled:
            from tqdm import tqdm

            self._bar = tqdm(total=total, initial=start, desc=desc, dynamic_ncols=True, leave=True)

    def update(self, **scalars: float) -> dict[str, float]:
        for k, v in scalars.items():
            v = float(v)
            self._avg[k] = v if k not in self._avg else self._smoothing * self._avg[k] + (1 - self._smoothing) * v
        if self._bar is not None:
            self._bar.set_postfix({k: f"{v:.4g}" for k, v in self._avg.items()}, refresh=False)
            self._bar.update(1)
        return dict(self._avg)

    @property
    def averages(self) -> dict[str, float]:
        return dict(self._avg)

    def write(self, msg: str) -> None:
        if self._bar is not None:
            self._bar.write(msg)
        else:
            print(msg, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


class ScalarLogger:
    """TensorBoard scalars under `logdir` when tensorboard is installed (main process only)."""

    def __init__(self, logdir: str | None, enabled: bool = True) -> None:
        self._writer = None
        if logdir and enabled:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard not installed: say so once, then train without it
                import warnings

                warnings.warn(f"TensorBoard scalars for {logdir!r} are not written: the tensorboard package is "
                              "not installed (pip install tensorboard)", RuntimeWarning, stacklevel=2)
                return
            self._writer = SummaryWriter(logdir)

    @property
    def active(self) -> bool:
        return self._writer is not None

    def scalars(self, step: int, **values: float) -> None:
        if self._writer is not None:
            for k, v in values.items():
                self._writer.add_scalar(k, float(v), step)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


# ---------------------------------------------------------------------------------------------
# RNG state


def rng_state() -> dict[str, Any]:
    """Python, NumPy (legacy global) and torch generator states, storable in a checkpoint."""
    py = random.getstate()
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "python": {"version": py[0], "state": torch.tensor(py[1], dtype=torch.int64), "gauss": py[2]},
        "numpy": {"kind": np_state[0], "keys": torch.from_numpy(np_state[1].astype(np.int64)),
                  "pos": int(np_state[2]), "has_gauss": int(np_state[3]), "gauss": float(np_state[4])},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = list(torch.cuda.get_rng_state_all())
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what `rng_state` returned."""
    try:
        py = state["python"]
        random.setstate((py["version"], tuple(int(v) for v in py["state"].tolist()), py["gauss"]))
        n = state["numpy"]
        np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
        torch.set_rng_state(state["torch"].to(torch.uint8))
        if "cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([t.to(torch.uint8) for t in state["cuda"]])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"checkpoint has a corrupt RNG state: {exc}") from exc


# ---------------------------------------------------------------------------------------------
# checkpoints

_CKPT_RE = re.compile(r"^step_(\d+)\.safetensors$")


def checkpoint_path(folder: str | os.PathLike, step: int) -> str:
    """<folder>/step_<step, 8 digits>.safetensors"""
    return os.path.join(os.fspath(folder), f"step_{step:08d}.safetensors")


def list_checkpoints(folder: str | os.PathLike) -> list[tuple[int, str]]:
    """(step, path) of every complete checkpoint in `folder`, oldest first.  Temporary files of
    an interrupted write (hidden ".step_*.tmp*") never match."""
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        return []
    found = []
    for name in os.listdir(folder):
        m = _CKPT_RE.match(name)
        if m:
            found.append((int(m.group(1)), os.path.join(folder, name)))
    return sorted(found)


def latest_checkpoint(folder: str | os.PathLike) -> str | None:
    """Newest complete checkpoint in `folder` (None if none).  Resuming starts here, so it also
    removes the temporaries of checkpoint saves killed mid-write (provably stale: their process on
    this host is gone; flowmatch._atomic.clean_stale_temps)."""
    clean_stale_temps(folder)
    found = list_checkpoints(folder)
    return found[-1][1] if found else None


def prune_checkpoints(folder: str | os.PathLike, keep: int) -> None:
    """Delete all but the newest `keep` checkpoints (keep <= 0 keeps all)."""
    if keep <= 0:
        return
    for _, path in list_checkpoints(folder)[:-keep]:
        try:
            os.unlink(path)
        except OSError:
            pass


def save_training_state(path: str | os.PathLike, kind: str, config: dict[str, Any], model: torch.nn.Module,
                        optimizer: torch.optim.Optimizer | None, step: int,
                        extra: dict[str, Any] | None = None, include_rng: bool = True) -> None:
    """Write model + optimizer + step (+ RNG state, + `extra`) atomically as one safetensors file."""
    payload: dict[str, Any] = {"step": int(step)}
    if optimizer is not None:
        payload["optimizer"] = optimizer.state_dict()
    if include_rng:
        payload["rng"] = rng_state()
    if extra:
        payload["user"] = extra
    save_checkpoint(path, kind, config, unwrap(model).state_dict(), payload)


def load_training_state(path: str | os.PathLike, kind: str | tuple[str, ...], model: torch.nn.Module,
                        optimizer: torch.optim.Optimizer | None = None, restore_rng: bool = True,
                        config: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
    """Load a checkpoint from save_training_state into `model` (and `optimizer`); returns
    (step, extra).  With `config`, a checkpoint of another configuration is a CheckpointError
    saying which settings differ.  Restores the RNG state when stored and restore_rng."""
    ckpt = load_checkpoint(path, kind)
    if config is not None:
        diff = {k: (ckpt.config.get(k), v) for k, v in config.items() if ckpt.config.get(k) != v}
        if diff:
            raise CheckpointError(f"checkpoint {os.fspath(path)!r} was trained with another configuration "
                                  f"(setting: checkpoint vs now) {diff}; start a new run folder or match the settings")
    load_state_into(unwrap(model), ckpt.model, source=f"checkpoint {os.fspath(path)!r}")
    extra = ckpt.extra or {}
    if optimizer is not None:
        if "optimizer" not in extra:
            raise CheckpointError(f"checkpoint {os.fspath(path)!r} has no optimizer state; it cannot resume training")
        try:
            optimizer.load_state_dict(extra["optimizer"])
        except (ValueError, KeyError) as exc:
            raise CheckpointError(f"optimizer state in {os.fspath(path)!r} does not fit: {exc}") from exc
    if restore_rng and "rng" in extra:
        set_rng_state(extra["rng"])
    return int(extra.get("step", 0)), extra.get("user", {})


def load_init_weights(path: str | os.PathLike, kind: str, model: torch.nn.Module, config: dict[str, Any],
                      hint: str, ignore: tuple[str, ...] = ()) -> None:
    """`--init`: the weights of checkpoint / exported weights `path` into `model` (fine-tuning: the
    optimizer, step and schedule start fresh).  CheckpointError when the file holds another kind or a
    network of another config (`hint` names the options that set it), config keys in `ignore` aside
    (settings that do not change the tensors)."""
    ckpt = load_checkpoint(path, kind)
    strip = lambda c: {k: v for k, v in c.items() if k not in ignore}  # noqa: E731
    if strip(ckpt.config) != strip(config):
        raise CheckpointError(f"--init {str(path)!r} holds a {kind} with config {ckpt.config}, but this run builds "
                              f"{config}; pass the same {hint}")
    load_state_into(model, ckpt.model, source=f"--init {str(path)!r}")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def format_eta(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h:d}:{m:02d}:{s:02d}"


# ---------------------------------------------------------------------------------------------
# schedule fitted to the run length, and stopping on a signal


def fitted_schedule(base_lr: float, steps: int, warmup: int | None = None, final_share: float = 0.02,
                    warmup_start_share: float = 0.01):
    """lr(step): a linear warm-up over `warmup` steps (default 3 % of the run, at most 2000), then a
    cosine decay to final_share·base_lr at `steps`.  Fits any run length, so a short run decays too."""
    steps = max(int(steps), 1)
    warm = min(2000, max(1, steps * 3 // 100)) if warmup is None else max(0, int(warmup))
    warm = min(warm, steps - 1) if steps > 1 else 0

    def lr(step: int) -> float:
        if step < warm:
            return base_lr * (warmup_start_share + (1 - warmup_start_share) * step / warm)
        t = min(1.0, (step - warm) / max(1, steps - warm))
        return base_lr * (final_share + (1 - final_share) * 0.5 * (1 + math.cos(math.pi * t)))

    return lr


# ---------------------------------------------------------------------------------------------
# data workers for step-indexed datasets


def _init_worker(_: int) -> None:
    # Data workers stay off the training threads, and leave SIGINT/SIGTERM (often sent to the whole
    # process group) to the training process, which checkpoints and then ends them.
    import signal

    import cv2

    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def step_batches(data: Any, start: int, stop: int, workers: int, pin_memory: bool = False) -> Any:
    """An iterator over data[start], data[start+1], ... data[stop-1] of a map-style dataset indexed by
    step, made in `workers` spawn processes (0 = in this process)."""
    steps = range(start, stop)
    if workers == 0:
        return (data[s] for s in steps)
    import signal

    # spawn, not fork: OpenCV's thread pool does not survive a fork of a process that has used it.
    loader = torch.utils.data.DataLoader(data, batch_size=None, sampler=steps, num_workers=workers,
                                         worker_init_fn=_init_worker, prefetch_factor=2, pin_memory=pin_memory,
                                         multiprocessing_context="spawn")
    # Workers start with SIGINT/SIGTERM ignored (an ignored signal stays ignored across exec), so a
    # signal to the whole process group during their start-up leaves them to the training process.
    old = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        return iter(loader)
    finally:
        for s, h in old.items():
            signal.signal(s, h)
