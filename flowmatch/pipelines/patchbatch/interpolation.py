"""Stage 4: edge-aware interpolation of the sparse matches to a dense flow: `Matches` in, numpy H×W×2 flow out
(the layout OpenCV's refinement takes).

Three interpolators (InterpolationConfig.interpolator):
- "epic": ours, EpicFlow-style (flowmatch.ops.edge_aware_interpolate on flowmatch's edge cost map);
- "opencv-epic": cv2.ximgproc.EdgeAwareInterpolator (EpicFlow with a fast global smoother afterwards);
- "opencv-ric": cv2.ximgproc.RICInterpolator (RIC: piecewise affine models on SLIC superpixels).
The OpenCV ones run with OpenCV's own defaults; the nn/coef_kernel/affine/pref_*/edge_* fields set
"epic" only.
"""
from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from ...errors import InputError, MethodUnavailableError
from ...ops.interpolation import NoMatchesWarning, edge_aware_interpolate, edge_cost_map
from .config import InterpolationConfig
from .consistency import Matches

# OpenCV's interpolators crash the process (SIGSEGV) on a single match and return garbage on two; below
# this many matches the pipeline uses its own interpolator, which handles any count.
OPENCV_MIN_MATCHES = 3


class FewMatchesWarning(UserWarning):
    """Too few matches for OpenCV's interpolator; flowmatch's own ("epic") interpolated them instead."""


def densify(matches: Matches, image: np.ndarray, cfg: InterpolationConfig, image2: np.ndarray | None = None) -> np.ndarray:
    """Edge-aware interpolation of sparse matches to an H×W×2 float32 flow (pixels, u then v).

    image: frame 1, float32 H×W×3 in [0, 255] (the edges come from it); image2: frame 2, passed to
    OpenCV's interpolators as their `to_image` (frame 1 when None; OpenCV's defaults do not read it).
    With no matches, warns (NoMatchesWarning) and returns zero flow."""
    if cfg.interpolator == "epic" or len(matches) == 0:
        return _epic(matches, image, cfg)
    if len(matches) < OPENCV_MIN_MATCHES:
        warnings.warn(f"{cfg.interpolator}: {len(matches)} match(es) are too few for OpenCV's interpolator; "
                      "interpolated with 'epic'", FewMatchesWarning, stacklevel=2)
        return _epic(matches, image, cfg)
    return _opencv(cfg.interpolator, matches, image, image if image2 is None else image2)


def _epic(matches: Matches, image: np.ndarray, cfg: InterpolationConfig) -> np.ndarray:
    cost = edge_cost_map(image, sigma=cfg.edge_sigma, scale=cfg.edge_scale)
    return edge_aware_interpolate(matches.points, matches.flows, cost, nn=cfg.nn, coef_kernel=cfg.coef_kernel,
                                  affine=cfg.affine, pref_nn=cfg.pref_nn, pref_th=cfg.pref_th)


def _bgr8(image: np.ndarray, name: str, shape: tuple[int, ...] | None = None) -> np.ndarray:
    img = np.asarray(image)
    if img.ndim != 3 or img.shape[2] != 3 or (shape is not None and img.shape != shape):
        raise InputError(f"{name} must be an H×W×3 frame{' like image' if shape else ''}, got shape {img.shape}")
    # OpenCV's colour conversions (RIC's SLIC works in Lab) expect BGR
    return np.ascontiguousarray(np.clip(np.rint(img[..., ::-1]), 0, 255).astype(np.uint8))


def _opencv(kind: str, matches: Matches, image: np.ndarray, image2: np.ndarray) -> np.ndarray:
    try:
        import cv2

        ximgproc: Any = cv2.ximgproc
    except (ImportError, AttributeError) as exc:
        raise MethodUnavailableError(f"interpolator {kind!r} needs OpenCV's contrib modules "
                                     "(pip install opencv-contrib-python-headless)") from exc
    a = _bgr8(image, "image")
    b = _bgr8(image2, "image2", a.shape)
    h, w = a.shape[:2]
    pts = matches.points.detach().cpu().numpy().astype(np.float32).reshape(-1, 2)
    flows = matches.flows.detach().cpu().numpy().astype(np.float32).reshape(-1, 2)
    if not (np.isfinite(pts).all() and np.isfinite(flows).all()):
        raise InputError("matches hold NaN or infinite points or flows")
    if (pts < 0).any() or (pts[:, 0] > w - 1).any() or (pts[:, 1] > h - 1).any():
        raise InputError(f"match points must lie in the {w}×{h} frame ([0, W-1] × [0, H-1] pixels)")
    interp = ximgproc.createEdgeAwareInterpolator() if kind == "opencv-epic" else ximgproc.createRICInterpolator()
    try:
        dense = interp.interpolate(a, pts, b, np.ascontiguousarray(pts + flows))
    except cv2.error as exc:
        raise InputError(f"{kind}: OpenCV refused {len(pts)} matches on a {w}×{h} frame: "
                         f"{str(exc).strip().splitlines()[-1]}") from exc
    return np.ascontiguousarray(dense, dtype=np.float32)
