"""RAFT-style correlation lookup without the all-pairs volume.

    levels = flowmatch.ops.feature_pyramid(fmap2, num_levels=4)       # RAFT: avg-pooled by 2 per level
    corr = flowmatch.ops.local_correlation(fmap1, levels, coords, radius=4)   # N×(4·81)×H×W

At every pixel of f1 the (2r+1)² dot products of its feature vector with f2 bilinearly sampled on the
integer offsets around `coords` (zero outside the image), scaled by 1/√C: exactly what RAFT's
CorrBlock(fmap1, fmap2, num_levels, radius)(coords) returns, but in O(N·H·W·(2r+2)²·C) time and with
no H·W × H2·W2 volume in memory.  Under the hood this is torch.ops.flowmatch.local_correlation
(C++/CUDA kernels in csrc/local_correlation) with autograd for f1, f2 and coords, double backward for
f1 and f2, and a fake kernel for torch.compile / torch.export (local_correlation_registration.py); without the compiled extension the
pure-PyTorch formulation (flowmatch.ops.local_correlation_torch) runs instead.
"""
from __future__ import annotations

import warnings
from typing import Sequence, Union

import torch
import torch.nn.functional as F

from .. import _ext
from . import _library
from ..errors import ExtensionNotBuiltError, InputError
from .local_correlation_torch import local_correlation_torch

__all__ = ["local_correlation", "feature_pyramid", "extension_available"]

MAX_RADIUS = 15  # csrc/local_correlation/local_correlation.h: LC_MAX_RADIUS
_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
_BACKENDS = ("auto", "extension", "reference")
_warned: set = set()

Pyramid = Union[torch.Tensor, Sequence[torch.Tensor]]


def extension_available() -> bool:
    """True when torch.ops.flowmatch.local_correlation is registered (flowmatch._C built and loaded)."""
    return _library.load() and hasattr(torch.ops.flowmatch, "local_correlation")


def _has_kernel(device: torch.device) -> bool:
    if not extension_available():
        return False
    if device.type == "cpu":
        return True
    has = getattr(torch._C, "_dispatch_has_kernel_for_dispatch_key", None)
    return bool(device.type == "cuda" and has and has("flowmatch::local_correlation", "CUDA"))


def feature_pyramid(fmap: torch.Tensor, num_levels: int) -> list[torch.Tensor]:
    """[fmap, pool(fmap), pool(pool(fmap)), ...] with pool = avg_pool2d(2, stride 2) (odd sizes floor),
    num_levels maps in all.  Correlating with level l equals RAFT's level-l pooled correlation volume,
    since pooling f2 and taking dot products commute."""
    if isinstance(num_levels, bool) or not isinstance(num_levels, int) or num_levels < 1:
        raise InputError(f"feature_pyramid: num_levels must be an int >= 1, got {num_levels!r}")
    if not isinstance(fmap, torch.Tensor) or fmap.dim() != 4:
        raise InputError(f"feature_pyramid: fmap must be a 4-D N×C×H×W tensor, got "
                         f"{getattr(fmap, 'shape', type(fmap).__name__)}")
    h, w = fmap.shape[-2:]
    if min(h, w) >> (num_levels - 1) < 1:
        raise InputError(f"feature_pyramid: a {h}×{w} map cannot be halved {num_levels - 1} times; "
                         "use fewer levels or larger maps")
    levels = [fmap]
    for _ in range(num_levels - 1):
        levels.append(F.avg_pool2d(levels[-1], 2, stride=2))
    return levels


def _check(f1: torch.Tensor, levels: list, coords: torch.Tensor, radius: int) -> None:
    if not isinstance(f1, torch.Tensor) or f1.dim() != 4:
        raise InputError(f"local_correlation: f1 must be a 4-D N×C×H×W tensor, got "
                         f"{getattr(f1, 'shape', type(f1).__name__)}")
    if f1.dtype not in _DTYPES:
        raise InputError(f"local_correlation: f1 has dtype {f1.dtype}; use float16, bfloat16, float32 or float64")
    n, c, h, w = f1.shape
    if n == 0 or c == 0:
        raise InputError(f"local_correlation: empty input of shape {tuple(f1.shape)} (N and C must be >= 1)")
    if not levels:
        raise InputError("local_correlation: f2 must be a tensor or a non-empty list of pyramid levels")
    for i, f2 in enumerate(levels):
        name = f"f2[{i}]" if len(levels) > 1 else "f2"
        if not isinstance(f2, torch.Tensor) or f2.dim() != 4:
            raise InputError(f"local_correlation: {name} must be a 4-D N×C×H2×W2 tensor, got "
                             f"{getattr(f2, 'shape', type(f2).__name__)}")
        if f2.shape[0] != n or f2.shape[1] != c:
            raise InputError(f"local_correlation: {name} has shape {tuple(f2.shape)}; N and C must match "
                             f"f1's {tuple(f1.shape)}")
        if f2.shape[2] < 1 or f2.shape[3] < 1:
            raise InputError(f"local_correlation: {name} is empty ({tuple(f2.shape)})")
        if f2.dtype != f1.dtype or f2.device != f1.device:
            raise InputError(f"local_correlation: {name} is {f2.dtype} on {f2.device}, f1 is {f1.dtype} on "
                             f"{f1.device}; they must match")
    if not isinstance(coords, torch.Tensor) or tuple(coords.shape) != (n, 2, h, w):
        raise InputError(f"local_correlation: coords must be N×2×H×W = {(n, 2, h, w)} (x then y, pixels), got "
                         f"{getattr(coords, 'shape', type(coords).__name__)}")
    if not coords.is_floating_point():
        raise InputError(f"local_correlation: coords must be floating point, got {coords.dtype}")
    if coords.device != f1.device:
        raise InputError(f"local_correlation: coords is on {coords.device}, f1 on {f1.device}")
    if isinstance(radius, bool) or not isinstance(radius, int) or not 0 <= radius <= MAX_RADIUS:
        raise InputError(f"local_correlation: radius must be an int in [0, {MAX_RADIUS}], got {radius!r}")


def _warn_once(key: str, message: str) -> None:
    if key not in _warned:
        _warned.add(key)
        warnings.warn(message, RuntimeWarning, stacklevel=3)


def local_correlation(f1: torch.Tensor, f2: Pyramid, coords: torch.Tensor, radius: int = 4,
                      backend: str = "auto") -> torch.Tensor:
    """Correlation of f1 with f2 sampled around `coords`, RAFT's lookup, without the all-pairs volume.

    Args:
        f1: N×C×H×W features of frame 1 (float16/bfloat16/float32/float64).
        f2: N×C×H2×W2 features of frame 2, or a list of pyramid levels (feature_pyramid: level l is
            f2 avg-pooled by 2, l times); same N, C, dtype and device as f1.  Sizes may differ from f1.
        coords: N×2×H×W sampling positions, x then y, in pixels of f2 (of level 0 for a pyramid: level
            l is sampled at coords / 2**l, as RAFT does).  Typically pixel grid + current flow.
            float16 coords are used in float32.
        radius: r, 0 <= r <= 15; (2r + 1)² samples per level.
        backend: "auto" (compiled op when built for this device, else the pure-PyTorch formulation with
            a one-time warning), "extension" or "reference" (the pure-PyTorch formulation).

    Returns:
        N × (L·(2r+1)²) × H × W in f1's dtype (L = number of levels, level-major).  Within a level,
        channel ox·(2r+1) + oy (RAFT's CorrBlock order: the x offset is the SLOW index) holds
            (1/√C) · Σ_c f1[n, c, y, x] · f2_l[n, c](cx/2^l + ox − r, cy/2^l + oy − r)
        with f2_l(·) bilinear interpolation on pixel centres, zero outside [0, W2) × [0, H2) (each of
        the four neighbours that lies outside contributes zero: grid_sample's zeros padding with
        align_corners=True on pixel coordinates, as RAFT).  Non-finite coordinates give zeros.

    Gradients: f1, f2 and coords (first order; the coords derivative is one-sided at integer
    positions, as grid_sample's); second order for f1 and f2 when coords does not require grad.

    Raises:
        InputError: bad shapes, dtypes, devices or radius.
        ExtensionNotBuiltError: backend="extension" without a compiled kernel for the device.
    """
    if backend not in _BACKENDS:
        raise InputError(f"local_correlation: backend must be one of {_BACKENDS}, got {backend!r}")
    levels = [f2] if isinstance(f2, torch.Tensor) else list(f2) if isinstance(f2, (list, tuple)) else None
    if levels is None:
        raise InputError(f"local_correlation: f2 must be a tensor or a list of tensors, got {type(f2).__name__}")
    _check(f1, levels, coords, radius)
    if coords.dtype not in (torch.float32, torch.float64):
        coords = coords.float()
    use_ext = backend != "reference" and _has_kernel(f1.device)
    if backend == "extension" and not use_ext:
        if not extension_available():
            _ext.require("flowmatch.ops.local_correlation(backend='extension')")
        raise ExtensionNotBuiltError(f"local_correlation: flowmatch._C has no kernel for device {f1.device}; "
                                     "rebuild with a CUDA torch (`make build`) or pass backend='reference'")
    if backend == "auto" and not use_ext:
        _warn_once(f"noext-{f1.device.type}", "flowmatch.ops.local_correlation: no compiled kernel for "
                   f"{f1.device} ({_ext.load_error() or 'not registered'}); using the pure-PyTorch formulation. "
                   f"{_ext.BUILD_HINT}.")
    fn = torch.ops.flowmatch.local_correlation if use_ext else local_correlation_torch
    outs = [fn(f1, level, coords if i == 0 else coords * (1.0 / 2 ** i), radius) for i, level in enumerate(levels)]
    return outs[0] if len(outs) == 1 else torch.cat(outs, dim=1)
