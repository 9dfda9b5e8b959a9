"""Stage 5: local corrections by OpenCV DIS started from the interpolated flow (kept only where they
change it a little), then OpenCV's variational refinement.  numpy H×W×2 in and out (OpenCV's layout)."""
from __future__ import annotations

import numpy as np

from ...image import gray_u8
from .config import RefinementConfig


def _finite(flow: np.ndarray) -> np.ndarray:
    return np.nan_to_num(np.asarray(flow, np.float32), nan=0.0, posinf=0.0, neginf=0.0)


def refine(flow: np.ndarray, img1: np.ndarray, img2: np.ndarray, cfg: RefinementConfig) -> np.ndarray:
    """Variational refinement of an H×W×2 flow (OpenCV VariationalRefinement on the grayscale of the
    float32 H×W×3 [0, 255] frames), optionally preceded by OpenCV DIS (medium preset with cfg's finest
    scale, patch stride and iterations) started from the flow (cfg.dis), whose result is kept only
    where it changes the flow by less than cfg.dis_max_change pixels.  Returns float32 H×W×2 (pixels, u then v)."""
    import cv2

    g1, g2 = gray_u8(img1), gray_u8(img2)
    out = np.ascontiguousarray(flow, dtype=np.float32).copy()
    if cfg.dis and min(g1.shape) >= 16:
        # DIS uses a flow passed in as its initial guess (downscaled to its coarsest level).  It
        # sharpens small motions but can drift far from good large-motion matches, so only its
        # local corrections (under dis_max_change px) are kept.
        d = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        d.setFinestScale(int(cfg.dis_finest_scale))
        d.setPatchStride(int(cfg.dis_patch_stride))
        d.setGradientDescentIterations(int(cfg.dis_iterations))
        dis = _finite(d.calc(g1, g2, out.copy()))
        near = np.linalg.norm(dis - out, axis=2) < cfg.dis_max_change
        out = np.where(near[..., None], dis, out).astype(np.float32)
    vr = cv2.VariationalRefinement_create()
    vr.setFixedPointIterations(int(cfg.iterations))
    vr.setSorIterations(5)
    vr.setAlpha(float(cfg.alpha))
    vr.setDelta(5.0)
    vr.setGamma(10.0)
    return _finite(vr.calc(g1, g2, out))
