"""Data for flowmatch: procedural pairs (synthetic), dataset readers (datasets), augmentation (augment).

    from flowmatch.data import generate_pair, Sintel, FlowAugment
"""
from __future__ import annotations

import importlib
from typing import Any

from .synthetic import SyntheticPair, SyntheticSequence, generate_pair, generate_sequence

# Loaded on first use: the readers import flowmatch.io, augmentation is only needed for training.
_LAZY = {
    "FlowSample": "datasets", "FlowDataset": "datasets", "Sintel": "datasets", "Kitti": "datasets",
    "FlyingChairs": "datasets", "Middlebury": "datasets", "SyntheticFlow": "datasets",
    "FramePair": "datasets", "collate": "datasets",
    "FlowAugment": "augment",
}

__all__ = ["SyntheticPair", "SyntheticSequence", "generate_pair", "generate_sequence", *sorted(_LAZY)]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"flowmatch.data.{_LAZY[name]}"), name)
    if name in ("synthetic", "datasets", "augment"):
        return importlib.import_module(f"flowmatch.data.{name}")
    raise AttributeError(f"module 'flowmatch.data' has no attribute {name!r}")
