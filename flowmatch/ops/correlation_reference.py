"""Pure-PyTorch FlowNet correlation: the test oracle and the fallback when flowmatch._C is missing.

Written independently of the compiled kernels: zero-pad both maps, shift the second one by every
displacement, multiply, average over channels, then sum-pool the k×k window with stride1.
Autograd (including double backward) comes from PyTorch itself.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import InputError
from .correlation_shape import correlation_displacements, correlation_output_size

output_size = correlation_output_size  # the older name


def check_params(pad_size: int, kernel_size: int, max_displacement: int, stride1: int,
                 stride2: int) -> None:
    """Raise InputError for parameters the Caffe layer does not define."""
    for name, value in (("pad_size", pad_size), ("kernel_size", kernel_size),
                        ("max_displacement", max_displacement), ("stride1", stride1), ("stride2", stride2)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise InputError(f"correlation: {name} must be an int, got {type(value).__name__} {value!r}")
    if pad_size < 0 or max_displacement < 0:
        raise InputError(f"correlation: pad_size ({pad_size}) and max_displacement ({max_displacement}) "
                         "must be >= 0")
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise InputError(f"correlation: kernel_size must be a positive odd number, got {kernel_size}")
    if stride1 < 1 or stride2 < 1:
        raise InputError(f"correlation: stride1 ({stride1}) and stride2 ({stride2}) must be >= 1")


def correlation_reference(f1: torch.Tensor, f2: torch.Tensor, pad_size: int = 0, kernel_size: int = 1,
                          max_displacement: int = 1, stride1: int = 1, stride2: int = 1) -> torch.Tensor:
    """FlowNet correlation by pad + shift + multiply + mean; see flowmatch.ops.correlation for the
    semantics.  f1, f2: N×C×H×W (same shape, dtype, device); returns N×D²×oH×oW with
    D = 2·(max_displacement // stride2) + 1 and channel = dy_index·D + dx_index.
    Half-precision inputs are computed in float32 and cast back."""
    k, md, s1, s2, p = kernel_size, max_displacement, stride1, stride2, pad_size
    n, c, h, w = f1.shape
    oh, ow = correlation_output_size(h, w, p, k, md, s1)
    r = md // s2
    d = correlation_displacements(md, s2)
    work = f1.dtype if f1.dtype in (torch.float32, torch.float64) else torch.float32
    p1 = F.pad(f1.to(work), (p, p, p, p))
    p2 = F.pad(f2.to(work), (p, p, p, p))
    # Rows/cols of the product map that some output window reads: [md, md + span).
    span_h, span_w = (oh - 1) * s1 + k, (ow - 1) * s1 + k
    a = p1[:, :, md:md + span_h, md:md + span_w]
    planes = []
    for q in range(d):
        dy = (q - r) * s2
        for o in range(d):
            dx = (o - r) * s2
            b = p2[:, :, md + dy:md + dy + span_h, md + dx:md + dx + span_w]
            prod = (a * b).mean(dim=1, keepdim=True)  # N×1×span_h×span_w, already divided by C
            # k×k window anchored at its top-left corner, mean over k², stride s1.
            planes.append(F.avg_pool2d(prod, kernel_size=k, stride=s1) if (k > 1 or s1 > 1) else prod)
    out = torch.cat(planes, dim=1)
    return out.to(f1.dtype)


def correlation_banded_gemm(f1: torch.Tensor, f2: torch.Tensor, pad_size: int = 0, max_displacement: int = 1,
                            stride2: int = 1) -> torch.Tensor:
    """The usual pure-PyTorch speed-up (kernel_size = stride1 = 1 only): one matmul per output row and
    vertical shift over all column pairs, then the needed diagonals read out.  Kept as the benchmark
    baseline; same output as correlation_reference."""
    p, md, s2 = pad_size, max_displacement, stride2
    n, c, h, w = f1.shape
    oh, ow = correlation_output_size(h, w, p, 1, md, 1)
    r = md // s2
    d = correlation_displacements(md, s2)
    p1 = F.pad(f1, (p, p, p, p))
    a = p1[:, :, md:md + oh, md:md + ow].permute(0, 2, 3, 1).contiguous()  # N×oH×oW×C
    p2 = F.pad(f2, (p, p, p, p)).permute(0, 2, 1, 3).contiguous()  # N×Hp×C×Wp, rows ready for matmul
    wp = p2.shape[-1]
    out = f1.new_empty(n, d, d, oh, ow)
    for q in range(d):
        dy = (q - r) * s2
        full = torch.matmul(a, p2[:, md + dy:md + dy + oh])  # N×oH×oW×Wp: every column pair of the row
        # Diagonals as a strided view: element (n, i, j, o) sits at column j + md + (o − r)·s2.
        st = full.stride()
        diag = full.as_strided((n, oh, ow, d), (st[0], st[1], st[2] + 1, s2),
                               full.storage_offset() + md - r * s2)
        out[:, q] = diag.permute(0, 3, 1, 2)
    return out.reshape(n, d * d, oh, ow) / c
