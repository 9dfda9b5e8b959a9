"""Compiled ops with their Python entry points, autograd and fake kernels.

    flowmatch.ops.correlation(f1, f2, ...)          FlowNet correlation (N×D²×oH×oW)
    flowmatch.ops.spatial_correlation_sample(...)   the same in spatial-correlation-sampler's layout
    flowmatch.ops.patchmatch(desc_a, desc_b, ...)   PatchMatch (flowmatch/ops/patchmatch.py)
    flowmatch.ops.edge_aware_interpolate(...)       sparse-to-dense flow (flowmatch/ops/interpolation.py)

Note: `flowmatch.ops.correlation` is the function; the module is flowmatch.ops.correlation in
sys.modules (importlib.import_module("flowmatch.ops.correlation")).  Each op's schema is in
csrc/<op>/<op>.cpp, its kernels in csrc/<op>/cpu/ and csrc/<op>/cuda/, its fake kernel and autograd
in flowmatch/ops/<op>_registration.py (loaded by flowmatch/ops/_library.py).
"""
from __future__ import annotations

from . import _library
from .correlation import correlation, spatial_correlation_sample  # noqa: F401
from .correlation_shape import correlation_output_shape  # noqa: F401
from .local_correlation import feature_pyramid, local_correlation  # noqa: F401
from .interpolation import edge_aware_interpolate, edge_cost_map  # noqa: F401
from .patchmatch import patchmatch, patchmatch_bruteforce  # noqa: F401

__all__ = ["correlation", "correlation_output_shape", "spatial_correlation_sample", "patchmatch",
           "patchmatch_bruteforce", "edge_aware_interpolate", "edge_cost_map"]

# Fake kernels and autograd of the compiled ops exist as soon as flowmatch.ops is imported (for
# callers of torch.ops.flowmatch.* directly); nothing happens when the extension is not built.
_library.load()
