"""flowmatch: optical flow and dense correspondence for PyTorch.

    import flowmatch
    flow = flowmatch.flow(img1, img2)              # H×W×2 float32, pixels, x then y
    flowmatch.methods()                             # every method and whether it can run here
    cost = flowmatch.ops.correlation(f1, f2, ...)   # FlowNet cost volume, autograd + torch.compile

Submodules load on first use: io, image, viz, metrics, warp, ops, nn, models, data, losses, evaluate,
evaluation, pipelines, video (layers: ARCHITECTURE.md).
"""
from __future__ import annotations

import importlib
from typing import Any

import torch  # noqa: F401  (must be loaded before the compiled extension)

from . import errors
from .methods import best_method, flow, get_method, methods

__version__ = "0.1.0"

_SUBMODULES = {"io", "image", "viz", "metrics", "warp", "ops", "nn", "models", "data", "losses", "evaluate",
               "evaluation", "video", "checkpoint", "pipelines", "train"}
# Public functions that live in submodules, loaded lazily: name -> "module:attribute".
_LAZY = {
    "descriptors": "flowmatch.pipelines.patchbatch.network:descriptors",
    "read_flow": "flowmatch.io:read_flow",
    "write_flow": "flowmatch.io:write_flow",
    "read_image": "flowmatch.io:read_image",
    "flow_to_color": "flowmatch.viz:flow_to_color",
}

__all__ = ["errors", "flow", "methods", "best_method", "get_method", *sorted(_SUBMODULES), *sorted(_LAZY)]


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"flowmatch.{name}")
    if name in _LAZY:
        mod, attr = _LAZY[name].split(":")
        return getattr(importlib.import_module(mod), attr)
    raise AttributeError(f"module 'flowmatch' has no attribute {name!r}")
