"""The PatchBatch descriptor network (Gadot & Wolf, CVPR 2016) and its dense-evaluable variant.

Both map a grayscale patch (N×1×P×P, float32, already normalised by the image's mean/std) to an
N×D descriptor (D = 512 at full width).  Layers: four stages of conv3×3 -> BN -> LeakyReLU(0.1) ->
max-pool 2×2 with 32/64/128/256 channels, then conv2×2 -> D -> BN -> LeakyReLU; 'valid' convolutions.

Variants (``variant=``):
  * ``"paper"``: 51×51 input, ceil-mode pools (51->49->25->23->12->10->5->3->2->1).  Batch norm is
    per unit (``bn="unit"``, the paper's "fine-grained" BN: statistics per channel *and* position,
    eps 1e-3) or per channel (``bn="channel"``).  Not densely evaluable: the ceil-mode pools have
    partial windows at the patch edge.
  * ``"dense"``: 62×62 input, floor-mode pools (62->60->30->28->14->12->6->4->2->1), per-channel BN.
    Translation-equivariant, so flowmatch.pipelines.patchbatch.network evaluates it for every pixel at once
    with results equal to this per-patch forward.

``width`` scales every channel count (0.5 -> 16/32/64/128 and a 256-D descriptor).
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
import torch.nn.functional as F

from ..errors import InputError
from ..image import INPUT_NORMS

VARIANTS = ("paper", "dense")
PATCH_SIZE = {"paper": 51, "dense": 62}
BN_EPS = 1e-3  # the released PatchBatch code puts 1e-3 inside the sqrt
LEAK = 0.1
BASE_CHANNELS = (32, 64, 128, 256, 512)


def _conv_sizes(size: int, ceil: bool) -> list[int]:
    """Spatial size after each conv (index 0, 2, 4, 6, 8) and pool (1, 3, 5, 7) for a P×P input."""
    out = []
    for _ in range(4):
        size -= 2
        out.append(size)
        size = math.ceil(size / 2) if ceil else size // 2
        out.append(size)
    out.append(size - 1)
    return out


class UnitBatchNorm(nn.Module):
    """The paper's "fine-grained" batch norm: one mean/variance (and affine pair) per unit, i.e.
    per channel and position of an N×C×H×W activation (BatchNorm1d over the flattened C·H·W)."""

    def __init__(self, channels: int, size: int, eps: float = BN_EPS, momentum: float = 0.1):
        super().__init__()
        self.channels, self.size = channels, size
        self.bn = nn.BatchNorm1d(channels * size * size, eps=eps, momentum=momentum)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        return self.bn(x.reshape(n, -1)).reshape(x.shape)


class PatchBatchNet(nn.Module):
    """PatchBatch descriptor network.  forward: N×1×P×P patches -> N×D descriptors (float32).

    Args:
        variant: "paper" (51×51, ceil pools) or "dense" (62×62, floor pools, per-channel BN).
        bn: "unit" (paper's per-unit BN; paper variant only) or "channel".
        width: channel multiplier (1.0 = the paper's 32/64/128/256/512).
        input_norm: how the image is normalised before patches are cut ("global": by its own mean
            and standard deviation; "local": then by flowmatch.image.local_normalize).  The network
            does not apply it; the descriptor pass and the training sampler read it from here.
    """

    def __init__(self, variant: str = "dense", bn: str | None = None, width: float = 1.0,
                 input_norm: str = "global"):
        super().__init__()
        if variant not in VARIANTS:
            raise InputError(f"variant must be one of {VARIANTS}, got {variant!r}")
        bn = bn or ("unit" if variant == "paper" else "channel")
        if bn not in ("unit", "channel"):
            raise InputError(f"bn must be 'unit' or 'channel', got {bn!r}")
        if variant == "dense" and bn != "channel":
            raise InputError("the dense variant needs bn='channel' (per-unit BN is not translation-equivariant)")
        if not (0 < width <= 4):
            raise InputError(f"width must be in (0, 4], got {width}")
        if input_norm not in INPUT_NORMS:
            raise InputError(f"input_norm must be one of {INPUT_NORMS}, got {input_norm!r}")
        self.variant, self.bn_kind, self.width, self.input_norm = variant, bn, float(width), input_norm
        self.patch_size = PATCH_SIZE[variant]
        self.ceil = variant == "paper"
        chans = [max(1, int(round(c * width))) for c in BASE_CHANNELS]
        self.channels = tuple(chans)
        self.dim = chans[-1]
        sizes = _conv_sizes(self.patch_size, self.ceil)
        self.convs = nn.ModuleList()
        self.bns = nn.ModuleList()
        cin = 1
        for i, c in enumerate(chans):
            k = 3 if i < 4 else 2
            self.convs.append(nn.Conv2d(cin, c, k))
            size = sizes[2 * i]
            self.bns.append(UnitBatchNorm(c, size) if bn == "unit" else nn.BatchNorm2d(c, eps=BN_EPS))
            cin = c
        assert sizes[-1] == 1, sizes

    def config(self) -> dict[str, Any]:
        """Keyword arguments that rebuild this network (stored in checkpoints)."""
        cfg: dict[str, Any] = {"variant": self.variant, "bn": self.bn_kind, "width": self.width}
        if self.input_norm != "global":  # files written before the option existed are global
            cfg["input_norm"] = self.input_norm
        return cfg

    def check_patches(self, x: torch.Tensor, name: str = "patches") -> None:
        """Raise InputError unless x is N×1×P×P floating point with P = self.patch_size."""
        p = self.patch_size
        if not isinstance(x, torch.Tensor):
            raise InputError(f"{name} must be a torch tensor N×1×{p}×{p}, got {type(x).__name__}")
        if x.ndim != 4 or x.shape[1] != 1 or x.shape[2] != p or x.shape[3] != p:
            raise InputError(f"{name} must be N×1×{p}×{p} grayscale patches for the {self.variant!r} variant, "
                             f"got shape {tuple(x.shape)}")
        if not x.is_floating_point():
            raise InputError(f"{name} must be floating point (normalised grayscale), got {x.dtype}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_patches(x)
        for i, (conv, bn) in enumerate(zip(self.convs, self.bns)):
            x = F.leaky_relu(bn(conv(x)), LEAK)
            if i < 4:
                x = F.max_pool2d(x, 2, 2, ceil_mode=self.ceil)
        return x.flatten(1)


def fused_layers(net: PatchBatchNet) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(weight, bias) of each conv with its eval-mode per-channel BN folded in, for inference.

    conv -> BN(eval) equals one conv with weight w·g/sqrt(v+eps) and bias (b-mu)·g/sqrt(v+eps)+beta."""
    if net.bn_kind != "channel":
        raise InputError("only per-channel BN can be folded into the convolutions")
    out = []
    for conv, bn in zip(net.convs, net.bns):
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        w = conv.weight * scale[:, None, None, None]
        b = (conv.bias - bn.running_mean) * scale + bn.bias
        out.append((w.detach().float().contiguous(), b.detach().float().contiguous()))
    return out
