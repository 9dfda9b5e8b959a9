"""cupy backend of the correlation op: the same CUDA kernel bodies as the compiled extension
(csrc/common/host_device.h + csrc/correlation/correlation.h + correlation_kernels.cuh), compiled at run time with NVRTC through
cupy, for GPU users who cannot build flowmatch._C.  Use flowmatch.ops.correlation(..., backend="cupy").

Needs a CUDA device and cupy (`pip install cupy-cuda12x`); float16/bfloat16 are computed in float32.
First-order autograd only (the compiled op also supports double backward).
"""
from __future__ import annotations

import functools
import os

import torch

from ..errors import InputError, MethodUnavailableError
from .correlation_shape import correlation_displacements, correlation_output_shape

_CSRC = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                     "csrc", "correlation")
_THREADS = 256  # FM_FWD_THREADS in correlation_kernels.cuh

# extern "C" entry points over the shared template bodies (cupy launches plain C names).
_WRAPPERS = r"""
using namespace flowmatch::corr;
#define FM_PARAMS long long N, long long C, long long H, long long W, long long pad, long long k, \
                  long long md, long long s1, long long s2
#define FM_MAKE corr_make_params(N, C, H, W, pad, k, md, s1, s2)
extern "C" __global__ void fm_corr_fwd_f32(const float* f1, const float* f2, float* out, FM_PARAMS, int TW,
                                           int OC, int CC, int nochunk) {
  corr_fwd_body<float, float>(f1, f2, out, FM_MAKE, TW, OC, CC, nochunk);
}
extern "C" __global__ void fm_corr_fwd_f64(const double* f1, const double* f2, double* out, FM_PARAMS, int TW,
                                           int OC, int CC, int nochunk) {
  corr_fwd_body<double, double>(f1, f2, out, FM_MAKE, TW, OC, CC, nochunk);
}
extern "C" __global__ void fm_corr_bwd_f32(const float* grad, const float* other, float* grad_in, FM_PARAMS,
                                           int which) {
  corr_bwd_body<float, float>(grad, other, grad_in, FM_MAKE, which);
}
extern "C" __global__ void fm_corr_bwd_f64(const double* grad, const double* other, double* grad_in, FM_PARAMS,
                                           int which) {
  corr_bwd_body<double, double>(grad, other, grad_in, FM_MAKE, which);
}
"""
KERNEL_NAMES = ("fm_corr_fwd_f32", "fm_corr_fwd_f64", "fm_corr_bwd_f32", "fm_corr_bwd_f64")


def kernel_source() -> str:
    """The full NVRTC source: correlation.h, correlation_kernels.cuh and the extern "C" wrappers."""
    parts = []
    for name in (os.path.join("..", "common", "host_device.h"), "correlation.h", "correlation_kernels.cuh"):
        path = os.path.join(_CSRC, name)
        if not os.path.exists(path):
            raise MethodUnavailableError(f"correlation (cupy): kernel source {path} not found; the cupy backend "
                                         "runs from a source checkout of flowmatch")
        with open(path, encoding="utf-8") as fh:
            # The headers include each other by name; inline them instead (NVRTC has no include path,
            # and #pragma once keeps the order above the only copy).
            parts.append("\n".join(line for line in fh.read().splitlines()
                                   if not line.startswith('#include "')))
    return "\n".join(parts) + _WRAPPERS


@functools.lru_cache(maxsize=None)
def _module():
    try:
        import cupy
    except ImportError as exc:
        raise MethodUnavailableError("correlation(backend='cupy') needs cupy: pip install cupy-cuda12x "
                                     f"({exc})") from exc
    return cupy, cupy.RawModule(code=kernel_source(), options=("-std=c++17",))


def _fwd_config(p: dict, acc_bytes: int) -> tuple[int, int, int, int]:
    # Mirrors corr_fwd_config in correlation_kernels.cuh (48 KiB of shared memory for the tiles).
    d = correlation_displacements(p["md"], p["s2"])
    cap = _THREADS * 4
    oc = min(d, cap)
    tw = max(1, min(32, cap // oc))
    w1 = (tw - 1) * p["s1"] + p["k"]
    w2 = w1 + (oc - 1) * p["s2"]
    cc = max(1, min(32, 49152 // acc_bytes // (p["k"] * (w1 + w2))))
    return tw, oc, cc, (d + oc - 1) // oc


def _launch(name: str, grid, block, args, smem: int = 0) -> None:
    cupy, mod = _module()
    kernel = mod.get_function(name)
    stream = cupy.cuda.ExternalStream(torch.cuda.current_stream().cuda_stream)
    conv = [cupy.asarray(a) if isinstance(a, torch.Tensor) else a for a in args]
    with stream:
        kernel(grid, block, tuple(conv), shared_mem=smem)


def _params(f1: torch.Tensor, pad: int, k: int, md: int, s1: int, s2: int) -> dict:
    n, c, h, w = f1.shape
    return dict(N=n, C=c, H=h, W=w, pad=pad, k=k, md=md, s1=s1, s2=s2)


def _scalars(p: dict):
    import numpy as np
    return [np.int64(p[key]) for key in ("N", "C", "H", "W", "pad", "k", "md", "s1", "s2")]


def _forward(f1: torch.Tensor, f2: torch.Tensor, p: dict) -> torch.Tensor:
    import numpy as np
    n, d2, oh, ow = correlation_output_shape(f1.shape, p["pad"], p["k"], p["md"], p["s1"], p["s2"])
    d = correlation_displacements(p["md"], p["s2"])
    out = f1.new_empty((n, d2, oh, ow))
    tw, oc, cc, nochunk = _fwd_config(p, f1.element_size())
    w1 = (tw - 1) * p["s1"] + p["k"]
    smem = cc * p["k"] * (2 * w1 + (oc - 1) * p["s2"]) * f1.element_size()
    suffix = "f64" if f1.dtype == torch.float64 else "f32"
    grid = ((ow + tw - 1) // tw, oh, p["N"] * d * nochunk)
    _launch(f"fm_corr_fwd_{suffix}", grid, (_THREADS,),
            [f1, f2, out, *_scalars(p), np.int32(tw), np.int32(oc), np.int32(cc), np.int32(nochunk)], smem)
    return out


def _backward(grad: torch.Tensor, f1: torch.Tensor, f2: torch.Tensor, p: dict):
    import numpy as np
    suffix = "f64" if f1.dtype == torch.float64 else "f32"
    g1, g2 = torch.empty_like(f1), torch.empty_like(f2)
    blocks = min((f1.numel() + 255) // 256, 65535 * 32)
    for which, other, dst in ((0, f2, g1), (1, f1, g2)):
        _launch(f"fm_corr_bwd_{suffix}", (blocks,), (256,), [grad, other, dst, *_scalars(p), np.int32(which)])
    return g1, g2


class _CupyCorrelation(torch.autograd.Function):
    @staticmethod
    def forward(ctx, f1, f2, p):
        ctx.save_for_backward(f1, f2)
        ctx.p = p
        return _forward(f1, f2, p)

    @staticmethod
    def backward(ctx, grad):
        f1, f2 = ctx.saved_tensors
        g1, g2 = _backward(grad.contiguous(), f1, f2, ctx.p)
        return g1, g2, None


def correlation_cupy(f1: torch.Tensor, f2: torch.Tensor, pad_size: int, kernel_size: int, max_displacement: int,
                     stride1: int, stride2: int) -> torch.Tensor:
    """flowmatch.ops.correlation on CUDA tensors through cupy (inputs already validated by the caller)."""
    if not f1.is_cuda:
        raise InputError(f"correlation(backend='cupy') needs CUDA tensors, got device {f1.device}; "
                         "use backend='auto' on the CPU")
    dtype = f1.dtype
    work = dtype if dtype in (torch.float32, torch.float64) else torch.float32
    p = _params(f1, pad_size, kernel_size, max_displacement, stride1, stride2)
    out = _CupyCorrelation.apply(f1.to(work).contiguous(), f2.to(work).contiguous(), p)
    return out.to(dtype)
