"""Checkpoints and weights files that load without executing pickled code.

A checkpoint is one safetensors file: the model's state dict under "model/...", any extra
tensors (optimizer state, RNG state) under "extra/...", and a JSON header in the safetensors
metadata with the model kind, the config needed to rebuild the model, and the non-tensor parts
of `extra` (step counts, optimizer hyper-parameters).  Files are written atomically.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

import torch

from ._atomic import atomic_path
from .errors import CheckpointError

FORMAT_VERSION = 1


@dataclass
class Checkpoint:
    kind: str                      # e.g. "flownetc", "patchbatch"
    config: dict[str, Any]         # keyword arguments that rebuild the model
    model: dict[str, torch.Tensor]  # the model's state dict
    extra: dict[str, Any] = field(default_factory=dict)  # training state (may hold tensors)


def _flatten(obj: Any, prefix: str, tensors: dict[str, torch.Tensor]) -> Any:
    """Replace every tensor in a nested dict/list structure by a reference into `tensors`."""
    if isinstance(obj, torch.Tensor):
        key = f"extra/{len(tensors)}"
        tensors[key] = obj.detach().cpu().contiguous()
        return {"__tensor__": key}
    if isinstance(obj, dict):
        return {"__dict__": [[_flatten(k, prefix, tensors), _flatten(v, prefix, tensors)] for k, v in obj.items()]}
    if isinstance(obj, (list, tuple)):
        return {"__list__" if isinstance(obj, list) else "__tuple__": [_flatten(v, prefix, tensors) for v in obj]}
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise CheckpointError(f"cannot store a {type(obj).__name__} in a checkpoint (only tensors, numbers, "
                          "strings, lists and dicts)")


def _unflatten(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            return tensors[obj["__tensor__"]]
        if "__dict__" in obj:
            return {_unflatten(k, tensors): _unflatten(v, tensors) for k, v in obj["__dict__"]}
        if "__list__" in obj:
            return [_unflatten(v, tensors) for v in obj["__list__"]]
        if "__tuple__" in obj:
            return tuple(_unflatten(v, tensors) for v in obj["__tuple__"])
    return obj


def save_checkpoint(path: str | os.PathLike, kind: str, config: dict[str, Any],
                    model: dict[str, torch.Tensor], extra: dict[str, Any] | None = None,
                    half: bool = False) -> None:
    """Write a checkpoint atomically.  `half=True` stores floating model tensors as float16
    (for shipped weights); they are cast back to float32 on load."""
    from safetensors.torch import save_file

    tensors: dict[str, torch.Tensor] = {}
    for name, t in model.items():
        t = t.detach().cpu().contiguous()
        if half and t.is_floating_point():
            t = t.half()
        tensors["model/" + name] = t
    extra_struct = _flatten(extra or {}, "extra", tensors)
    header = {"format": FORMAT_VERSION, "kind": kind, "config": config, "extra": extra_struct, "half": half}
    with atomic_path(path) as tmp:
        save_file(tensors, tmp, metadata={"flowmatch": json.dumps(header)})


def load_checkpoint(path: str | os.PathLike, kind: str | tuple[str, ...] | None = None) -> Checkpoint:
    """Read a checkpoint written by save_checkpoint.  `kind` (one or several) is checked when given.

    Raises CheckpointError for a missing, corrupt or foreign file, or a checkpoint of another kind."""
    from safetensors import safe_open

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint {path!r} does not exist")
    try:
        tensors: dict[str, torch.Tensor] = {}
        with safe_open(path, framework="pt", device="cpu") as fh:
            meta = fh.metadata() or {}
            for key in fh.keys():
                tensors[key] = fh.get_tensor(key)
    except Exception as exc:  # safetensors raises several types for corrupt files
        raise CheckpointError(f"checkpoint {path!r} is not a readable safetensors file: {exc}") from exc
    if "flowmatch" not in meta:
        raise CheckpointError(f"checkpoint {path!r} has no flowmatch header; it was not written by flowmatch "
                              "(to load foreign weights use the model's own loader, e.g. load_published_state_dict)")
    try:
        header = json.loads(meta["flowmatch"])
        ckpt_kind, config = header["kind"], header["config"]
    except (ValueError, KeyError) as exc:
        raise CheckpointError(f"checkpoint {path!r} has a corrupt flowmatch header: {exc}") from exc
    wanted = (kind,) if isinstance(kind, str) else kind
    if wanted is not None and ckpt_kind not in wanted:
        raise CheckpointError(f"checkpoint {path!r} holds a {ckpt_kind!r} model, expected {' or '.join(map(repr, wanted))}")
    model = {k[len("model/"):]: (v.float() if header.get("half") and v.dtype == torch.float16 else v)
             for k, v in tensors.items() if k.startswith("model/")}
    extra = _unflatten(header.get("extra", {}), tensors)
    return Checkpoint(kind=ckpt_kind, config=config, model=model, extra=extra)


def load_state_into(module: torch.nn.Module, state: dict[str, torch.Tensor], source: str = "checkpoint") -> None:
    """load_state_dict with a CheckpointError that lists missing/unexpected keys and shape mismatches."""
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k}: {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
              for k in own if k in state and state[k].shape != own[k].shape]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing {missing[:5]}{' ...' if len(missing) > 5 else ''}")
        if unexpected:
            parts.append(f"unexpected {unexpected[:5]}{' ...' if len(unexpected) > 5 else ''}")
        if shapes:
            parts.append(f"shape mismatch {shapes[:5]}")
        raise CheckpointError(f"{source} does not fit {type(module).__name__}: " + "; ".join(parts))
    module.load_state_dict(state)
