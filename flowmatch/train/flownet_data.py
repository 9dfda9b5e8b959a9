"""Training batches for FlowNet: any mixture of `--data` sources, FlowNet's augmentations, one batch per step.

Batch `step` is a pure function of (seed, step): sample j of the global batch draws its source, its
pair and its augmentation from the Generator default_rng([seed, step, j]).  So a resumed run sees
exactly the batches it would have seen, worker processes can make batches in any order
(FlowBatches is a map-style torch Dataset indexed by step), and rank r of W, taking slots r, r+W, ...,
sees what one process with the whole global batch sees.

Sources (flowmatch.data.sources specs): the generated ones (flying-photos, flying-photos-final,
photos, synthetic) and `real` come from TrainingSources, made at gen_scale × crop so the geometric
augmentation has room; dataset sources (chairs, sintel, kitti2012, kitti2015 with a root) are read
whole, one random item per draw.  A plain ``chairs``/``sintel``/``kitti`` takes its folder from --root.
"""
from __future__ import annotations

import os
from typing import Any, Callable, Sequence

import numpy as np
import torch

from ..data.sources import DATASETS, parse_source
from ..errors import DatasetLayoutError, InputError

__all__ = ["resolve_specs", "FlowBatches", "make_loader", "heldout_pairs", "images_to_float"]


def resolve_specs(specs: Sequence[str], root: str | None = None, kitti_year: int = 2015) -> list[str]:
    """`--data` specs with the legacy forms filled in: ``chairs``/``sintel``/``kitti`` without an argument
    take `root` (``kitti`` means kitti<kitti_year>).  Each result parses (InputError otherwise)."""
    out = []
    for spec in specs:
        body, at, weight = spec.partition("@")
        kind, colon, arg = body.partition(":")
        if kind == "kitti":
            kind = f"kitti{kitti_year}"
        if kind in DATASETS and not arg:
            if not root:
                raise InputError(f"--data {kind} needs the dataset folder: --data {kind}:/path or --root /path")
            arg = root
        spec = f"{kind}{':' if arg else ''}{arg}{at}{weight}"
        parse_source(spec)
        out.append(spec)
    return out


def _open_dataset(kind: str, root: str, split: str, sintel_pass: str) -> Any:
    if not os.path.isdir(root):
        raise DatasetLayoutError(f"dataset folder {root!r} does not exist or is not a folder (--data {kind}:ROOT)")
    if not os.access(root, os.R_OK | os.X_OK):
        raise DatasetLayoutError(f"dataset folder {root!r} is not readable; check its permissions")
    from ..data import datasets

    if kind == "chairs":
        ds = datasets.FlyingChairs(root, split={"training": "train", "validation": "val"}.get(split, split))
    elif kind == "sintel":
        ds = datasets.Sintel(root, split=split, pass_=sintel_pass)
    else:
        ds = datasets.Kitti(root, year=int(kind[5:]), split=split)
    if len(ds) == 0:
        raise DatasetLayoutError(f"dataset {kind!r} under {root!r} has no samples for split {split!r}")
    return ds


def _crop(sample: dict[str, np.ndarray], size: tuple[int, int], rng: np.random.Generator) -> dict[str, np.ndarray]:
    h, w = sample["img1"].shape[:2]
    ch, cw = size
    if h < ch or w < cw:
        raise InputError(f"a training sample of {w}×{h} is smaller than --crop {ch} {cw}; lower --crop or "
                         "keep the augmentation on")
    y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    return {k: v[y:y + ch, x:x + cw] for k, v in sample.items()}


def _rgb(img: np.ndarray) -> np.ndarray:
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    if img.dtype != np.uint8:
        raise InputError(f"training images must be uint8 RGB, got {img.dtype}")
    return img


class FlowBatches(torch.utils.data.Dataset):
    """Item `step` is this process's share of the step's batch: img1, img2 (N×3×H×W uint8), flow
    (N×2×H×W float32, pixels, x first; 0 where invalid) and valid (N×H×W bool), N = len(slots).

    Args:
        specs: resolved `--data` specs (resolve_specs).
        crop: (H, W) of the samples; gen_scale: generated pairs are gen_scale × crop (rounded to 8 px).
        slots: which samples of the global batch this process makes; seed, steps: the stream and its length.
        augment: FlowNet's geometric + photometric augmentation (flowmatch.data.augment.FlowAugment).
        photos: photo folder (None = default); split, sintel_pass: for dataset sources.
    """

    def __init__(self, specs: Sequence[str], crop: tuple[int, int], slots: Sequence[int], seed: int, steps: int,
                 augment: bool = True, gen_scale: float = 1.2, photos: str | None = None,
                 split: str = "training", sintel_pass: str = "clean"):
        self.specs, self.crop, self.slots = list(specs), (int(crop[0]), int(crop[1])), [int(s) for s in slots]
        self.seed, self.steps, self.augment, self.photos = int(seed), int(steps), bool(augment), photos
        self.gen_size = tuple(max(c, int(round(c * gen_scale / 8)) * 8) for c in self.crop)
        self.split, self.sintel_pass = split, sintel_pass
        self._draws: list[Callable[[np.random.Generator], Any]] | None = None
        self._weights = np.array([parse_source(s).weight for s in self.specs], np.float64)
        self._weights /= self._weights.sum()
        self._augment = None
        self.draws  # opened now: a bad spec or a missing folder fails before any worker starts

    @property
    def draws(self) -> list[Callable[[np.random.Generator], Any]]:
        if self._draws is None:  # once per process (workers open their own photo cache)
            from ..data.sources import TrainingSources

            draws = []
            for spec in self.specs:
                s = parse_source(spec)
                if s.kind in DATASETS:
                    ds = _open_dataset(s.kind, s.arg, self.split, self.sintel_pass)
                    draws.append(lambda rng, ds=ds: ds[int(rng.integers(len(ds)))])
                else:
                    src = TrainingSources.from_specs([spec.partition("@")[0]], size=self.gen_size,
                                                     photos=self.photos, seed=self.seed)
                    draws.append(src.draw)
            self._draws = draws
        return self._draws

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_draws": None, "_augment": None}

    def __len__(self) -> int:
        return self.steps

    def sample(self, step: int, j: int) -> dict[str, np.ndarray]:
        """Sample j of the global batch of `step` (img1, img2 H×W×3 uint8, flow H×W×2, valid H×W)."""
        rng = np.random.default_rng([self.seed, int(step), int(j)])
        i = int(rng.choice(len(self.draws), p=self._weights)) if len(self.draws) > 1 else 0
        s = self.draws[i](rng)
        if s.flow is None:
            raise DatasetLayoutError(f"training sample {getattr(s, 'name', '')!r} has no ground-truth flow")
        valid = s.valid if s.valid is not None else np.ones(s.flow.shape[:2], bool)
        if self.augment:
            if self._augment is None:
                from ..data.augment import FlowAugment
                self._augment = FlowAugment(crop=self.crop)
            s = self._augment(s, rng)
            valid = s.valid if s.valid is not None else np.ones(s.flow.shape[:2], bool)
        out = {"img1": _rgb(s.img1), "img2": _rgb(s.img2), "flow": s.flow, "valid": valid}
        return out if out["img1"].shape[:2] == self.crop else _crop(out, self.crop, rng)

    def __getitem__(self, step: int) -> dict[str, torch.Tensor]:
        samples = [self.sample(step, j) for j in self.slots]

        def stack(key: str, dtype: Any) -> torch.Tensor:
            return torch.from_numpy(np.stack([np.ascontiguousarray(s[key], dtype) for s in samples]))

        flow, valid = stack("flow", np.float32).permute(0, 3, 1, 2), stack("valid", bool)
        if not torch.isfinite(flow[valid.unsqueeze(1).expand_as(flow)]).all():
            raise InputError(f"step {step}: the target flow has NaN/inf at valid pixels; check the dataset")
        return {"img1": stack("img1", np.uint8).permute(0, 3, 1, 2), "img2": stack("img2", np.uint8).permute(0, 3, 1, 2),
                "flow": torch.nan_to_num(flow, nan=0.0, posinf=0.0, neginf=0.0).contiguous(), "valid": valid}


def images_to_float(img: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """N×3×H×W uint8 -> float32 in [0, 1] (on the tensor's device; channels_last when asked)."""
    x = img.float().div_(255.0)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x.contiguous()


def make_loader(data: FlowBatches, start: int, workers: int, pin_memory: bool = False) -> Any:
    """An iterator over the batches of steps start, start+1, ... (in `workers` processes; 0 = inline)."""
    from .common import step_batches

    return step_batches(data, start, data.steps, workers, pin_memory)


def heldout_pairs(n: int, height: int, width: int, seed: int = 12345, **options: Any) -> list:
    """Procedural pairs never seen in training (the seed stream [seed, 3, k] is used by no source)."""
    from ..data.synthetic import generate_pair

    return [generate_pair(height, width, np.random.default_rng([seed, 3, k]), **options) for k in range(n)]
