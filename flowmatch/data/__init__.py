"""Data for flowmatch: procedural pairs (synthetic), dataset readers (datasets), augmentation (augment).

    from flowmatch.data import FlowAugment, Sintel, SyntheticFlow, collate, generate_pair

    pair = generate_pair(384, 512, seed=0)            # exact flow + occlusions, ~15 ms of CPU
    train = Sintel("/data/MPI-Sintel", pass_="final")  # FlowSample per consecutive frame pair
    aug = FlowAugment(crop=(320, 448))                 # FlowNet's augmentations, flow kept exact
    sample = aug(train[0], np.random.default_rng(0))
    batch = collate([sample])                          # torch tensors N×3×H×W, N×2×H×W, N×H×W

Flow is H×W×2 float32 in pixels, x (u) first, from img1 to img2, everywhere in this package.
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
