"""A folder of real photographs as a source of textures and image content for training pairs.

    lib = PhotoLibrary()                       # ../shared/data/photos beside the checkout, or a folder
    crop = lib.crop(rng, 256, 320)             # 256×320×3 uint8 RGB, a random rescaled crop of a random photo

The folder is searched recursively for .jpg/.jpeg/.png/.ppm/.bmp/.webp files.  Photos are decoded once
per process and kept (248 photos of at most 768 px: about 300 MiB).  Crops are rescaled by a random
factor (so the same photo gives textures at several scales), randomly flipped, and drawn from a
deterministic stream: the same Generator state gives the same crop.

The photos are training material only: nothing here is ever written back into the project.
"""
from __future__ import annotations

import math
import os
from typing import Sequence

import cv2
import numpy as np

from .._paths import REPO_DIR
from ..errors import DatasetLayoutError, InputError

__all__ = ["PhotoLibrary", "default_photo_dir", "PHOTO_EXTENSIONS"]

PHOTO_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".webp")


def default_photo_dir() -> str | None:
    """$FLOWMATCH_PHOTOS, else ../shared/data/photos beside the checkout; None when neither exists."""
    cand = os.environ.get("FLOWMATCH_PHOTOS") or os.path.join(REPO_DIR, "..", "shared", "data", "photos")
    return os.path.abspath(cand) if os.path.isdir(cand) else None


def _list_photos(folder: str) -> list[str]:
    out = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        out += [os.path.join(root, f) for f in sorted(files) if f.lower().endswith(PHOTO_EXTENSIONS)]
    return out


class PhotoLibrary:
    """Photos of a folder, decoded on first use, with random crops for training data.

    Args:
        folder: the photo folder; None = default_photo_dir().
        min_size: photos whose shorter side is below this many pixels are skipped.
    Raises DatasetLayoutError when the folder is missing or holds no usable photo.
    """

    def __init__(self, folder: str | os.PathLike | None = None, min_size: int = 64):
        path = os.fspath(folder) if folder is not None else default_photo_dir()
        if path is None:
            raise DatasetLayoutError(
                "no photo folder: pass one (--photos DIR / PhotoLibrary(folder)) or set FLOWMATCH_PHOTOS; "
                "the default ../shared/data/photos beside the checkout does not exist")
        if not os.path.isdir(path):
            raise DatasetLayoutError(f"photo folder {path!r} does not exist")
        self.folder = os.path.abspath(path)
        self.paths = _list_photos(self.folder)
        if not self.paths:
            raise DatasetLayoutError(f"photo folder {self.folder!r} holds no {'/'.join(PHOTO_EXTENSIONS)} file")
        self.min_size = int(min_size)
        self._cache: dict[int, np.ndarray | None] = {}

    def __len__(self) -> int:
        return len(self.paths)

    def photo(self, index: int) -> np.ndarray | None:
        """Photo `index` as H×W×3 uint8 RGB (None when it cannot be decoded or is too small)."""
        if index not in self._cache:
            self._cache[index] = self._decode(self.paths[index])
        return self._cache[index]

    def _decode(self, path: str) -> np.ndarray | None:
        # OpenCV checks the declared size against its own pixel limit before decoding.
        img = cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_COLOR)
        if img is None or img.ndim != 3 or min(img.shape[:2]) < self.min_size:
            return None
        return np.ascontiguousarray(img[..., ::-1])

    def _random_photo(self, rng: np.random.Generator, exclude: Sequence[int] = ()) -> tuple[int, np.ndarray]:
        for _ in range(64):
            i = int(rng.integers(len(self.paths)))
            if i in exclude and len(self.paths) > len(exclude):
                continue
            img = self.photo(i)
            if img is not None:
                return i, img
        raise DatasetLayoutError(f"photo folder {self.folder!r}: no decodable photo of at least "
                                 f"{self.min_size} px found in 64 draws")

    def crop(self, rng: np.random.Generator, height: int, width: int, scale: tuple[float, float] = (0.5, 1.0),
             exclude: Sequence[int] = ()) -> np.ndarray:
        """A random height×width×3 uint8 crop of a random photo (see indexed_crop)."""
        return self.indexed_crop(rng, height, width, scale, exclude)[1]

    def indexed_crop(self, rng: np.random.Generator, height: int, width: int,
                     scale: tuple[float, float] = (0.5, 1.0), exclude: Sequence[int] = ()) -> tuple[int, np.ndarray]:
        """(photo index, a random height×width×3 uint8 crop of that photo).

        The crop covers a random share of the photo's shorter side (`scale`, a range; 1.0 = the
        largest region of that aspect ratio) and is resized to height×width (area interpolation when
        shrinking), flipped left-right with probability 1/2.  `exclude` names photo indices to avoid
        (e.g. the background's, for foreground layers)."""
        if height < 1 or width < 1:
            raise InputError(f"crop size must be positive, got {height}×{width}")
        lo, hi = scale
        if not (0 < lo <= hi <= 1.0):
            raise InputError(f"scale must be a range in (0, 1], got {scale}")
        idx, img = self._random_photo(rng, exclude)
        ph, pw = img.shape[:2]
        aspect = width / height
        # largest crop of this aspect ratio inside the photo, times the random scale
        ch = min(ph, pw / aspect) * rng.uniform(lo, hi)
        cw = ch * aspect
        ch, cw = max(2, int(math.floor(ch))), max(2, int(math.floor(cw)))
        y0 = int(rng.integers(0, ph - ch + 1))
        x0 = int(rng.integers(0, pw - cw + 1))
        region = img[y0:y0 + ch, x0:x0 + cw]
        interp = cv2.INTER_AREA if ch > height else cv2.INTER_CUBIC
        out = cv2.resize(region, (width, height), interpolation=interp)
        if rng.random() < 0.5:
            out = out[:, ::-1]
        return idx, np.ascontiguousarray(out)
