"""The local correlation lookup written with standard PyTorch ops (grid_sample, multiply, sum).

Used when flowmatch._C is not built, and as the decomposition the ONNX export substitutes for the
compiled op (flowmatch.ops.onnx), so it must stay free of data-dependent Python control flow.  It
samples f2 at the (2r+1)² offsets with grid_sample, one horizontal offset at a time, so its peak memory
is (2r+1) times one f2-sized map at f1's resolution, not the all-pairs volume.  Autograd (also w.r.t.
coords) comes from PyTorch.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["local_correlation_torch"]


def local_correlation_torch(f1: torch.Tensor, f2: torch.Tensor, coords: torch.Tensor, radius: int) -> torch.Tensor:
    """One level of flowmatch.ops.local_correlation: f1 N×C×H×W, f2 N×C×H2×W2, coords N×2×H×W (x then y,
    pixels of f2) -> N×(2r+1)²×H×W, channel ox·(2r+1) + oy (x offset slow, as RAFT), scaled by 1/√C.
    float16/bfloat16 are computed in float32 and cast back."""
    n, c, h, w = f1.shape
    h2, w2 = f2.shape[-2], f2.shape[-1]
    k = 2 * radius + 1
    work = f1.dtype if f1.dtype in (torch.float32, torch.float64) else torch.float32
    a, b, xy = f1.to(work), f2.to(work), coords.to(work)
    offsets = torch.arange(-radius, radius + 1, dtype=work, device=f1.device)
    # align_corners=False with (2x + 1)/W2 − 1 puts pixel x exactly at x (the same zero-padded bilinear
    # sampling as RAFT's align_corners=True on 2x/(W2 − 1) − 1, and also defined for W2 = 1).
    gy = (2 * (xy[:, 1, None] + offsets.view(1, k, 1, 1)) + 1) / h2 - 1  # N×K×H×W, every y offset
    planes = []
    for ox in range(k):
        gx = ((2 * (xy[:, 0] + (ox - radius)) + 1) / w2 - 1).unsqueeze(1).expand(n, k, h, w)
        grid = torch.stack((gx, gy), dim=-1).reshape(n, k * h, w, 2)
        sampled = F.grid_sample(b, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        planes.append((sampled.view(n, c, k, h, w) * a.unsqueeze(2)).sum(dim=1))  # N×K(oy)×H×W
    out = torch.cat(planes, dim=1) * (1.0 / math.sqrt(c))
    return out.to(f1.dtype)
