"""Stage 3: keep the matches whose round trip A->B->A lands within a tolerance (the forward-backward
check), on a grid of seeds, optionally dropping the costliest ones and those on flat texture.
Layout: torch h×w×2 flows in, `Matches` (torch M×2 points and flows, M confidences) out."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..._checks import Float
from ...errors import InputError
from ...image import as_flow, gray_u8, to_numpy


@dataclass
class Matches:
    """Sparse matches: points M×2 (x, y) in image A, flows M×2 (u, v) to image B, confidence M in
    [0, 1] (torch float32, pixels)."""
    points: torch.Tensor
    flows: torch.Tensor
    confidence: torch.Tensor

    def __len__(self) -> int:
        return int(self.points.shape[0])

    def select(self, keep: torch.Tensor) -> "Matches":
        """The matches where the M bool mask `keep` is True."""
        return Matches(self.points[keep], self.flows[keep], self.confidence[keep])


def _flow(flow: Any, name: str) -> torch.Tensor:
    """An H×W×2 float32 torch flow, checked by image.as_flow; a tensor on an accelerator stays there (its
    layout is checked on a 1×1 corner, its values where they are)."""
    if isinstance(flow, torch.Tensor) and flow.device.type != "cpu":
        as_flow(flow.detach()[:1, :1].cpu() if flow.dim() == 3 else flow.detach().cpu(), name)
        if not bool(torch.isfinite(flow).all()):
            raise InputError(f"{name} contains NaN or infinite values")
        return flow.detach().float()
    # a CPU float32 tensor or array passes through without a copy
    return torch.from_numpy(as_flow(flow, name, finite=True))


def consistency_check(flow_ab: Any, flow_ba: Any, threshold: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Bidirectional check of two flows A->B and B->A.

    For pixel x of A with target y = x + flow_ab(x) (rounded to the nearest pixel of B), the round
    trip error is |flow_ab(x) + flow_ba(y)|.  A pixel whose target leaves B is inconsistent.

    Runs on the device of torch flows (both on one device), else on the CPU.

    Args:
        flow_ab: H×W×2 flow A->B; flow_ba: H'×W'×2 flow B->A (pixels, u then v; numpy or torch).
        threshold: largest accepted round-trip error in pixels (>= 0).
    Returns:
        (mask H×W bool, True = consistent; error H×W float32 in pixels, +inf where the target leaves B).
    """
    fab, fba = _flow(flow_ab, "flow_ab"), _flow(flow_ba, "flow_ba")
    if fab.device != fba.device:
        raise InputError(f"flow_ab ({fab.device}) and flow_ba ({fba.device}) are on different devices")
    if not (np.isfinite(threshold) and threshold >= 0):
        raise InputError(f"threshold must be a finite number >= 0, got {threshold!r}")
    H, W = fab.shape[:2]
    Hb, Wb = fba.shape[:2]
    dev = fab.device
    ys, xs = torch.meshgrid(torch.arange(H, dtype=torch.float64, device=dev),
                            torch.arange(W, dtype=torch.float64, device=dev), indexing="ij")
    # the target in float64 so that rounding x + u is exact (round half to even, as np.rint)
    tx = torch.round(xs + fab[..., 0]).long()
    ty = torch.round(ys + fab[..., 1]).long()
    inside = (tx >= 0) & (tx < Wb) & (ty >= 0) & (ty < Hb)
    d = fab + fba[ty.clamp(0, Hb - 1), tx.clamp(0, Wb - 1)]
    err = torch.sqrt(d[..., 0] * d[..., 0] + d[..., 1] * d[..., 1])
    err[~inside] = torch.inf
    return err <= threshold, err


def _median(x: torch.Tensor) -> float:
    """numpy's median (the mean of the two middle values for an even count; torch.median takes the lower)."""
    s = x.sort().values
    n = s.numel()
    return float(s[n // 2]) if n % 2 else float((s[n // 2 - 1] + s[n // 2]) / 2)


def _cost_filter(ok: torch.Tensor, cost_ab: Any, max_cost: float | None,
                 cost_quantile: float | None) -> torch.Tensor | None:
    """The H×W float32 cost (None without one) after dropping from `ok` (in place) the matches
    above max_cost or above the cost_quantile of the consistent matches."""
    if cost_ab is None:
        if max_cost is not None or cost_quantile is not None:
            raise InputError("max_cost / cost_quantile need cost_ab")
        return None
    cost = torch.as_tensor(to_numpy(cost_ab, "cost_ab"), dtype=torch.float32)
    if cost.shape != ok.shape:
        raise InputError(f"cost_ab must be H×W like flow_ab {tuple(ok.shape)}, got {tuple(cost.shape)}")
    if max_cost is not None:
        ok &= cost <= max_cost
    if cost_quantile is not None:
        if not 0 < cost_quantile <= 1:
            raise InputError(f"cost_quantile must be in (0, 1], got {cost_quantile!r}")
        if ok.any():
            # numpy's quantile (torch.quantile differs in the last bit), compared in float64 as numpy does
            ok &= cost.double() <= float(np.quantile(cost[ok].numpy(), cost_quantile))
    return cost


def sparse_matches(flow_ab: Any, flow_ba: Any, cost_ab: Any = None, threshold: float = 1.0,
                   max_cost: float | None = None, cost_quantile: float | None = None, step: int = 1,
                   scale: float = 1.0) -> Matches:
    """Matches that pass the bidirectional check (and the optional cost thresholds), on a grid.

    Args:
        flow_ab, flow_ba: H×W×2 flows A->B and B->A in the units of their grid (pixels, u then v).
        cost_ab: optional H×W matching cost of flow_ab (e.g. squared descriptor distance).
        threshold: round-trip tolerance in grid pixels.
        max_cost: drop matches with cost above this value.
        cost_quantile: drop matches with cost above this quantile (0-1) of the consistent matches' costs.
        step: keep only grid pixels (step·i, step·j) (subsampling the seeds).
        scale: grid-to-image scale (descriptor stride): points and flows are multiplied by it.
    Returns:
        Matches; confidence = exp(-cost / median cost) when costs are given, else 1 - error/(threshold+1).
        Zero matches is a valid result (len 0).
    """
    if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 1:
        raise InputError(f"step must be a positive integer, got {step!r}")
    ok, err = consistency_check(flow_ab, flow_ba, threshold)
    # the check ran where the flows are; seed selection (a few thousand points) continues on the CPU
    ok, err = ok.cpu(), err.cpu()
    grid = torch.zeros_like(ok)
    grid[::step, ::step] = True
    ok &= grid
    cost = _cost_filter(ok, cost_ab, max_cost, cost_quantile)
    ys, xs = torch.nonzero(ok, as_tuple=True)
    points = torch.stack([xs, ys], dim=1).float() * scale
    flows = _flow(flow_ab, "flow_ab").cpu()[ys, xs] * scale
    if cost is not None and len(ys):
        c = cost[ys, xs]
        med = _median(c)
        conf = torch.exp(-c / med) if med > 0 else torch.ones_like(c)
    else:
        conf = 1.0 - err[ys, xs] / (threshold + 1.0)
    return Matches(points.reshape(-1, 2), flows.reshape(-1, 2).float(), conf.float())


def saliency(image: np.ndarray, sigma: float = 2.0) -> np.ndarray:
    """Local texture strength of a frame (float32 H×W×3 in [0, 255]): Gaussian-averaged gradient
    magnitude of the grayscale image scaled to [0, 1] (H×W float32).  Matches on flat regions (low
    saliency) are unreliable."""
    import cv2

    # OpenCV's kernel grows with sigma (~6·sigma taps): 1e6 hangs
    sigma = Float(0.0, 100.0, open_lo=True).check("saliency: sigma", sigma)
    g = gray_u8(image).astype(np.float32) / 255.0
    gx = cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3) / 8.0
    gy = cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3) / 8.0
    return np.sqrt(cv2.GaussianBlur(gx * gx + gy * gy, (0, 0), sigma))


def drop_flat(matches: Matches, image: np.ndarray, threshold: float) -> Matches:
    """The matches whose point lies where `saliency(image)` is at least `threshold` (0-1 scale)."""
    if threshold <= 0 or not len(matches):
        return matches
    sal = torch.from_numpy(saliency(image))
    return matches.select(sal[matches.points[:, 1].long(), matches.points[:, 0].long()] >= threshold)
