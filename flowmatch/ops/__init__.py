"""Compiled ops with their Python entry points, autograd and fake kernels.

    flowmatch.ops.correlation(f1, f2, ...)          FlowNet correlation (N×D²×oH×oW)
    flowmatch.ops.spatial_correlation_sample(...)   the same in spatial-correlation-sampler's layout
    flowmatch.ops.patchmatch(desc_a, desc_b, ...)   PatchMatch (flowmatch/ops/patchmatch.py)

Note: `flowmatch.ops.correlation` is the function; the module is flowmatch.ops.correlation in
sys.modules (importlib.import_module("flowmatch.ops.correlation")).
"""
from __future__ import annotations

import importlib
from typing import Any

from .correlation import correlation, correlation_output_shape, spatial_correlation_sample  # noqa: F401

__all__ = ["correlation", "correlation_output_shape", "spatial_correlation_sample", "patchmatch"]


def __getattr__(name: str) -> Any:
    # Ops of other modules load on first use (patchmatch belongs to flowmatch/ops/patchmatch.py).
    if name == "patchmatch":
        return getattr(importlib.import_module("flowmatch.ops.patchmatch"), "patchmatch")
    raise AttributeError(f"module 'flowmatch.ops' has no attribute {name!r}")
