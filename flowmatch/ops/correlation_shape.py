"""The correlation op's output size: the one Python copy of the formula (the C++ one is
corr_out_size / corr_make_params in csrc/correlation/correlation.h; test_correlation.py pins the two
together).  Used by the reference, the public op, the fake kernel and the cupy backend; plain
integer arithmetic, so it also works on the symbolic sizes of torch.compile."""
from __future__ import annotations

from typing import Sequence

__all__ = ["correlation_output_size", "correlation_displacements", "correlation_output_shape"]


def correlation_output_size(height, width, pad_size: int, kernel_size: int, max_displacement: int,
                            stride1: int) -> tuple:
    """(oH, oW) = floor((H + 2·pad − 2·max_displacement − kernel_size) / stride1) + 1, or 0 when the
    window does not fit (same for W)."""
    def one(n):
        span = n + 2 * pad_size - 2 * max_displacement - kernel_size
        return span // stride1 + 1 if span >= 0 else 0

    return one(height), one(width)


def correlation_displacements(max_displacement: int, stride2: int) -> int:
    """D, the displacements per axis: 2·(max_displacement // stride2) + 1."""
    return 2 * (max_displacement // stride2) + 1


def correlation_output_shape(shape: Sequence[int], pad_size: int = 0, kernel_size: int = 1,
                             max_displacement: int = 1, stride1: int = 1,
                             stride2: int = 1) -> tuple[int, int, int, int]:
    """(N, D², oH, oW) for an N×C×H×W input."""
    n, _, h, w = shape
    oh, ow = correlation_output_size(h, w, pad_size, kernel_size, max_displacement, stride1)
    d = correlation_displacements(max_displacement, stride2)
    return n, d * d, oh, ow
