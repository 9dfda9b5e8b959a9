"""Training-data sources chosen by name, mixed by weight: what `--data` means for every trainer.

    sources = TrainingSources.from_specs(["flying-photos@0.7", "photos@0.3"], size=(256, 256))
    sample = sources.draw(np.random.default_rng([seed, step]))   # img1, img2, flow, valid, occlusion, name

A spec is ``NAME[:ARG][@WEIGHT]``:

| name | what | ARG |
|---|---|---|
| ``flying-photos`` | layered pairs of real photos, Chairs-like (flowmatch.data.flying_photos) | distinct pairs to cycle (default: endless) |
| ``flying-photos-final`` | the same with Sintel-final-like effects and larger motions | as above |
| ``photos`` | a photo and its copy under a homography + elastic warp (flowmatch.data.photo_pairs) | as above |
| ``synthetic`` | procedural noise textures (flowmatch.data.synthetic) | as above |
| ``real`` | the sample-case folders with ground truth (../shared/data/real) minus HELD_OUT_REAL | folder |
| ``sintel``, ``kitti2012``, ``kitti2015``, ``chairs`` | the dataset readers (training split) | the dataset root (required) |

Generated sources make a fresh pair for every draw (a pure function of the Generator's state, so a
training step's data depends only on (seed, step) and resume is exact).  Weights are relative
(default 1 each).  The photo folder is a setting (``photos=``; default ../shared/data/photos when
present, $FLOWMATCH_PHOTOS overrides it), and a missing folder is a DatasetLayoutError naming it.

Held-out real pairs: HELD_OUT_REAL lists every case of ../shared/data/real; no training source
ever reads them, so all numbers the project reports on them are held-out numbers.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from ..errors import DatasetLayoutError, InputError

__all__ = ["HELD_OUT_REAL", "SourceSpec", "parse_source", "TrainingSources", "GENERATED", "DATASETS"]

# "<group>/<case>" of every pair in ../shared/data/real: never used for training or tuning.
HELD_OUT_REAL = (
    "flyingchairs/flownet2_examples_0000000", "flyingchairs/flownet2_examples_0000001",
    "flyingchairs/flownet2_examples_0000002", "flyingchairs/mmflow_tests_00001_crop50",
    "kitti2012/000157_10",
    "sintel/alley_1_clean_0002", "sintel/alley_1_final_0002", "sintel/bandage_1_final_0035",
    "sintel/cave_2_clean_0002", "sintel/market_5_final_0009", "sintel/temple_3_final_0022",
)

GENERATED = ("flying-photos", "flying-photos-final", "photos", "synthetic")
DATASETS = ("sintel", "kitti2012", "kitti2015", "chairs")
_KINDS = GENERATED + ("real",) + DATASETS


@dataclass(frozen=True)
class SourceSpec:
    """One parsed `--data` spec: kind, its argument ("" when none) and its relative weight."""
    kind: str
    arg: str = ""
    weight: float = 1.0


def parse_source(spec: str) -> SourceSpec:
    """Parse ``NAME[:ARG][@WEIGHT]`` (see the module docstring); InputError when malformed."""
    if not isinstance(spec, str) or not spec.strip():
        raise InputError(f"--data {spec!r}: expected NAME[:ARG][@WEIGHT] with NAME one of {', '.join(_KINDS)}")
    body, _, wtxt = spec.strip().rpartition("@") if "@" in spec else (spec.strip(), "", "")
    kind, _, arg = body.partition(":")
    if kind not in _KINDS:
        raise InputError(f"--data {spec!r}: unknown source {kind!r}; use one of {', '.join(_KINDS)}")
    weight = 1.0
    if wtxt:
        try:
            weight = float(wtxt)
        except ValueError:
            raise InputError(f"--data {spec!r}: weight {wtxt!r} is not a number") from None
        if not (math.isfinite(weight) and weight > 0):
            raise InputError(f"--data {spec!r}: weight must be a positive finite number")
    if kind in GENERATED and arg:
        if not arg.isdigit() or int(arg) < 1 or int(arg) > 10**9:
            raise InputError(f"--data {spec!r}: {kind}:N takes a count of distinct pairs N in 1..1e9")
    if kind in DATASETS and not arg:
        raise InputError(f"--data {kind} needs the dataset root: --data {kind}:/path/to/{kind}")
    return SourceSpec(kind, arg, weight)


def _generator(kind: str, photos: Any, size: tuple[int, int]) -> Callable[[np.random.Generator], Any]:
    h, w = size
    if kind == "synthetic":
        from .synthetic import generate_pair

        def draw(rng: np.random.Generator) -> Any:
            return generate_pair(h, w, rng, noise=float(rng.uniform(0, 4)), illumination=float(rng.uniform(0, 0.15)))
        return draw
    lib = photos()
    if kind == "photos":
        from .photo_pairs import photo_pair
        return lambda rng: photo_pair(lib, rng, h, w)
    from .flying_photos import flying_photos_pair
    if kind == "flying-photos":
        return lambda rng: flying_photos_pair(lib, rng, h, w)
    # Sintel final: larger motions, motion blur, fog, stronger photometric change.
    return lambda rng: flying_photos_pair(lib, rng, h, w, max_motion=80.0, final=True)


def _fixed_frames(spec: SourceSpec, frames_per_source: int, seed: int) -> list[Any]:
    from . import datasets

    if spec.kind == "real":
        root = spec.arg or None
        cases = datasets.sample_case_dirs(root)
        keep = [c for c in cases if "/".join(os.path.normpath(c).split(os.sep)[-2:]) not in HELD_OUT_REAL]
        if not keep:
            raise DatasetLayoutError(f"--data real: every sample case below {root or 'the default real folder'!r} "
                                     "is held out for evaluation (flowmatch.data.sources.HELD_OUT_REAL); "
                                     "give a folder of other cases: --data real:/path")
        return [datasets.read_sample_case(c) for c in keep]
    if spec.kind == "sintel":
        ds = datasets.Sintel(spec.arg)
    elif spec.kind == "chairs":
        ds = datasets.FlyingChairs(spec.arg)
    else:
        ds = datasets.Kitti(spec.arg, year=int(spec.kind[5:]))
    idx = np.random.default_rng(seed).permutation(len(ds))[:frames_per_source]
    return [ds[int(i)] for i in idx]


class TrainingSources:
    """A weighted mixture of training sources; draw() returns one sample (img1, img2 H×W×3 uint8;
    flow H×W×2 float32 px, x first; valid / occlusion H×W bool or None; name).

    Args:
        specs: parsed SourceSpecs (see from_specs for strings).
        size: (height, width) of generated pairs.
        photos: photo folder for the photo-based sources (None = default_photo_dir()).
        frames_per_source: frames loaded from each dataset source (real: all visible cases).
        seed: seed of the dataset sources' frame choice.
    """

    def __init__(self, specs: Sequence[SourceSpec], size: tuple[int, int] = (256, 256),
                 photos: str | None = None, frames_per_source: int = 64, seed: int = 0):
        if not specs:
            raise InputError("no training data: give at least one --data source")
        self.specs = list(specs)
        self.size = (int(size[0]), int(size[1]))
        self.photos_dir = photos
        self._library = None
        self._draws: list[Callable[[np.random.Generator], Any]] = []
        for spec in self.specs:
            if spec.kind in GENERATED:
                gen = _generator(spec.kind, self.library, self.size)
                self._draws.append(self._cycled(gen, int(spec.arg)) if spec.arg else gen)
            else:
                frames = _fixed_frames(spec, frames_per_source, seed)
                self._draws.append(lambda rng, fr=frames: fr[int(rng.integers(len(fr)))])
        wts = np.array([s.weight for s in self.specs], np.float64)
        self.weights = wts / wts.sum()

    @classmethod
    def from_specs(cls, specs: Sequence[str], **kwargs: Any) -> "TrainingSources":
        """Parse the spec strings and build the mixture (kwargs as for the constructor)."""
        return cls([parse_source(s) for s in specs], **kwargs)

    def library(self) -> Any:
        """The PhotoLibrary (opened on first use, once)."""
        if self._library is None:
            from .photos import PhotoLibrary
            self._library = PhotoLibrary(self.photos_dir)
        return self._library

    @staticmethod
    def _cycled(gen: Callable[[np.random.Generator], Any], n: int) -> Callable[[np.random.Generator], Any]:
        # N distinct pairs: pair k is generated from seed k (the draw picks k).
        return lambda rng: gen(np.random.default_rng([7_919, int(rng.integers(n))]))

    def draw(self, rng: np.random.Generator) -> Any:
        """One sample from a source chosen by weight; a pure function of rng's state."""
        i = int(rng.choice(len(self._draws), p=self.weights)) if len(self._draws) > 1 else 0
        return self._draws[i](rng)
