"""Stage 4: edge-aware interpolation of the sparse matches to a dense flow (flowmatch.ops.interpolation):
`Matches` in, numpy H×W×2 flow out (the layout OpenCV's refinement takes)."""
from __future__ import annotations

import numpy as np

from ...ops.interpolation import edge_aware_interpolate, edge_cost_map
from .config import InterpolationConfig
from .consistency import Matches


def densify(matches: Matches, image: np.ndarray, cfg: InterpolationConfig) -> np.ndarray:
    """Edge-aware interpolation of sparse matches to an H×W×2 float32 flow (H, W of `image`, a float32
    H×W×3 frame in [0, 255]).  With no matches, warns (NoMatchesWarning) and returns zero flow."""
    cost = edge_cost_map(image, scale=cfg.edge_scale)
    return edge_aware_interpolate(matches.points, matches.flows, cost, nn=cfg.nn, coef_kernel=cfg.coef_kernel,
                                  affine=cfg.affine, pref_nn=cfg.pref_nn, pref_th=cfg.pref_th)
