"""Registers the "flownets" and "flownetc" flow methods (FlowEstimator on the shipped weights).

The shipped weights are small configurations (width 0.25, batch norm) trained on this project's
procedural flying-shapes pairs only -- not on FlyingChairs/Sintel -- so expect far worse accuracy
on real footage than the published FlowNets.  Pass `weights=PATH` for any flowmatch FlowNet
checkpoint (e.g. one trained with `flowmatch train flownetc --data chairs ...`).
"""
from __future__ import annotations

import os
from functools import partial
from typing import Any

import numpy as np

from .._paths import FLOWNET_WEIGHTS, shipped_weights, weights_path
from ..estimator import FlowEstimator
from .options import Float, OneOf, Passthrough, Path
from .registry import Method, register

_cache: dict[tuple, Any] = {}


def _check(kind: str) -> str | None:
    path = weights_path(FLOWNET_WEIGHTS[kind])
    return None if os.path.isfile(path) else f"weights file {path} is missing"


def _estimator(kind: str, weights: str | None, device: str, size_mode: str, scale: float, precision: str = "auto"):
    path = os.path.abspath(weights) if weights else shipped_weights(kind)
    key = (kind, path, os.path.getmtime(path) if os.path.exists(path) else 0, str(device), size_mode, scale,
           precision)
    if key not in _cache:
        _cache.clear()  # one model in memory at a time is plenty
        _cache[key] = FlowEstimator.from_checkpoint(path, kind, device=device, size_mode=size_mode, scale=scale,
                                                    precision=precision)
    return _cache[key]


def _run(img1: np.ndarray, img2: np.ndarray, *, kind: str, device: str = "cpu", weights: str | None = None,
         size_mode: str = "pad", scale: float = 1.0, precision: str = "auto") -> np.ndarray:
    """img1, img2: float32 H×W×3 in [0, 255] -> flow H×W×2 float32, pixels, x (u) first.
    precision: "auto" (bf16 where the device runs it natively, fp32 elsewhere), "fp32", "bf16", "fp16" (GPU)."""
    est = _estimator(kind, weights, device, size_mode, scale, precision)
    return est(np.ascontiguousarray(img1, np.float32) / 255.0, np.ascontiguousarray(img2, np.float32) / 255.0)


# scale resizes the frames before the network: bounded so a typo cannot ask for a 1e6× larger image
# (the estimator checks the resulting working size too); precision is checked by the estimator.
OPTIONS = {"weights": Path(), "size_mode": OneOf(("pad", "resize")), "scale": Float(0.0, 8.0, open_lo=True),
           "precision": Passthrough()}

for _kind, _label in (("flownets", "FlowNetS"), ("flownetc", "FlowNetC")):
    register(Method(
        name=_kind,
        run=partial(_run, kind=_kind),
        description=f"{_label} (small, trained on procedural pairs only; weights=PATH for your own)",
        needs_extension=False,
        needs_weights=True,
        uses_gpu=True,
        check=partial(_check, _kind),
        defaults={"weights": None, "size_mode": "pad", "scale": 1.0, "precision": "auto"},
        options=OPTIONS,
    ))
