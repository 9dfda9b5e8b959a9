"""How good a patch descriptor is on held-out triplets: FPR95 and the hardest-negative share.

  * FPR95: the share of non-matching pairs (anchor, negative 1-8 px from the true match) whose
    distance is below the distance that accepts 95 % of the matching pairs;
  * hardest-negative share ("top1"): in groups of 128 triplets, the share of anchors whose positive
    is nearer than every other img2 patch of the group (all other positives and all negatives).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..errors import InputError

__all__ = ["fpr_at_recall", "hardest_negative_share", "descriptor_scores", "embed", "evaluate"]


def fpr_at_recall(pos: np.ndarray, neg: np.ndarray, recall: float = 0.95) -> float:
    """False-positive rate at the distance threshold that accepts `recall` of the matching pairs.

    pos, neg: distances of matching / non-matching pairs (smaller = more similar)."""
    pos, neg = np.asarray(pos, np.float64), np.asarray(neg, np.float64)
    if pos.size == 0 or neg.size == 0:
        raise InputError("fpr_at_recall needs at least one matching and one non-matching distance")
    thr = np.quantile(pos, recall, method="inverted_cdf")
    return float((neg <= thr).mean())


def hardest_negative_share(da: torch.Tensor, dp: torch.Tensor, dn: torch.Tensor, group: int = 128) -> float:
    """Share of anchors whose positive is nearer than their hardest negative, where the negatives of
    anchor i are all img2 patches of its group (other positives and all negatives).  N×D inputs."""
    hits, total = 0, 0
    for s in range(0, da.shape[0], group):
        a, p, n = da[s:s + group].double(), dp[s:s + group].double(), dn[s:s + group].double()
        g = a.shape[0]
        if g < 2:
            continue
        cand = torch.cdist(a, torch.cat([p, n]))
        pos = cand[torch.arange(g), torch.arange(g)].clone()
        cand[torch.arange(g), torch.arange(g)] = float("inf")
        hits += int((pos < cand.min(1).values).sum())
        total += g
    return hits / max(total, 1)


def descriptor_scores(da: torch.Tensor, dp: torch.Tensor, dn: torch.Tensor) -> dict[str, float]:
    """{"fpr95", "top1"} for N×D descriptors of anchors, positives and negatives (see module doc)."""
    pos = torch.linalg.vector_norm(da.double() - dp.double(), dim=1).numpy()
    neg = torch.linalg.vector_norm(da.double() - dn.double(), dim=1).numpy()
    return {"fpr95": fpr_at_recall(pos, neg), "top1": hardest_negative_share(da, dp, dn)}


@torch.no_grad()
def embed(net: torch.nn.Module, patches: torch.Tensor, chunk: int = 512) -> torch.Tensor:
    """Descriptors of N×1×P×P patches in eval mode, in chunks -> N×D float32."""
    was = net.training
    net.eval()
    out = torch.cat([net(patches[s:s + chunk]) for s in range(0, patches.shape[0], chunk)])
    net.train(was)
    return out


def evaluate(net: torch.nn.Module, sets: dict[str, Any], raw_weight: float = 0.0,
             prefix: str = "") -> dict[str, float]:
    """Scores of `net` on each held-out PatchTriplets set: {"<prefix><set>/fpr95": ..., ".../top1": ...};
    with raw_weight > 0, of the combined descriptor (flowmatch.train.with_raw) instead of the net alone."""
    from .with_raw import with_raw

    def desc(patches: torch.Tensor) -> torch.Tensor:
        d = embed(net, patches)
        return with_raw(d, patches, raw_weight) if raw_weight else d

    out = {}
    for name, t in sets.items():
        for k, v in descriptor_scores(desc(t.anchor), desc(t.positive), desc(t.negative)).items():
            out[f"{prefix}{name}/{k}"] = v
    return out
