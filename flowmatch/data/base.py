"""What every dataset reader shares: FlowSample (one loaded pair), FramePair (one listed pair),
the FlowDataset sequence base class, layout checks, and `collate` for DataLoaders."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

import numpy as np

from ..errors import DatasetLayoutError, InputError


@dataclass
class FlowSample:
    """One image pair with its ground truth.

    img1, img2: H×W×3 uint8 RGB.  flow: H×W×2 float32 (pixels, x (u) first) from img1 to img2, or
    None when the split has no ground truth.  valid: H×W bool (True where flow is known) or None.
    occlusion: H×W bool (True = img1 pixel not visible in img2) or None when the dataset has none.
    name: a stable identifier ("alley_1/frame_0001", "000123_10", ...).  meta: per-dataset
    extras (scene/frame, KITTI id and masks, ...).
    """

    img1: np.ndarray
    img2: np.ndarray
    flow: np.ndarray | None
    valid: np.ndarray | None
    occlusion: np.ndarray | None = None
    name: str = ""
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class FramePair:
    """The files of one pair, without loading them.

    img1, img2: image paths.  flow: ground-truth path or None.  extra: other per-pair files by role
    (e.g. "occlusion", "invalid", "flow_noc", "obj_map").  name, meta: as in the loaded FlowSample."""

    img1: str | None
    img2: str | None
    flow: str | None
    name: str
    extra: dict[str, str] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)


# ----------------------------------------------------------------------------------------------
# helpers

def require_dir(path: str, what: str) -> str:
    if not os.path.isdir(path):
        raise DatasetLayoutError(f"missing folder {path!r}: expected {what}")
    return path


def require_file(path: str, what: str) -> str:
    if not os.path.isfile(path):
        raise DatasetLayoutError(f"missing file {path!r}: expected {what}")
    return path


def listdir(path: str) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except OSError as e:
        raise DatasetLayoutError(f"cannot list folder {path!r}: {e.strerror}") from e


def as_rgb8(img: np.ndarray, path: str) -> np.ndarray:
    """H×W×3 uint8 RGB from an image as stored (grey -> 3 channels; 16 bit -> 8 bit)."""
    if img.dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    if img.dtype != np.uint8:
        raise DatasetLayoutError(f"{path!r}: expected an 8- or 16-bit image, got {img.dtype}")
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    return img


def read_rgb(path: str) -> np.ndarray:
    from .. import io
    return as_rgb8(io.read_image(path), path)


def check_same_size(sample: FlowSample, pair: FramePair) -> FlowSample:
    shapes = {"img1": sample.img1.shape[:2], "img2": sample.img2.shape[:2]}
    if sample.flow is not None:
        shapes["flow"] = sample.flow.shape[:2]
    if sample.occlusion is not None:
        shapes["occlusion"] = sample.occlusion.shape[:2]
    if len(set(shapes.values())) != 1:
        raise DatasetLayoutError(f"pair {pair.name!r}: files differ in size {shapes} "
                                 f"({pair.img1}, {pair.img2}, {pair.flow})")
    return sample


def split_name(split: str, names: dict[str, str], dataset: str) -> str:
    try:
        return names[split]
    except (KeyError, TypeError):
        raise InputError(f"{dataset}: split={split!r} is not one of {', '.join(sorted(names))}") from None


class FlowDataset(Sequence[FlowSample]):
    """A sequence of FlowSample over a list of FramePair; subclasses implement `_load(pair)`.

    Works as a torch Dataset (len + integer indexing); `frame_pairs` lists the files."""

    def __init__(self, pairs: list[FramePair]) -> None:
        self._pairs = pairs

    @property
    def frame_pairs(self) -> list[FramePair]:
        """The pairs' files, names and meta in dataset order (nothing is loaded)."""
        return list(self._pairs)

    def __len__(self) -> int:
        return len(self._pairs)

    def __getitem__(self, index: int) -> FlowSample:  # type: ignore[override]
        if isinstance(index, slice):
            raise InputError("dataset slicing is not supported; index pairs one at a time "
                             "(or use frame_pairs for the listing)")
        if not isinstance(index, (int, np.integer)):
            raise InputError(f"dataset index must be an int, got {type(index).__name__}")
        n = len(self._pairs)
        i = int(index) + n if index < 0 else int(index)
        if not 0 <= i < n:
            raise IndexError(f"index {index} out of range for a dataset of {n} pairs")
        return self._load(self._pairs[i])

    def __iter__(self) -> Iterator[FlowSample]:
        for i in range(len(self)):
            yield self[i]

    def _load(self, pair: FramePair) -> FlowSample:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self)} pairs)"


# ----------------------------------------------------------------------------------------------
# batching

def collate(samples: Sequence[FlowSample]) -> dict[str, Any]:
    """Stack FlowSamples of equal size into torch tensors (a DataLoader collate_fn).

    Returns img1, img2: N×3×H×W float32 in [0, 1]; flow: N×2×H×W float32 (pixels, x first);
    valid: N×H×W bool; occlusion: N×H×W bool (False where a sample has none); names: list[str].
    Samples without ground truth get flow 0 and valid False."""
    import torch

    if not samples:
        raise InputError("collate: got no samples")
    shapes = {s.img1.shape[:2] for s in samples}
    if len(shapes) != 1:
        raise InputError(f"collate: samples differ in size {sorted(shapes)}; crop or resize them first "
                         "(FlowAugment(crop=...))")
    h, w = shapes.pop()

    def img(x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(x)).permute(2, 0, 1).float().div_(255.0)

    zeros_flow = np.zeros((h, w, 2), np.float32)
    zeros_mask = np.zeros((h, w), bool)
    return {
        "img1": torch.stack([img(s.img1) for s in samples]),
        "img2": torch.stack([img(s.img2) for s in samples]),
        "flow": torch.stack([torch.from_numpy(np.ascontiguousarray(s.flow if s.flow is not None else zeros_flow))
                             .permute(2, 0, 1).float() for s in samples]),
        "valid": torch.stack([torch.from_numpy(np.ascontiguousarray(s.valid if s.valid is not None else zeros_mask))
                              for s in samples]),
        "occlusion": torch.stack([torch.from_numpy(np.ascontiguousarray(
            s.occlusion if s.occlusion is not None else zeros_mask)) for s in samples]),
        "names": [s.name for s in samples],
    }
