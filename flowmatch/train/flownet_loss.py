"""FlowNet's training losses: the multiscale EPE over flow2..flow6 and the full-resolution EPE.

Predictions are in the network's units (input pixels / div_flow, x then y); targets in pixels.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from ..errors import InputError
from ..models.flownet import DIV_FLOW

__all__ = ["MULTISCALE_WEIGHTS", "multiscale_epe", "full_resolution_epe"]

# Loss weights of flow2 .. flow6 (finest first), as in the published training.
MULTISCALE_WEIGHTS = (0.005, 0.01, 0.02, 0.08, 0.32)


def _downsample_target(flow: torch.Tensor, valid: torch.Tensor | None, size: tuple[int, int]
                       ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Area-average the target flow (N×2×H×W) to `size`, over valid pixels only."""
    if valid is None:
        return F.adaptive_avg_pool2d(flow, size), None
    v = valid.to(flow.dtype).unsqueeze(1)
    num = F.adaptive_avg_pool2d(flow * v, size)
    den = F.adaptive_avg_pool2d(v, size)
    return num / den.clamp_min(1e-6), den[:, 0] > 0


def _mean_epe(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
    epe = torch.linalg.vector_norm(pred - target, dim=1)  # N×h×w
    if valid is None:
        return epe.mean()
    return (epe * valid).sum() / valid.sum().clamp_min(1)


def multiscale_epe(preds: Sequence[torch.Tensor], flow: torch.Tensor, valid: torch.Tensor | None = None,
                   weights: Sequence[float] = MULTISCALE_WEIGHTS, div_flow: float = DIV_FLOW
                   ) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """FlowNet's multiscale loss: Σ_k weight_k · mean EPE(pred_k, target / div_flow pooled to scale k).

    preds: (flow2, ..., flow6), N×2×h_k×w_k, in input pixels / div_flow (any float dtype: the loss is
    computed in the target's dtype, so bf16 predictions under autocast get an fp32 loss).  flow:
    N×2×H×W target in pixels.  valid: N×H×W bool (None = all valid).  Returns (loss, per-scale EPE
    in the network's units, finest first)."""
    if len(preds) != len(weights):
        raise InputError(f"multiscale_epe: {len(preds)} predictions but {len(weights)} weights")
    target = flow / div_flow
    loss = flow.new_zeros(())
    epes = []
    for pred, w in zip(preds, weights):
        t, v = _downsample_target(target, valid, pred.shape[-2:])
        e = _mean_epe(pred.to(t.dtype), t, v)
        epes.append(e.detach())
        loss = loss + w * e
    return loss, epes


def full_resolution_epe(flow2: torch.Tensor, flow: torch.Tensor, valid: torch.Tensor | None = None,
                        div_flow: float = DIV_FLOW) -> torch.Tensor:
    """Mean EPE in pixels of flow2 (upsampled ×4, ×div_flow) against the full-size target."""
    up = F.interpolate(flow2.detach().to(flow.dtype) * div_flow, size=flow.shape[-2:], mode="bilinear",
                       align_corners=False)
    return _mean_epe(up, flow, valid)
