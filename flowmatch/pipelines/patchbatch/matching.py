"""Stage 2: PatchMatch A->B and B->A on the descriptor grid, coarse-to-fine.
Input and output layout: torch h×w×D descriptors -> h×w×2 flows (grid px, u then v) and h×w costs."""
from __future__ import annotations

import torch

from ...ops.patchmatch import patchmatch
from .config import MatchingConfig


def pool_descriptors(desc: torch.Tensor, factor: int) -> torch.Tensor:
    """H×W×D field averaged over factor×factor cells -> ceil(H/f)×ceil(W/f)×D float32 (edge cells are
    completed by repeating the last row/column).  Works channels-last, without a transposed copy."""
    H, W, D = desc.shape
    Hc, Wc = -(-H // factor), -(-W // factor)
    rows = torch.arange(Hc * factor, device=desc.device).clamp_(max=H - 1)
    cols = torch.arange(Wc * factor, device=desc.device).clamp_(max=W - 1)
    x = desc if (Hc * factor == H and Wc * factor == W) else desc[rows][:, cols]
    x = x.reshape(Hc, factor, Wc, factor, D)
    # the f² phases added as strided views: torch's mean over dims (1, 3) of this layout was ~10× slower
    out = torch.empty(Hc, Wc, D, device=desc.device).copy_(x[:, 0, :, 0])
    for i in range(factor):
        for j in range(factor):
            if i or j:
                out.add_(x[:, i, :, j])
    return out.mul_(1.0 / (factor * factor))


def match_one_way(da: torch.Tensor, db: torch.Tensor, cfg: MatchingConfig, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """PatchMatch da -> db, coarse-to-fine when cfg.coarse_factor > 1 (else a plain run with cfg.window).
    Returns (flow h×w×2, cost h×w)."""
    c = cfg.coarse_factor
    H, W = da.shape[:2]
    init = None
    window = cfg.window
    if c > 1 and min(H, W) >= 2 * c:
        coarse, _ = patchmatch(pool_descriptors(da, c), pool_descriptors(db, c), iterations=cfg.coarse_iterations,
                               radius=cfg.coarse_radius, window=cfg.coarse_window, seed=seed + 1000)
        # nearest upsampling of the coarse offsets (scaled to the fine grid) as the fine initial guess
        init = (coarse * c).repeat_interleave(c, 0).repeat_interleave(c, 1)[:H, :W]
    elif c > 1:
        window = max(window, cfg.coarse_window)  # too small to pool: search the coarse window directly
    return patchmatch(da, db, iterations=cfg.iterations, radius=cfg.radius, window=window, seed=seed,
                      subpixel=cfg.subpixel, init=init)


def match_descriptors(desc_a: torch.Tensor, desc_b: torch.Tensor, cfg: MatchingConfig, seed: int = 0):
    """PatchMatch both ways.  Returns (flow_ab, cost_ab, flow_ba, cost_ba): torch h×w×2 / h×w in grid pixels."""
    fab, cab = match_one_way(desc_a, desc_b, cfg, seed)
    fba, cba = match_one_way(desc_b, desc_a, cfg, seed + 1)
    return fab, cab, fba, cba
