"""Metric-learning losses for patch descriptors (PatchBatch and friends).

Conventions (all functions):
  * descriptors are N×D float tensors; pair losses take two of them plus labels ``y`` (N,), with
    **y = 0 for a matching pair and y = 1 for a non-matching pair** (the DrLIM convention);
  * D is the Euclidean distance sqrt(Σ(a-b)² + eps) (eps = 1e-8 keeps the gradient finite when
    a == b); every loss is averaged over the batch (reduction "mean").

Formulas, with D the distance of a pair and m the margin:
  * drlim:        (1-Y)·½·D² + Y·½·max(0, m - D)²                      (Hadsell, Chopra, LeCun 2006)
  * cent_drlim:   (1-Y)·D² + Y·max(0, m² - D²)        ("centred": hinge on squared distances)
  * cent_drlim_sd: λ·mean[(1-Y)·D² + Y·max(0, m² - D²)] + (1-λ)·(σ0 + σ1)
        Our reading of PatchBatch's "+SD" term: σ0 and σ1 are the (population, ddof=0) standard
        deviations of the distances D (not D²) of the matching pairs and of the non-matching pairs in
        the batch; a group with fewer than two pairs contributes 0.  Minimising them tightens both
        distance distributions.  Default λ = 0.8, m = 100.
  * contrastive:  (1-Y)·max(0, D - m_pos) + Y·max(0, m_neg - D)   (plain hinges on D, not squared)
  * triplet:      max(0, D(a,p) - D(a,n) + m)
  * triplet_batch_hard: max(0, D(a_i,p_i) - min_j D(a_i, c_j) + m), where the candidates c_j are all
        other positives p_j (j ≠ i) and, when given, every negative n_j (batch-hard mining).
"""
from __future__ import annotations

import torch

from .errors import InputError

EPS = 1e-8


def _check_pair(a: torch.Tensor, b: torch.Tensor, names: str = "a, b") -> None:
    if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)):
        raise InputError(f"{names} must be torch tensors")
    if a.ndim != 2 or a.shape != b.shape:
        raise InputError(f"{names} must be N×D descriptors of the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")


def _check_labels(y: torch.Tensor, n: int) -> torch.Tensor:
    y = torch.as_tensor(y)
    if y.shape != (n,):
        raise InputError(f"labels y must have shape ({n},), got {tuple(y.shape)}")
    if not bool(((y == 0) | (y == 1)).all()):
        raise InputError("labels y must be 0 (matching pair) or 1 (non-matching pair)")
    return y


def pair_distance(a: torch.Tensor, b: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """Row-wise Euclidean distance sqrt(Σ(a-b)² + eps) of two N×D tensors -> N."""
    _check_pair(a, b)
    return torch.sqrt(((a - b) ** 2).sum(1) + eps)


def cross_distance(a: torch.Tensor, b: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """All-pairs distance matrix N×M between N×D and M×D descriptors (same eps as pair_distance)."""
    sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return torch.sqrt(sq.clamp_min(0) + eps)


def drlim(a: torch.Tensor, b: torch.Tensor, y: torch.Tensor, margin: float = 100.0) -> torch.Tensor:
    """DrLIM contrastive loss: mean of (1-Y)·½D² + Y·½·max(0, m-D)².  y: 0 = match, 1 = non-match."""
    d = pair_distance(a, b)
    y = _check_labels(y, len(d)).to(d.dtype)
    return ((1 - y) * 0.5 * d ** 2 + y * 0.5 * torch.clamp(margin - d, min=0) ** 2).mean()


def _cent_terms(d: torch.Tensor, y: torch.Tensor, margin: float) -> torch.Tensor:
    return (1 - y) * d ** 2 + y * torch.clamp(margin ** 2 - d ** 2, min=0)


def cent_drlim(a: torch.Tensor, b: torch.Tensor, y: torch.Tensor, margin: float = 100.0) -> torch.Tensor:
    """CENT-DrLIM: mean of (1-Y)·D² + Y·max(0, m² - D²).  y: 0 = match, 1 = non-match."""
    d = pair_distance(a, b)
    y = _check_labels(y, len(d)).to(d.dtype)
    return _cent_terms(d, y, margin).mean()


def _group_std(d: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    if int(mask.sum()) < 2:
        return d.new_zeros(())
    return d[mask].std(correction=0)


def cent_drlim_sd(a: torch.Tensor, b: torch.Tensor, y: torch.Tensor, margin: float = 100.0,
                  lam: float = 0.8) -> torch.Tensor:
    """CENT-DrLIM+SD: λ·CENT-DrLIM + (1-λ)·(σ0 + σ1), σ0/σ1 = population std of the distances of the
    matching / non-matching pairs of the batch (see the module docstring for this reading)."""
    if not 0.0 <= lam <= 1.0:
        raise InputError(f"lam must be in [0, 1], got {lam}")
    d = pair_distance(a, b)
    y = _check_labels(y, len(d))
    yf = y.to(d.dtype)
    sd = _group_std(d, y == 0) + _group_std(d, y == 1)
    return lam * _cent_terms(d, yf, margin).mean() + (1 - lam) * sd


def contrastive(a: torch.Tensor, b: torch.Tensor, y: torch.Tensor, pos_margin: float = 0.0,
                neg_margin: float = 1.0) -> torch.Tensor:
    """Plain contrastive loss with hinges on D: mean of (1-Y)·max(0, D-m_pos) + Y·max(0, m_neg-D)."""
    d = pair_distance(a, b)
    y = _check_labels(y, len(d)).to(d.dtype)
    return ((1 - y) * torch.clamp(d - pos_margin, min=0) + y * torch.clamp(neg_margin - d, min=0)).mean()


def triplet(anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor,
            margin: float = 1.0) -> torch.Tensor:
    """Triplet margin loss: mean of max(0, D(a,p) - D(a,n) + m)."""
    _check_pair(anchor, negative, "anchor, negative")
    return torch.clamp(pair_distance(anchor, positive) - pair_distance(anchor, negative) + margin, min=0).mean()


def triplet_batch_hard(anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor | None = None,
                       margin: float = 1.0) -> torch.Tensor:
    """Triplet loss with batch-hard negatives: for anchor i the negative is the nearest of the other
    positives p_j (j ≠ i) and of all given negatives n_j.  Needs N ≥ 2 when no negatives are given."""
    _check_pair(anchor, positive, "anchor, positive")
    n = anchor.shape[0]
    if negative is None and n < 2:
        raise InputError("triplet_batch_hard needs at least 2 triplets when no negatives are given")
    dpos = pair_distance(anchor, positive)
    cand = cross_distance(anchor, positive)
    cand = cand.masked_fill(torch.eye(n, dtype=torch.bool, device=cand.device), float("inf"))
    if negative is not None:
        if negative.ndim != 2 or negative.shape[1] != anchor.shape[1]:
            raise InputError(f"negative must be M×{anchor.shape[1]}, got {tuple(negative.shape)}")
        cand = torch.cat([cand, cross_distance(anchor, negative)], 1)
    hardest = cand.min(1).values
    return torch.clamp(dpos - hardest + margin, min=0).mean()


# name -> (function, kind): "pair" losses take (a, b, y), "triplet" losses take (anchor, pos, neg).
LOSSES = {
    "drlim": (drlim, "pair"),
    "cent-drlim": (cent_drlim, "pair"),
    "cent-drlim-sd": (cent_drlim_sd, "pair"),
    "contrastive": (contrastive, "pair"),
    "triplet": (triplet, "triplet"),
    "triplet-hard": (triplet_batch_hard, "triplet"),
}


def triplet_batch_loss(name: str, anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor,
                       **params: float) -> torch.Tensor:
    """Apply loss `name` (a key of LOSSES) to a batch of (anchor, positive, negative) descriptors.

    Pair losses see the N matching pairs (a_i, p_i) and the N non-matching pairs (a_i, n_i)."""
    if name not in LOSSES:
        raise InputError(f"unknown loss {name!r}; choose one of {', '.join(LOSSES)}")
    fn, kind = LOSSES[name]
    if kind == "triplet":
        return fn(anchor, positive, negative, **params)
    n = anchor.shape[0]
    y = torch.cat([torch.zeros(n), torch.ones(n)]).to(anchor.device)
    return fn(torch.cat([anchor, anchor]), torch.cat([positive, negative]), y, **params)
