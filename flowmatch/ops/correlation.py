"""FlowNet's correlation layer (the Caffe original, MULTIPLY mode) as a real PyTorch op.

    cost = flowmatch.ops.correlation(f1, f2, pad_size=20, kernel_size=1, max_displacement=20,
                                     stride1=1, stride2=2)          # FlowNetC: N×441×H×W

Under the hood this is torch.ops.flowmatch.correlation (C++/CUDA kernels in csrc/correlation) with
autograd (double backward too) and a fake kernel for torch.compile / FakeTensor / torch.export
(flowmatch/ops/correlation_registration.py), and the
pure-PyTorch reference (flowmatch.ops.correlation_reference) as a fallback when the extension is not
built.  `spatial_correlation_sample` offers the layout of the spatial-correlation-sampler package over
the same kernels.
"""
from __future__ import annotations

import warnings
import torch

from .. import _ext
from .._checks import check_allocation
from ..errors import ExtensionNotBuiltError, InputError
from . import _library
from .correlation_reference import check_params, correlation_reference
from .correlation_shape import correlation_displacements, correlation_output_shape, correlation_output_size

# Multiply-adds one call may cost (~10 minutes on a CPU core; FlowNetC at 512×384, batch 8: 3e9).
_MAX_WORK = 2**46

__all__ = ["correlation", "spatial_correlation_sample", "correlation_output_shape", "extension_available"]

_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
_BACKENDS = ("auto", "extension", "reference", "cupy")
_warned: set = set()


def extension_available() -> bool:
    """True when torch.ops.flowmatch.correlation is registered (flowmatch._C built and loaded)."""
    return _library.load() and hasattr(torch.ops.flowmatch, "correlation")


def _check_inputs(f1: torch.Tensor, f2: torch.Tensor, pad_size: int, kernel_size: int,
                  max_displacement: int, stride1: int, stride2: int) -> None:
    for name, t in (("f1", f1), ("f2", f2)):
        if not isinstance(t, torch.Tensor):
            raise InputError(f"correlation: {name} must be a torch.Tensor, got {type(t).__name__}")
        if t.dim() != 4:
            raise InputError(f"correlation: {name} must be 4-D N×C×H×W, got shape {tuple(t.shape)}")
        if t.dtype not in _DTYPES:
            raise InputError(f"correlation: {name} has dtype {t.dtype}; use float16, bfloat16, float32 or "
                             "float64 (e.g. f.float())")
    if f1.shape != f2.shape:
        raise InputError(f"correlation: f1 and f2 must have the same shape, got {tuple(f1.shape)} and "
                         f"{tuple(f2.shape)}")
    if f1.dtype != f2.dtype:
        raise InputError(f"correlation: f1 and f2 must have the same dtype, got {f1.dtype} and {f2.dtype}")
    if f1.device != f2.device:
        raise InputError(f"correlation: f1 and f2 must be on the same device, got {f1.device} and {f2.device}")
    check_params(pad_size, kernel_size, max_displacement, stride1, stride2)
    n, c, h, w = f1.shape
    if n == 0 or c == 0:
        raise InputError(f"correlation: empty input of shape {tuple(f1.shape)} (N and C must be >= 1)")
    oh, ow = correlation_output_size(h, w, pad_size, kernel_size, max_displacement, stride1)
    if oh < 1 or ow < 1:
        raise InputError(
            f"correlation: output size would be {oh}×{ow} for input {h}×{w} with pad_size={pad_size}, "
            f"kernel_size={kernel_size}, max_displacement={max_displacement}, stride1={stride1}; need "
            "H + 2·pad_size >= 2·max_displacement + kernel_size (raise pad_size or lower max_displacement)")
    if torch.compiler.is_compiling():  # symbolic sizes: the eager call (and the C++ checks) bound them
        return
    # the compiled kernels take every parameter below 2^31 (see correlation_ops.h)
    if max(pad_size, kernel_size, max_displacement, stride1, stride2) >= 2**31:
        raise InputError(f"correlation: pad_size ({pad_size}), kernel_size ({kernel_size}), max_displacement "
                         f"({max_displacement}), stride1 ({stride1}) and stride2 ({stride2}) must be < 2^31")
    d = correlation_displacements(max_displacement, stride2)
    check_allocation(f"correlation: the output N×D²×oH×oW = {n}×{d * d}×{oh}×{ow}",
                     n * d * d * oh * ow * f1.element_size(), f1.device)
    if f1.device.type == "cpu":  # the CPU kernels' scratch rows span the padded width
        check_allocation(f"correlation: scratch rows of width {w + 2 * pad_size + 2 * max_displacement} (pad_size "
                         f"{pad_size})", 12 * kernel_size * c * (w + 2 * pad_size + 2 * max_displacement + kernel_size),
                         f1.device)
    work = n * d * d * oh * ow * kernel_size * kernel_size * c
    if work > _MAX_WORK:
        raise InputError(f"correlation: {n}×{d * d}×{oh}×{ow} outputs of {kernel_size}×{kernel_size}×{c} products "
                         f"each ({work:.3g} multiply-adds) is more than the {_MAX_WORK:.3g} one call may take")


def _warn_once(key: str, message: str) -> None:
    if key not in _warned:
        _warned.add(key)
        warnings.warn(message, RuntimeWarning, stacklevel=3)


def _has_kernel(device: torch.device) -> bool:
    if not extension_available():
        return False
    if device.type == "cpu":
        return True
    key = {"cuda": "CUDA"}.get(device.type)
    has = getattr(torch._C, "_dispatch_has_kernel_for_dispatch_key", None)
    return bool(key and has and has("flowmatch::correlation", key))


def correlation(f1: torch.Tensor, f2: torch.Tensor, pad_size: int = 0, kernel_size: int = 1,
                max_displacement: int = 1, stride1: int = 1, stride2: int = 1,
                backend: str = "auto") -> torch.Tensor:
    """FlowNet correlation cost volume between two feature maps.

    Args:
        f1, f2: N×C×H×W feature maps, same shape, dtype (float16/bfloat16/float32/float64) and
            device.  Any memory layout (channels-last, non-contiguous) is accepted.
        pad_size: zero padding p added on every side of both maps.
        kernel_size: odd patch size k (= 2·kr + 1) compared at each position.
        max_displacement: md, the largest displacement in pixels (of the padded grid).
        stride1: s1, the step between output positions.
        stride2: s2, the step between displacements.
        backend: "auto" (compiled op when built for this device, else the pure-PyTorch reference with a
            one-time warning), "extension", "reference" or "cupy" (CUDA tensors, needs cupy).

    Returns:
        N × D² × oH × oW tensor of f1's dtype, with r = md // s2, D = 2r + 1 and
        oH = floor((H + 2p − 2·md − k) / s1) + 1  (= ceil((H + 2p − 2·(md + kr)) / s1)), same for oW.
        Channel q·D + o (q = vertical index, slow; o = horizontal index, fast) at (i, j) holds
        1/(k²·C) · Σ_c Σ_{a,b<k} P1[c, i·s1+md+a, j·s1+md+b] · P2[c, i·s1+md+a+(q−r)·s2, j·s1+md+b+(o−r)·s2]
        where P1, P2 are f1, f2 zero-padded by p (the window is anchored at its top-left corner).
        Half precision accumulates in float32.

    Raises:
        InputError: mismatched or non-4-D inputs, unsupported dtype, bad parameters, empty output.
        ExtensionNotBuiltError: backend="extension" without a built flowmatch._C.
    """
    if backend not in _BACKENDS:
        raise InputError(f"correlation: backend must be one of {_BACKENDS}, got {backend!r}")
    _check_inputs(f1, f2, pad_size, kernel_size, max_displacement, stride1, stride2)
    args = (pad_size, kernel_size, max_displacement, stride1, stride2)
    if backend == "reference":
        return correlation_reference(f1, f2, *args)
    if backend == "cupy":
        from .correlation_cupy import correlation_cupy
        return correlation_cupy(f1, f2, *args)
    if _has_kernel(f1.device):
        return torch.ops.flowmatch.correlation(f1, f2, *args)
    if backend == "extension":
        if not extension_available():
            _ext.require("flowmatch.ops.correlation(backend='extension')")
        raise ExtensionNotBuiltError(
            f"correlation: flowmatch._C has no kernel for device {f1.device}; rebuild with a CUDA torch "
            "(`make build`), or pass backend='cupy' or backend='reference'")
    if not extension_available():
        why = _ext.load_error() or "flowmatch._C was built without the correlation op"
        _warn_once("noext", "flowmatch.ops.correlation: the compiled extension is not available "
                   f"({why}); using the slower pure-PyTorch reference. {_ext.BUILD_HINT}.")
    else:
        _warn_once(f"nodev-{f1.device.type}", f"flowmatch.ops.correlation: no compiled kernel for device "
                   f"{f1.device}; using the slower pure-PyTorch reference.")
    return correlation_reference(f1, f2, *args)


def _pair(name: str, value) -> int:
    if isinstance(value, (tuple, list)):
        if len(value) != 2 or value[0] != value[1]:
            raise InputError(f"spatial_correlation_sample: {name} must be an int or a pair of equal ints "
                             f"(anisotropic values are not supported), got {value!r}")
        value = value[0]
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(f"spatial_correlation_sample: {name} must be an int, got {value!r}")
    return value


def spatial_correlation_sample(input1: torch.Tensor, input2: torch.Tensor, kernel_size=1, patch_size=1,
                               stride=1, padding=0, dilation=1, dilation_patch=1,
                               backend: str = "auto") -> torch.Tensor:
    """The layout of spatial-correlation-sampler over the same kernels: returns N×P×P×oH×oW (not divided
    by k²·C), P = patch_size (odd), displacement (u−P//2)·dilation_patch vertically for index u and
    likewise horizontally, oH = floor((H + 2·padding − kernel_size) / stride) + 1.

    Equals correlation(f1, f2, pad_size=padding + md, kernel_size, max_displacement=md, stride1=stride,
    stride2=dilation_patch) · k²·C with md = (P // 2)·dilation_patch, reshaped to N×P×P×oH×oW.
    Only dilation = 1 and odd patch sizes are supported (InputError otherwise)."""
    k = _pair("kernel_size", kernel_size)
    patch = _pair("patch_size", patch_size)
    s1 = _pair("stride", stride)
    pad = _pair("padding", padding)
    dil = _pair("dilation", dilation)
    s2 = _pair("dilation_patch", dilation_patch)
    if dil != 1:
        raise InputError(f"spatial_correlation_sample: only dilation=1 is supported, got {dil}")
    if patch < 1 or patch % 2 == 0:
        raise InputError(f"spatial_correlation_sample: patch_size must be a positive odd number, got {patch}")
    if s2 < 1:
        raise InputError(f"spatial_correlation_sample: dilation_patch must be >= 1, got {s2}")
    md = (patch // 2) * s2
    if pad + md < 0:
        raise InputError(f"spatial_correlation_sample: padding ({pad}) must be >= -(patch_size//2)·dilation_patch")
    out = correlation(input1, input2, pad_size=pad + md, kernel_size=k, max_displacement=md, stride1=s1,
                      stride2=s2, backend=backend)
    n, _, oh, ow = out.shape
    return out.view(n, patch, patch, oh, ow) * (k * k * input1.shape[1])
