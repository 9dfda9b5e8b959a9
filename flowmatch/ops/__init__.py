"""Compiled ops with their Python entry points, autograd and fake kernels.

    flowmatch.ops.correlation(f1, f2, ...)          FlowNet correlation (N×D²×oH×oW)
    flowmatch.ops.spatial_correlation_sample(...)   the same in spatial-correlation-sampler's layout
    flowmatch.ops.patchmatch(desc_a, desc_b, ...)   PatchMatch (flowmatch/ops/patchmatch.py)
    flowmatch.ops.edge_aware_interpolate(...)       sparse-to-dense flow (flowmatch/ops/interpolation.py)

Note: `flowmatch.ops.correlation` is the function; the module is flowmatch.ops.correlation in
sys.modules (importlib.import_module("flowmatch.ops.correlation")).
"""
from __future__ import annotations

import importlib
from typing import Any

from .correlation import correlation, correlation_output_shape, spatial_correlation_sample  # noqa: F401
from .local_correlation import feature_pyramid, local_correlation  # noqa: F401
# Imported eagerly: importing the submodule flowmatch.ops.patchmatch would otherwise replace a lazily
# provided function of the same name with the module.
from .interpolation import edge_aware_interpolate, edge_cost_map  # noqa: F401,E402
from .patchmatch import patchmatch, patchmatch_bruteforce  # noqa: F401,E402

__all__ = ["correlation", "correlation_output_shape", "spatial_correlation_sample", "patchmatch",
           "patchmatch_bruteforce", "edge_aware_interpolate", "edge_cost_map"]


def __getattr__(name: str) -> Any:
    # Ops of other modules load on first use (patchmatch belongs to flowmatch/ops/patchmatch.py).
    if name == "patchmatch":
        return getattr(importlib.import_module("flowmatch.ops.patchmatch"), "patchmatch")
    raise AttributeError(f"module 'flowmatch.ops' has no attribute {name!r}")
