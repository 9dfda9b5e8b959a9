"""nn.Module wrappers of flowmatch's ops (thin: the functions in flowmatch.ops do the work)."""
from __future__ import annotations

import torch
from torch import nn

from .ops.correlation import correlation, spatial_correlation_sample

__all__ = ["Correlation", "SpatialCorrelationSampler"]


class Correlation(nn.Module):
    """FlowNet correlation layer: forward(f1, f2) with N×C×H×W maps -> N×D²×oH×oW cost volume,
    D = 2·(max_displacement // stride2) + 1, oH = floor((H + 2·pad − 2·md − k) / stride1) + 1,
    channel = dy_index·D + dx_index.  See flowmatch.ops.correlation for the exact semantics.
    FlowNetC: Correlation(pad_size=20, kernel_size=1, max_displacement=20, stride1=1, stride2=2)."""

    def __init__(self, pad_size: int = 0, kernel_size: int = 1, max_displacement: int = 1, stride1: int = 1,
                 stride2: int = 1, backend: str = "auto") -> None:
        super().__init__()
        self.pad_size, self.kernel_size, self.max_displacement = pad_size, kernel_size, max_displacement
        self.stride1, self.stride2, self.backend = stride1, stride2, backend

    def forward(self, f1: torch.Tensor, f2: torch.Tensor) -> torch.Tensor:
        return correlation(f1, f2, self.pad_size, self.kernel_size, self.max_displacement, self.stride1,
                           self.stride2, backend=self.backend)

    def extra_repr(self) -> str:
        return (f"pad_size={self.pad_size}, kernel_size={self.kernel_size}, "
                f"max_displacement={self.max_displacement}, stride1={self.stride1}, stride2={self.stride2}")


class SpatialCorrelationSampler(nn.Module):
    """spatial-correlation-sampler's module layout: forward(input1, input2) -> N×P×P×oH×oW (not normalised).
    Only dilation=1 and odd patch_size (see flowmatch.ops.spatial_correlation_sample)."""

    def __init__(self, kernel_size=1, patch_size=1, stride=1, padding=0, dilation=1, dilation_patch=1) -> None:
        super().__init__()
        self.kernel_size, self.patch_size, self.stride = kernel_size, patch_size, stride
        self.padding, self.dilation, self.dilation_patch = padding, dilation, dilation_patch

    def forward(self, input1: torch.Tensor, input2: torch.Tensor) -> torch.Tensor:
        return spatial_correlation_sample(input1, input2, self.kernel_size, self.patch_size, self.stride,
                                          self.padding, self.dilation, self.dilation_patch)
