"""Drop-in replacements for the correlation layers of other code bases, over flowmatch's ops.

    RAFT (princeton-vl/RAFT, core/corr.py):
        corr_fn = CorrBlock(fmap1, fmap2, num_levels=4, radius=4)        # or AlternateCorrBlock
        corr = corr_fn(coords1)                                           # N×(4·81)×H×W
    mmcv (mmcv.ops.Correlation):
        MMCVCorrelation(kernel_size=1, max_displacement=4, stride=1, padding=0, dilation=1,
                        dilation_patch=1)(input1, input2)                  # N×P×P×oH×oW
    flownet2-pytorch (networks/correlation_package/correlation.py):
        FlowNet2Correlation(pad_size=20, kernel_size=1, max_displacement=20, stride1=1, stride2=2,
                            corr_multiply=1)(input1, input2)               # N×441×oH×oW

The spatial-correlation-sampler layout is flowmatch.ops.spatial_correlation_sample.  Each class
reproduces the peer's forward values and output layout (tests/ops/test_adapters.py compares them with
transcriptions of the peers' code); gradients are flowmatch's exact ones.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InputError
from .correlation import correlation
from .local_correlation import feature_pyramid, local_correlation

__all__ = ["CorrBlock", "AlternateCorrBlock", "MMCVCorrelation", "mmcv_correlation", "FlowNet2Correlation",
           "flownet2_correlation"]


class CorrBlock:
    """RAFT's CorrBlock(fmap1, fmap2, num_levels, radius): call with coords N×2×H×W (x then y, pixels of
    the feature maps) -> N × (num_levels·(2r+1)²) × H × W float32, level-major, channel ox·(2r+1) + oy
    within a level (x offset slow, as RAFT), each the dot product over C of fmap1 with fmap2's level
    sampled bilinearly at coords/2^l + offset (zero outside), divided by √C.

    RAFT builds the H·W × H·W volume and pools it; this pools fmap2 instead (the same numbers, by
    linearity) and looks up with flowmatch.ops.local_correlation: no volume is stored."""

    def __init__(self, fmap1: torch.Tensor, fmap2: torch.Tensor, num_levels: int = 4, radius: int = 4,
                 backend: str = "auto") -> None:
        if not isinstance(fmap1, torch.Tensor) or not isinstance(fmap2, torch.Tensor) or fmap1.shape != fmap2.shape:
            raise InputError(f"{type(self).__name__}: fmap1 and fmap2 must be tensors of one N×C×H×W shape, got "
                             f"{getattr(fmap1, 'shape', fmap1)} and {getattr(fmap2, 'shape', fmap2)}")
        self.num_levels, self.radius, self.backend = num_levels, radius, backend
        self.fmap1 = fmap1
        self.pyramid = feature_pyramid(fmap2, num_levels)

    def __call__(self, coords: torch.Tensor) -> torch.Tensor:
        return local_correlation(self.fmap1, self.pyramid, coords, self.radius, backend=self.backend).float()


class AlternateCorrBlock(CorrBlock):
    """RAFT's AlternateCorrBlock (the alt_cuda_corr path): the same values and layout as CorrBlock, which
    is what alt_cuda_corr computes without the volume; the result keeps the feature maps' dtype."""

    def __call__(self, coords: torch.Tensor) -> torch.Tensor:
        return local_correlation(self.fmap1, self.pyramid, coords, self.radius, backend=self.backend)


def _int_pair(layer: str, name: str, value, minimum: int) -> int:
    if isinstance(value, (tuple, list)):
        if len(value) != 2 or value[0] != value[1]:
            raise InputError(f"{layer}: {name} must be an int or a pair of equal ints (anisotropic values are "
                             f"not supported), got {value!r}")
        value = value[0]
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InputError(f"{layer}: {name} must be an int >= {minimum}, got {value!r}")
    return value


def mmcv_correlation(input1: torch.Tensor, input2: torch.Tensor, kernel_size=1, max_displacement: int = 1,
                     stride=1, padding=0, dilation=1, dilation_patch=1) -> torch.Tensor:
    """mmcv.ops.Correlation's forward: N × P × P × oH × oW with P = 2·max_displacement + 1,
        out[n, ph, pw, h, w] = Σ_{i,j < k} Σ_c in1[n, c, y, x] · in2[n, c, y + dy, x + dx]
    where y = h·stride − padding + i·dilation (x likewise), dy = (ph − max_displacement)·dilation_patch
    (dx likewise), zero where either position is outside the image, NOT normalised;
    oH = floor((H + 2·padding − dilation·(k − 1) − 1) / stride) + 1.  Ints or pairs of equal ints."""
    layer = "mmcv_correlation"
    k = _int_pair(layer, "kernel_size", kernel_size, 1)
    s = _int_pair(layer, "stride", stride, 1)
    pad = _int_pair(layer, "padding", padding, 0)
    dil = _int_pair(layer, "dilation", dilation, 1)
    dil_p = _int_pair(layer, "dilation_patch", dilation_patch, 1)
    md = _int_pair(layer, "max_displacement", max_displacement, 0)
    if not isinstance(input1, torch.Tensor) or input1.dim() != 4:
        raise InputError(f"{layer}: input1 must be a 4-D N×C×H×W tensor, got {getattr(input1, 'shape', input1)}")
    n, c, h, w = input1.shape
    span = dil * (k - 1) + 1
    oh, ow = (h + 2 * pad - span) // s + 1, (w + 2 * pad - span) // s + 1
    if h + 2 * pad < span or w + 2 * pad < span:
        raise InputError(f"{layer}: a {h}×{w} input with padding {pad} is smaller than the dilated kernel ({span})")
    p, md_px = 2 * md + 1, md * dil_p
    if dil == 1 and k % 2 == 1:
        # The FlowNet op with its window anchored at h·stride − padding: pad by padding + md_px.
        out = correlation(input1, input2, pad_size=pad + md_px, kernel_size=k, max_displacement=md_px,
                          stride1=s, stride2=dil_p) * (k * k * c)
        return out.view(n, p, p, oh, ow)
    # Dilated (or even) kernels: the 1×1 correlation at every padded position, then the dilated k×k
    # window sum (a ones convolution), strided.
    full = correlation(input1, input2, pad_size=pad + md_px, kernel_size=1, max_displacement=md_px, stride1=1,
                       stride2=dil_p) * c  # N×P²×(H + 2·pad)×(W + 2·pad)
    ones = full.new_ones(1, 1, k, k)
    out = F.conv2d(full.reshape(n * p * p, 1, *full.shape[-2:]), ones, stride=s, dilation=dil)
    return out.view(n, p, p, oh, ow)


class MMCVCorrelation(nn.Module):
    """mmcv.ops.Correlation: forward(input1, input2) -> N×P×P×oH×oW (see mmcv_correlation)."""

    def __init__(self, kernel_size=1, max_displacement: int = 1, stride=1, padding=0, dilation=1,
                 dilation_patch=1) -> None:
        super().__init__()
        self.kernel_size, self.max_displacement, self.stride = kernel_size, max_displacement, stride
        self.padding, self.dilation, self.dilation_patch = padding, dilation, dilation_patch

    def forward(self, input1: torch.Tensor, input2: torch.Tensor) -> torch.Tensor:
        return mmcv_correlation(input1, input2, self.kernel_size, self.max_displacement, self.stride, self.padding,
                                self.dilation, self.dilation_patch)

    def extra_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, max_displacement={self.max_displacement}, stride={self.stride}, "
                f"padding={self.padding}, dilation={self.dilation}, dilation_patch={self.dilation_patch}")


def flownet2_correlation(input1: torch.Tensor, input2: torch.Tensor, pad_size: int = 0, kernel_size: int = 1,
                         max_displacement: int = 0, stride1: int = 1, stride2: int = 2,
                         corr_multiply: int = 1) -> torch.Tensor:
    """flownet2-pytorch's Correlation: both inputs zero-padded by pad_size; output (i, j), channel
    (tj + R)·D + (ti + R) (R = max_displacement // stride2, D = 2R + 1, vertical index slow) holds
        1/(k²·C) · Σ_{|a|,|b| <= kr} Σ_c P1[c, y + a, x + b] · P2[c, y + a + tj·stride2, x + b + ti·stride2]
    with (y, x) = (i·stride1 + max_displacement, j·stride1 + max_displacement) in padded coordinates (the
    window is centred there; kr = (k − 1)/2), oH = ceil((H + 2·pad_size − 2·(max_displacement + kr)) / stride1).
    For kernel_size = 1 this is flowmatch.ops.correlation itself.  Reads outside the padded maps (only
    possible when kernel_size > 1, where flownet2-pytorch reads outside its buffer) count as zero.
    corr_multiply must be 1: flownet2-pytorch ignores it (its kernels always multiply)."""
    layer = "flownet2_correlation"
    if isinstance(kernel_size, bool) or not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 == 0:
        raise InputError(f"{layer}: kernel_size must be a positive odd int, got {kernel_size!r} (flownet2-pytorch's "
                         "default 0 divides by zero)")
    if corr_multiply != 1:
        raise InputError(f"{layer}: corr_multiply must be 1, got {corr_multiply!r} (flownet2-pytorch's kernels "
                         "always multiply and ignore it)")
    kr = kernel_size // 2
    for name, value in (("pad_size", pad_size), ("max_displacement", max_displacement)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InputError(f"{layer}: {name} must be an int >= 0, got {value!r}")
    if not isinstance(input1, torch.Tensor) or input1.dim() != 4:
        raise InputError(f"{layer}: input1 must be a 4-D N×C×H×W tensor, got {getattr(input1, 'shape', input1)}")
    if isinstance(stride1, bool) or not isinstance(stride1, int) or stride1 < 1:
        raise InputError(f"{layer}: stride1 must be an int >= 1, got {stride1!r}")
    h, w = input1.shape[-2:]
    oh = math.ceil((h + 2 * pad_size - 2 * (max_displacement + kr)) / stride1)
    ow = math.ceil((w + 2 * pad_size - 2 * (max_displacement + kr)) / stride1)
    if oh < 1 or ow < 1:
        raise InputError(f"{layer}: output size would be {oh}×{ow} for a {h}×{w} input; need "
                         "H + 2·pad_size > 2·(max_displacement + kernel_size // 2)")
    # flowmatch's window starts at the anchor: pad kr more to centre it, then keep flownet2's oH × oW.
    out = correlation(input1, input2, pad_size=pad_size + kr, kernel_size=kernel_size,
                      max_displacement=max_displacement, stride1=stride1, stride2=stride2)
    return out[:, :, :oh, :ow] if kr else out


class FlowNet2Correlation(nn.Module):
    """flownet2-pytorch's Correlation module: forward(input1, input2) -> N×D²×oH×oW (flownet2_correlation).
    Its default kernel_size=0 is undefined there (division by zero); pass kernel_size=1 as FlowNet2 does."""

    def __init__(self, pad_size: int = 0, kernel_size: int = 0, max_displacement: int = 0, stride1: int = 1,
                 stride2: int = 2, corr_multiply: int = 1) -> None:
        super().__init__()
        self.pad_size, self.kernel_size, self.max_displacement = pad_size, kernel_size, max_displacement
        self.stride1, self.stride2, self.corr_multiply = stride1, stride2, corr_multiply

    def forward(self, input1: torch.Tensor, input2: torch.Tensor) -> torch.Tensor:
        return flownet2_correlation(input1, input2, self.pad_size, self.kernel_size, self.max_displacement,
                                    self.stride1, self.stride2, self.corr_multiply)

    def extra_repr(self) -> str:
        return (f"pad_size={self.pad_size}, kernel_size={self.kernel_size}, max_displacement={self.max_displacement}, "
                f"stride1={self.stride1}, stride2={self.stride2}, corr_multiply={self.corr_multiply}")
