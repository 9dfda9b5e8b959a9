"""The plain colour codings of flows and errors (numpy and OpenCV only; figures with legends, arrows and
colour bars are in flowmatch.viz.figures).

- flow_to_color: the Middlebury colour coding.  Hue = direction on the standard 55-colour wheel
  (segments red-yellow 15, yellow-green 6, green-cyan 4, cyan-blue 11, blue-magenta 13,
  magenta-red 6); saturation = |flow| / max_radius, so zero flow is white.  Rightward motion is red,
  downward yellow-orange, leftward cyan-blue, upward blue-violet (image y points down).  Vectors longer
  than max_radius keep their full colour, darkened to 75 %.
- error_map: a KITTI-style colour scale of the end-point error (log bins, blue = small, red = large).
- save_panel: frame, flow, ground truth and error side by side in one PNG.
Invalid pixels (valid False, or non-finite flow) are black everywhere.
"""
from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..errors import InputError
from ..image import as_flow, as_image, as_mask

# Segment lengths of the Middlebury colour wheel.
WHEEL_SEGMENTS = (("RY", 15), ("YG", 6), ("GC", 4), ("CB", 11), ("BM", 13), ("MR", 6))

# KITTI-style error scale: EPE bin edges in pixels (doubling from 3/16 px) and their colours (RGB).
ERROR_EDGES = (0.0, 0.1875, 0.375, 0.75, 1.5, 3.0, 6.0, 12.0, 24.0, 48.0, np.inf)
ERROR_COLORS = np.array([
    (49, 54, 149), (69, 117, 180), (116, 173, 209), (171, 217, 233), (224, 243, 248),
    (254, 224, 144), (253, 174, 97), (244, 109, 67), (215, 48, 39), (165, 0, 38)], dtype=np.uint8)


def color_wheel() -> np.ndarray:
    """The 55×3 Middlebury colour wheel, float64 RGB in [0, 1], starting at red and turning through
    yellow, green, cyan, blue, magenta back towards red."""
    rows = []
    for name, n in WHEEL_SEGMENTS:
        up = np.arange(n) / n          # 0 .. (n-1)/n
        down = 1.0 - up
        one, zero = np.ones(n), np.zeros(n)
        rgb = {"RY": (one, up, zero), "YG": (down, one, zero), "GC": (zero, one, up),
               "CB": (zero, down, one), "BM": (up, zero, one), "MR": (one, zero, down)}[name]
        rows.append(np.stack(rgb, axis=1))
    return np.concatenate(rows, axis=0)


def flow_to_color(flow: Any, max_radius: float | None = None, valid: Any = None) -> np.ndarray:
    """Middlebury colour coding of a flow field.

    Args:
        flow: H×W×2 (numpy or torch), pixels, x (u) first.
        max_radius: flow magnitude (pixels) shown at full saturation; None = the largest magnitude
            among valid pixels (1 if all are zero).
        valid: optional H×W bool; invalid pixels are black (as are non-finite ones).
    Returns:
        uint8 H×W×3 RGB image.
    """
    # float32, OpenCV's SIMD angle and magnitude (angle error < 2e-4 rad, a 600th of a wheel step) and
    # one colour channel at a time: ~2.5× faster than float64 H×W×3 numpy (1024×436: 159 -> ~60 ms), whose
    # cost made --viz videos slower than fast methods' flow.
    import cv2
    f = as_flow(flow, "flow", np.float32, nonempty=False)
    u, v = f[..., 0].copy(), f[..., 1].copy()  # contiguous, and ours to zero
    ok = None
    if valid is not None or not np.isfinite(f).all():
        ok = np.isfinite(u) & np.isfinite(v)
        if valid is not None:
            ok &= as_mask(valid, f.shape[:2])
        u[~ok] = 0
        v[~ok] = 0
    rad = cv2.magnitude(u, v) if u.size else np.zeros(u.shape, np.float32)
    if max_radius is None:
        max_radius = float(rad.max()) if rad.size else 0.0  # invalid pixels are 0 here
        if max_radius <= 0:
            max_radius = 1.0
    elif not (max_radius > 0 and np.isfinite(max_radius)):
        raise InputError(f"max_radius must be a positive number of pixels, got {max_radius}")
    wheel = color_wheel().astype(np.float32)
    n = len(wheel)
    # Position on the wheel in [0, n-1]: Middlebury's (atan2(-v, -u) + pi) / 2pi × (n-1), which is
    # atan2(v, u) taken in [0, 2pi) and scaled.
    fk = cv2.phase(u, v) if u.size else np.zeros(u.shape, np.float32)
    fk *= np.float32((n - 1) / (2 * np.pi))
    k0 = np.clip(np.floor(fk).astype(np.int32), 0, n - 1)
    k1 = k0 + 1
    k1[k1 == n] = 0
    frac = fk - k0
    r = rad / np.float32(max_radius)
    inside = r <= 1
    out = np.empty(f.shape[:2] + (3,), np.uint8)
    for c in range(3):
        lo = wheel[:, c].take(k0)
        col = lo + frac * (wheel[:, c].take(k1) - lo)
        # desaturate towards white near zero; beyond max_radius darken to 75 %
        col = np.where(inside, 1 - r * (1 - col), col * np.float32(0.75))
        np.clip(col, 0, 1, out=col)
        col *= 255
        out[..., c] = np.floor(col)
    if ok is not None:
        out[~ok] = 0
    return out


def error_map(flow: Any, gt: Any, valid: Any = None) -> np.ndarray:
    """KITTI-style colour image of the end-point error |flow - gt|.

    flow, gt: H×W×2, pixels, x first; valid: optional H×W bool.  Bins (pixels): <3/16, <3/8, <3/4,
    <1.5, <3, <6, <12, <24, <48, >=48 coloured from dark blue to dark red.  Invalid pixels (and
    pixels where either field is not finite) are black.  Returns uint8 H×W×3 RGB."""
    f, g = as_flow(flow, "flow", np.float64, nonempty=False), as_flow(gt, "gt", np.float64, nonempty=False)
    if f.shape != g.shape:
        raise InputError(f"flow and gt differ in size: {f.shape} vs {g.shape}")
    ok = as_mask(valid, f.shape[:2], default=True) & np.isfinite(f).all(axis=2) & np.isfinite(g).all(axis=2)
    err = np.hypot(*(np.where(ok[..., None], f - g, 0.0).transpose(2, 0, 1)))
    idx = np.clip(np.searchsorted(np.asarray(ERROR_EDGES), err, side="right") - 1, 0, len(ERROR_COLORS) - 1)
    out = ERROR_COLORS[idx]
    out[~ok] = 0
    return out


def _to_rgb8(img: Any) -> np.ndarray:
    return np.clip(np.rint(as_image(img, "img1")), 0, 255).astype(np.uint8)


def _label(tile: np.ndarray, text: str) -> np.ndarray:
    import cv2

    tile = np.ascontiguousarray(tile)
    scale = max(0.4, tile.shape[1] / 800)
    org = (6, int(20 * scale) + 4)
    cv2.putText(tile, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 2, cv2.LINE_AA)
    cv2.putText(tile, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return tile


def make_panel(img1: Any, flow: Any, gt: Any = None, valid: Any = None,
               max_radius: float | None = None) -> np.ndarray:
    """The panel image (uint8 RGB): [frame | flow] and, with gt, [ground truth | error] below.

    Flow and ground truth share one colour scale: max_radius, else the largest valid |gt| (or |flow|
    without gt)."""
    f = as_flow(flow, "flow", np.float64, nonempty=False)
    frame = _to_rgb8(img1)
    if frame.shape[:2] != f.shape[:2]:
        raise InputError(f"img1 is {frame.shape[1]}×{frame.shape[0]} but flow is {f.shape[1]}×{f.shape[0]}")
    if gt is not None:
        g = as_flow(gt, "gt", np.float64, nonempty=False)
        v = as_mask(valid, g.shape[:2], default=True) & np.isfinite(g).all(axis=2)
        if max_radius is None:
            mags = np.hypot(g[..., 0], g[..., 1])[v]
            max_radius = float(mags.max()) if mags.size and mags.max() > 0 else None
        top = np.concatenate([_label(frame, "frame"), _label(flow_to_color(f, max_radius), "flow")], axis=1)
        bottom = np.concatenate([_label(flow_to_color(g, max_radius, v), "ground truth"),
                                 _label(error_map(f, g, v), "error (EPE)")], axis=1)
        return np.concatenate([top, bottom], axis=0)
    return np.concatenate([_label(frame, "frame"), _label(flow_to_color(f, max_radius, valid), "flow")], axis=1)


def save_panel(path: str | os.PathLike, img1: Any, flow: Any, gt: Any = None, valid: Any = None,
               max_radius: float | None = None) -> None:
    """Write make_panel(...) as a PNG (atomically).  img1: H×W[×3] frame (uint8/uint16/float);
    flow, gt: H×W×2 pixels, x first; valid: H×W bool for gt."""
    from ..io import write_image

    write_image(path, make_panel(img1, flow, gt, valid, max_radius))
