"""Checkpoints and weights files that load without executing pickled code.

A checkpoint is one safetensors file: the model's state dict under "model/...", any extra
tensors (optimizer state, RNG state) under "extra/...", and a JSON header in the safetensors
metadata with the model kind, the config needed to rebuild the model, and the non-tensor parts
of `extra` (step counts, optimizer hyper-parameters).  Files are written atomically.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from ._atomic import atomic_path
from .errors import CheckpointError

FORMAT_VERSION = 1
# What a model tensor may be: floating weights (float16 in shipped half files) and integer counters
# (batch norm's num_batches_tracked).  bool, int8 or float64 "weights" are a wrong file, not a cast.
MODEL_DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.int64)
# A config is a flat set of constructor arguments: small, shallow, JSON scalars and short lists.
_CONFIG_MAX_DEPTH = 4
_CONFIG_MAX_ITEMS = 256
_EXTRA_MAX_DEPTH = 64


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


def _unflatten(obj: Any, tensors: dict[str, torch.Tensor], depth: int = 0) -> Any:
    """Inverse of _flatten; ValueError/KeyError/TypeError for a structure _flatten cannot have written."""
    if depth > _EXTRA_MAX_DEPTH:
        raise ValueError(f"nested deeper than {_EXTRA_MAX_DEPTH} levels")
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            return tensors[obj["__tensor__"]]
        if "__dict__" in obj:
            return {_unflatten(k, tensors, depth + 1): _unflatten(v, tensors, depth + 1) for k, v in obj["__dict__"]}
        if "__list__" in obj:
            return [_unflatten(v, tensors, depth + 1) for v in obj["__list__"]]
        if "__tuple__" in obj:
            return tuple(_unflatten(v, tensors, depth + 1) for v in obj["__tuple__"])
    return obj


def _check_config(config: Any, path: str, depth: int = 0) -> None:
    """A model config: a dict of str keys to JSON scalars (finite numbers), short lists or small
    dicts, at most _CONFIG_MAX_DEPTH deep.  The model's own constructor checks the values' meaning."""
    where = f"checkpoint {path!r}: config"
    if depth > _CONFIG_MAX_DEPTH:
        raise CheckpointError(f"{where} is nested deeper than {_CONFIG_MAX_DEPTH} levels")
    if isinstance(config, dict):
        if len(config) > _CONFIG_MAX_ITEMS or not all(isinstance(k, str) for k in config):
            raise CheckpointError(f"{where} must map at most {_CONFIG_MAX_ITEMS} names to values")
        for v in config.values():
            _check_config(v, path, depth + 1)
    elif isinstance(config, list):
        if len(config) > _CONFIG_MAX_ITEMS:
            raise CheckpointError(f"{where} holds a list of {len(config)} items")
        for v in config:
            _check_config(v, path, depth + 1)
    elif isinstance(config, float) and not math.isfinite(config):
        raise CheckpointError(f"{where} holds a non-finite number {config}")
    elif not (config is None or isinstance(config, (bool, int, float, str))):
        raise CheckpointError(f"{where} holds a {type(config).__name__}")


def _parse_header(text: str, path: str) -> dict[str, Any]:
    try:
        header = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise CheckpointError(f"checkpoint {path!r} has a corrupt flowmatch header: "
                              f"{'nested too deeply' if isinstance(exc, RecursionError) else exc}") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"checkpoint {path!r} has a corrupt flowmatch header: a JSON {type(header).__name__}, "
                              "expected an object")
    if not isinstance(header.get("kind"), str) or not isinstance(header.get("config"), dict):
        raise CheckpointError(f"checkpoint {path!r} has a corrupt flowmatch header: it needs a 'kind' string and a "
                              "'config' object")
    if not isinstance(header.get("half", False), bool):
        raise CheckpointError(f"checkpoint {path!r} has a corrupt flowmatch header: 'half' must be true or false")
    _check_config(header["config"], path)
    return header


def _check_model_tensors(model: dict[str, torch.Tensor], path: str) -> None:
    for name, t in model.items():
        if t.dtype not in MODEL_DTYPES:
            raise CheckpointError(f"checkpoint {path!r}: tensor {name!r} is {t.dtype}; model tensors must be float32 "
                                  "(float16 in half files) or int64 counters -- wrong or damaged file")
        if t.is_floating_point() and t.numel() and not bool(torch.isfinite(t).all()):
            raise CheckpointError(f"checkpoint {path!r}: tensor {name!r} holds NaN or infinite values "
                                  "(a diverged training run or a damaged file)")


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
    header = _parse_header(meta["flowmatch"], path)
    ckpt_kind, config = header["kind"], header["config"]
    wanted = (kind,) if isinstance(kind, str) else kind
    if wanted is not None and ckpt_kind not in wanted:
        raise CheckpointError(f"checkpoint {path!r} holds a {ckpt_kind!r} model, expected {' or '.join(map(repr, wanted))}")
    model = {k[len("model/"):]: v for k, v in tensors.items() if k.startswith("model/")}
    _check_model_tensors(model, path)
    if header.get("half"):
        model = {k: (v.float() if v.dtype == torch.float16 else v) for k, v in model.items()}
    try:
        extra = _unflatten(header.get("extra", {}), tensors)
    except (ValueError, KeyError, TypeError, RecursionError) as exc:
        raise CheckpointError(f"checkpoint {path!r} has a corrupt 'extra' section: {type(exc).__name__} {exc}") from None
    return Checkpoint(kind=ckpt_kind, config=config, model=model, extra=extra)


def check_state_fits(module: torch.nn.Module, state: dict[str, torch.Tensor], source: str = "checkpoint") -> None:
    """CheckpointError unless `state` has exactly the module's keys, shapes and dtypes (the module may
    live on the meta device: nothing is allocated)."""
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k}: {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
              for k in own if k in state and state[k].shape != own[k].shape]
    dtypes = [f"{k}: {state[k].dtype} vs model {own[k].dtype}"
              for k in own if k in state and state[k].dtype != own[k].dtype]
    if dtypes and not (missing or unexpected or shapes):
        raise CheckpointError(f"{source} does not fit {type(module).__name__}: dtype mismatch {dtypes[:5]}")
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing {missing[:5]}{' ...' if len(missing) > 5 else ''}")
        if unexpected:
            parts.append(f"unexpected {unexpected[:5]}{' ...' if len(unexpected) > 5 else ''}")
        if shapes:
            parts.append(f"shape mismatch {shapes[:5]}")
        raise CheckpointError(f"{source} does not fit {type(module).__name__}: " + "; ".join(parts))


def load_state_into(module: torch.nn.Module, state: dict[str, torch.Tensor], source: str = "checkpoint") -> None:
    """load_state_dict with a CheckpointError that lists missing/unexpected keys, shape and dtype
    mismatches."""
    check_state_fits(module, state, source)
    module.load_state_dict(state)


def build_from_checkpoint(factory: Callable[..., torch.nn.Module], ckpt: Checkpoint,
                          source: str = "checkpoint") -> torch.nn.Module:
    """`factory(**ckpt.config)` with ckpt.model loaded, checked before anything is allocated: the
    model is first built on the meta device and the checkpoint's tensors compared with it, so a
    config that asks for a huge model the file's tensors do not back (a 228-byte file saying
    width 4) is refused without building it.  CheckpointError for a config the factory rejects."""
    try:
        with torch.device("meta"):
            probe = factory(**ckpt.config)
    except CheckpointError:
        raise
    except Exception as exc:  # the constructor's own checks (TypeError, ValueError, InputError, ...)
        raise CheckpointError(f"{source}: config {ckpt.config} does not describe a model: "
                              f"{type(exc).__name__}: {exc}") from None
    check_state_fits(probe, ckpt.model, source)
    del probe
    model = factory(**ckpt.config)
    model.load_state_dict(ckpt.model)
    return model
