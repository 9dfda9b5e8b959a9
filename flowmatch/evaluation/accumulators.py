"""Which metric accumulator scores which dataset (the official protocol of each), and the
per-image-mean accumulator of Middlebury and Chairs.  Every accumulator keeps its state as plain
numbers and lists (state() / merge()), so the states of torchrun ranks can be gathered and merged."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from . import metrics as M

__all__ = ["ImageMeanMetrics", "new_accumulator", "accumulate", "merge_states"]


class ImageMeanMetrics:
    """Per-image mean EPE, angular error and >3 px outlier share, averaged over images
    (Middlebury's and Chairs' convention); images without a valid pixel are left out of the averages.  Same state()/merge() protocol as flowmatch.metrics."""

    def __init__(self) -> None:
        self.epe: list[float] = []
        self.ae: list[float] = []
        self.out3: list[float] = []

    def add(self, flow: np.ndarray, gt: np.ndarray, valid: np.ndarray | None = None) -> dict[str, float]:
        """Score one image (H×W×2 flows, pixels); returns its EPE (px), AE (deg) and >3 px share (%)."""
        self.epe.append(float(M.epe(flow, gt, valid)))
        self.ae.append(float(M.angular_error(flow, gt, valid)))
        self.out3.append(float(M.outlier_rate(flow, gt, valid, threshold=3.0)))
        return {"epe": self.epe[-1], "angular_error": self.ae[-1], "outliers_3px": self.out3[-1]}

    def state(self) -> dict:
        return {"epe": list(self.epe), "ae": list(self.ae), "out3": list(self.out3)}

    def merge(self, states: Sequence[dict]) -> "ImageMeanMetrics":
        for st in states:
            self.epe += st["epe"]
            self.ae += st["ae"]
            self.out3 += st["out3"]
        return self

    def result(self) -> dict:
        def mean(xs: list[float]) -> float:
            # an image without valid pixels (NaN) is left out of the average, as in flowmatch.metrics
            finite = [x for x in xs if np.isfinite(x)]
            return float(np.mean(finite)) if finite else float("nan")

        return {"epe": mean(self.epe), "angular_error": mean(self.ae), "outliers_3px": mean(self.out3),
                "images": len(self.epe)}


def new_accumulator(dataset: str) -> Any:
    if dataset == "sintel":
        return M.SintelMetrics()
    if dataset == "kitti2012":
        return M.Kitti2012Metrics()
    if dataset == "kitti2015":
        return M.Kitti2015Metrics()
    return ImageMeanMetrics()


def accumulate(dataset: str, acc: Any, sample: Any, flow: np.ndarray) -> dict[str, float]:
    """Feed one frame to the dataset's official accumulator; returns that frame's own numbers
    (the accumulator's keys, e.g. "EPE-all" for Sintel, "Fl-all" for KITTI 2015)."""
    meta = sample.meta or {}
    if dataset == "sintel":
        return acc.add(flow, sample.flow, valid=sample.valid, occlusion=sample.occlusion)
    if dataset == "kitti2012":
        return acc.add(flow, sample.flow, sample.valid, noc_valid=meta.get("noc_valid"))
    if dataset == "kitti2015":
        return acc.add(flow, sample.flow, sample.valid, obj_map=meta.get("obj_map"), noc_valid=meta.get("noc_valid"))
    return acc.add(flow, sample.flow, sample.valid)


def merge_states(dataset: str, states: Sequence[dict]) -> Any:
    """A fresh accumulator holding `states` merged in the given order."""
    acc = new_accumulator(dataset)
    merged = acc.merge(list(states))
    return merged if merged is not None else acc
