"""Edge-aware sparse-to-dense interpolation of flow matches (torch.ops.flowmatch.edge_aware_interpolate).

In the spirit of EpicFlow: geodesic distances on an edge cost map, the K geodesically nearest
matches of each match, and a locally weighted affine (or Nadaraya-Watson) model per match that is
applied to the pixels geodesically closest to it.  Unlike OpenCV's EdgeAwareInterpolator it takes
any number of matches, including matches on a regular grid.
"""
from __future__ import annotations

import warnings

import numpy as np
import torch

from .. import _ext
from .._checks import FLOAT32_MAX, Float
from ..errors import InputError
from . import _library

__all__ = ["edge_aware_interpolate", "edge_cost_map", "NoMatchesWarning"]


class NoMatchesWarning(UserWarning):
    """Interpolation had no match to work from; the returned flow is all zeros."""


def edge_cost_map(image: np.ndarray, euclidean: float = 0.001, sigma: float = 1.0, scale: float = 1.0) -> np.ndarray:
    """Step cost of the geodesic distance: normalised gradient magnitude plus a small Euclidean term.

    Args:
        image: H×W or H×W×3 array (any numeric dtype; values in [0, 255] expected for uint8/float).
        euclidean: cost of one step on a flat region (EpicFlow's `euc`).
        sigma: Gaussian pre-smoothing in pixels (0 = none).
        scale: multiplies the edge term (edges are first normalised so that their 99th percentile is 1).
    Returns:
        H×W float32 array, finite and >= euclidean.
    """
    import cv2

    # sigma is bounded: OpenCV builds a kernel of ~6·sigma taps (1e6 fails to allocate, 1e5 takes minutes)
    euclidean = Float(0.0, 1e3).check("edge_cost_map: euclidean", euclidean)
    sigma = Float(0.0, 100.0).check("edge_cost_map: sigma", sigma)
    scale = Float(0.0, 1e3).check("edge_cost_map: scale", scale)
    img = np.asarray(image, dtype=np.float32)
    if img.ndim not in (2, 3):
        raise InputError(f"edge_cost_map: image must be H×W or H×W×C, got shape {img.shape}")
    if not np.isfinite(img).all():
        raise InputError("edge_cost_map: image contains NaN or infinite values")
    if sigma > 0:
        img = cv2.GaussianBlur(img, (0, 0), sigma)
    gx = cv2.Sobel(img, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(img, cv2.CV_32F, 0, 1, ksize=3)
    mag = np.sqrt(gx * gx + gy * gy)
    if mag.ndim == 3:
        mag = mag.max(axis=2)
    ref = float(np.percentile(mag, 99.0)) if mag.size else 0.0
    edges = np.clip(mag / ref, 0.0, 1.0) if ref > 0 else np.zeros_like(mag)
    return (scale * edges + euclidean).astype(np.float32)


def edge_aware_interpolate(points: np.ndarray | torch.Tensor, flows: np.ndarray | torch.Tensor,
                           cost_map: np.ndarray | torch.Tensor, nn: int = 100, coef_kernel: float = 0.8,
                           affine: bool = True, pref_nn: int = 25, pref_th: float = 5.0,
                           return_kept: bool = False):
    """Dense flow from sparse matches, guided by an edge cost map.

    Args:
        points: M×2 match positions (x, y) in image 1, pixels (rounded to the nearest pixel).
        flows: M×2 flow (u, v) of each match, pixels (x first).
        cost_map: H×W non-negative step cost (see `edge_cost_map`); fixes the output size.
        nn: number of geodesically nearest matches per model.
        coef_kernel: weights are exp(-coef_kernel · geodesic distance).
        affine: locally weighted affine fit (True) or Nadaraya-Watson average (False).
        pref_nn, pref_th: drop matches further than pref_th px from the median flow of their pref_nn
            nearest matches before interpolating (pref_nn = 0 disables it).
        return_kept: also return the M bool mask of matches that survived the prefilter.
    Returns:
        H×W×2 float32 numpy flow (pixels, u then v) [, kept mask].  With no match at all, the flow is
        all zeros and a NoMatchesWarning is issued (a defined result, not an error).
    """
    cost = torch.as_tensor(np.asarray(cost_map, dtype=np.float32) if not isinstance(cost_map, torch.Tensor)
                           else cost_map.detach().float().cpu())
    if cost.dim() != 2 or min(cost.shape) < 1:
        raise InputError(f"cost_map must be H×W, got shape {tuple(cost.shape)}")
    if cost.shape[0] * cost.shape[1] >= 2**30:  # the C++ op's pixel indices are int32 (checked before any copy)
        raise InputError(f"cost_map of {cost.shape[1]}×{cost.shape[0]} pixels is larger than the 2^30 the op takes")
    if not bool(torch.isfinite(cost).all()) or bool((cost < 0).any()):
        raise InputError("cost_map must be finite and >= 0 (build it with edge_cost_map)")
    pts = torch.as_tensor(np.asarray(points, dtype=np.float64) if not isinstance(points, torch.Tensor)
                          else points.detach().double().cpu())
    fl = torch.as_tensor(np.asarray(flows, dtype=np.float32) if not isinstance(flows, torch.Tensor)
                         else flows.detach().float().cpu())
    pts = pts.reshape(-1, 2) if pts.numel() == 0 else pts
    fl = fl.reshape(-1, 2) if fl.numel() == 0 else fl
    if pts.dim() != 2 or pts.shape[1] != 2 or fl.shape != pts.shape:
        raise InputError(f"points and flows must both be M×2, got {tuple(pts.shape)} and {tuple(fl.shape)}")
    for name, val, lo in (("nn", nn, 1), ("pref_nn", pref_nn, 0)):
        if isinstance(val, bool) or not isinstance(val, (int, np.integer)) or val < lo:
            raise InputError(f"edge_aware_interpolate: {name} must be an integer >= {lo}, got {val!r}")
    # the op computes in float32: larger values become inf (and the weights NaN)
    coef_kernel = Float(0.0, FLOAT32_MAX).check("edge_aware_interpolate: coef_kernel", coef_kernel)
    pref_th = Float(0.0, FLOAT32_MAX).check("edge_aware_interpolate: pref_th", pref_th)
    H, W = cost.shape
    finite = torch.isfinite(pts).all(1) & torch.isfinite(fl).all(1)
    if not bool(finite.all()):
        raise InputError(f"points/flows contain {int((~finite).sum())} non-finite rows")
    if fl.numel() and float(fl.abs().max()) >= 2**20:  # the affine fits square them in float32
        raise InputError(f"flows must be below 2^20 pixels in magnitude, got {float(fl.abs().max()):g}")
    xy = torch.round(pts).to(torch.int64)
    inside = (xy[:, 0] >= 0) & (xy[:, 0] < W) & (xy[:, 1] >= 0) & (xy[:, 1] < H)
    if not bool(inside.all()):
        raise InputError(f"{int((~inside).sum())} match positions lie outside the {W}×{H} cost map")
    M = xy.shape[0]
    if M == 0:
        warnings.warn("edge_aware_interpolate: no matches to interpolate; returning zero flow",
                      NoMatchesWarning, stacklevel=2)
        zero = np.zeros((H, W, 2), np.float32)
        return (zero, np.zeros(0, bool)) if return_kept else zero
    if not _library.load():
        _ext.require("flowmatch.ops.edge_aware_interpolate")
    flow, kept = torch.ops.flowmatch.edge_aware_interpolate(
        xy.to(torch.int32).contiguous(), fl.contiguous(), cost.contiguous(), int(min(nn, M)), float(coef_kernel),
        bool(affine), int(min(pref_nn, M)), float(pref_th))  # more neighbours than matches = all of them
    flow = flow.numpy()
    return (flow, kept.numpy()) if return_kept else flow
