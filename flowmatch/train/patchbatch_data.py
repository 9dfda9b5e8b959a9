"""Batches of patch triplets for descriptor training, and the fixed held-out sets it is judged on.

Batch `step` is a pure function of (seed, step): `frames_per_batch` fresh pairs are drawn from the
training sources (flowmatch.data.sources) with the Generator default_rng([seed, step]) and the
triplets are cut from them (flowmatch.data.patch_pairs), so a resumed run sees exactly the batches
it would have seen, and batches can be made in worker processes in any order (TripletBatches is a
map-style torch Dataset indexed by step).
"""
from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np
import torch

from ..data.patch_pairs import PatchPairSampler, PatchTriplets
from ..data.sources import HELD_OUT_REAL, TrainingSources
from ..errors import DatasetLayoutError, InputError

__all__ = ["TripletBatches", "heldout_sets", "heldout_real_frames", "photo_validation_frames"]


class TripletBatches(torch.utils.data.Dataset):
    """Dataset whose item `step` is a dict of the step's triplets: anchor, positive, negative
    (B×1×P×P float32), frame (B int64, index of the pair within the batch) and xy2 (B×2 float32,
    the true match in img2, pixels) — the last two let in-batch mining skip false negatives.

    Args:
        specs: `--data` specs (flowmatch.data.sources).
        patch_size: P of the network.
        batch: triplets per step; frames_per_batch: fresh pairs they are cut from.
        size: (H, W) of generated pairs.
        sampler_options: PatchPairSampler options (neg_min, neg_max, far_negatives, augment).
        photos: photo folder (None = default).
        steps: the dataset's length (the run's number of steps).
    """

    def __init__(self, specs: Sequence[str], patch_size: int, batch: int, frames_per_batch: int,
                 size: tuple[int, int], seed: int, steps: int, photos: str | None = None,
                 **sampler_options: Any):
        if batch < 2 or frames_per_batch < 1 or frames_per_batch > batch:
            raise InputError(f"need batch >= 2 and 1 <= frames_per_batch <= batch, got {batch}, {frames_per_batch}")
        self.specs, self.patch_size, self.batch = list(specs), int(patch_size), int(batch)
        self.frames_per_batch, self.size, self.seed, self.steps = int(frames_per_batch), size, int(seed), int(steps)
        self.photos, self.options = photos, sampler_options
        self._sources: TrainingSources | None = None
        self.sources  # opened now: a bad spec or a missing folder fails before any worker starts

    @property
    def sources(self) -> TrainingSources:
        if self._sources is None:  # once per process (workers open their own photo cache)
            self._sources = TrainingSources.from_specs(self.specs, size=self.size, photos=self.photos,
                                                       seed=self.seed)
        return self._sources

    def __getstate__(self) -> dict[str, Any]:
        # Worker processes open their own sources (and photo cache).
        return {**self.__dict__, "_sources": None}

    def __len__(self) -> int:
        return self.steps

    def __getitem__(self, step: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([self.seed, int(step)])
        for _ in range(8):  # a draw whose frames have no usable pixel is redrawn (rare)
            frames = [self.sources.draw(rng) for _ in range(self.frames_per_batch)]
            try:
                sampler = PatchPairSampler(frames, self.patch_size, seed=0, **self.options)
            except InputError:
                continue
            t = sampler.sample(self.batch, rng)
            return {"anchor": t.anchor, "positive": t.positive, "negative": t.negative,
                    "frame": torch.from_numpy(t.frame.astype(np.int64)), "xy2": torch.from_numpy(t.xy2)}
        raise InputError(f"step {step}: 8 draws of training frames had no usable pixel; check the --data sources")


def heldout_real_frames(root: str | None = None, min_size: int = 128) -> list[Any]:
    """The held-out real pairs (HELD_OUT_REAL) found below `root` (default ../shared/data/real) whose
    shorter side is at least min_size; [] when the folder is absent."""
    from ..data.datasets import read_sample_case, sample_case_dirs

    try:
        cases = sample_case_dirs(root)
    except DatasetLayoutError:
        return []
    out = []
    for c in cases:
        if "/".join(os.path.normpath(c).split(os.sep)[-2:]) in HELD_OUT_REAL:
            s = read_sample_case(c)
            if min(s.img1.shape[:2]) >= min_size:
                out.append(s)
    return out


def photo_validation_frames(n: int = 16, size: tuple[int, int] = (256, 256), photos: str | None = None,
                            seed: int = 10_000_019) -> list[Any]:
    """n flying-photos and photo pairs from seeds no training step uses (photos may repeat: this set
    measures fit, the held-out real set measures generalisation); [] without a photo folder."""
    try:
        src = TrainingSources.from_specs(["flying-photos", "photos"], size=size, photos=photos)
    except DatasetLayoutError:
        return []
    return [src.draw(np.random.default_rng([seed, k])) for k in range(n)]


def heldout_sets(patch_size: int, per_set: int = 2048, real_root: str | None = None,
                 photos: str | None = None, input_norm: str = "global") -> dict[str, PatchTriplets]:
    """Fixed evaluation triplets (no augmentation, near negatives 1-8 px): "real" (held-out real pairs)
    and "photos" (validation photo pairs), equal share per frame, cut as a network with `input_norm`
    sees them; sets without frames are left out."""
    sets = {}
    for i, (name, frames) in enumerate((("real", heldout_real_frames(real_root)),
                                        ("photos", photo_validation_frames(photos=photos)))):
        if frames:
            sets[name] = PatchPairSampler(frames, patch_size, augment=False, seed=i + 1,
                                          input_norm=input_norm).sample(per_set)
    return sets
