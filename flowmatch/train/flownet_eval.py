"""Held-out real-pair EPE during FlowNet training: the learning curve the trainer records.

The pairs are flowmatch.data.sources.HELD_OUT_REAL (never trained on), grouped as the project
reports them: sintel-clean, sintel-final, chairs, kitti, plus the all-pairs mean and zero flow's EPE
for scale.  Frames run at full size through flowmatch.estimator.FlowEstimator (padded to 64).
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

__all__ = ["group_of", "heldout_real", "evaluate_real"]


def group_of(sample: Any) -> str:
    """The report group of a held-out sample case: sintel-clean / sintel-final / chairs / kitti / other."""
    group = str((getattr(sample, "meta", None) or {}).get("group", "")) or str(sample.name).split("/")[0]
    if group == "sintel":
        return "sintel-final" if "final" in str(sample.name) else "sintel-clean"
    if group.startswith("kitti"):
        return "kitti"
    return "chairs" if group == "flyingchairs" else group or "other"


def heldout_real(root: str | None = None) -> list[Any]:
    """The held-out real pairs present on this machine ([] without ../shared/data/real)."""
    from .patchbatch_data import heldout_real_frames

    return heldout_real_frames(root, min_size=64)


def _epe(flow: np.ndarray, gt: np.ndarray, valid: np.ndarray | None) -> float:
    e = np.linalg.norm(flow - gt, axis=2)
    m = np.isfinite(e) if valid is None else (valid & np.isfinite(e))
    return float(e[m].mean()) if m.any() else float("nan")


@torch.no_grad()
def evaluate_real(model: torch.nn.Module, frames: Sequence[Any], device: torch.device, precision: str
                  ) -> dict[str, float]:
    """Mean EPE (px) per group ("real_<group>"), over all pairs ("real_epe") and of zero flow ("zero_epe").
    The model is left in training mode."""
    from ..estimator import FlowEstimator

    if not frames:
        return {}
    est = FlowEstimator(model, device=device, precision=precision)
    groups: dict[str, list[float]] = {}
    zero = []
    try:
        for s in frames:
            a = torch.from_numpy(np.ascontiguousarray(s.img1)).permute(2, 0, 1)[None].float() / 255
            b = torch.from_numpy(np.ascontiguousarray(s.img2)).permute(2, 0, 1)[None].float() / 255
            flow = est.predict(a, b)[0].permute(1, 2, 0).cpu().numpy()
            groups.setdefault(group_of(s), []).append(_epe(flow, s.flow, s.valid))
            zero.append(_epe(np.zeros_like(s.flow), s.flow, s.valid))
    finally:
        model.train()
    out = {f"real_{g}": float(np.mean(v)) for g, v in sorted(groups.items())}
    out["real_epe"] = float(np.mean([e for v in groups.values() for e in v]))
    out["zero_epe"] = float(np.mean(zero))
    return out
