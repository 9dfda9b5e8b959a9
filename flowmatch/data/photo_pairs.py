"""Training pairs from single photographs: a photo and a copy of it under a random homography and a
smooth elastic warp, with photometric changes, and the exact correspondence between them.

    lib = PhotoLibrary()
    pair = photo_pair(lib, seed=3, height=256, width=256)
    pair.img1, pair.img2      # H×W×3 uint8 RGB
    pair.flow                 # H×W×2 float32, pixels, x first, img1 -> img2 (exact)
    pair.valid                # H×W bool: the match lies inside img2

Construction (exact by design, no inversion of a warp): both frames are resampled from one canvas
(the photo crop with a margin).  Frame 1 reads the canvas at p + e(p), e a smooth random displacement
field; frame 2 is the canvas under a homography H (frame 2 at q reads the canvas at H⁻¹(q)).  So the
content of frame-1 pixel p is at q = H(p + e(p)) in frame 2: flow(p) = H(p + e(p)) − p.  Photometric
changes (flowmatch.data.photometric.degrade) are applied after the geometry: mild on frame 1,
full strength on frame 2.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from ..errors import InputError
from .photometric import degrade
from .photos import PhotoLibrary

__all__ = ["PhotoPair", "photo_pair", "random_homography"]


@dataclass
class PhotoPair:
    """img1, img2: H×W×3 uint8.  flow: H×W×2 float32 px (x first), img1 -> img2.  valid: H×W bool.
    occlusion: H×W bool (True = not visible in img2: here only matches leaving the frame).
    meta: the drawn homography and warp amplitudes."""
    img1: np.ndarray
    img2: np.ndarray
    flow: np.ndarray
    valid: np.ndarray
    occlusion: np.ndarray
    name: str = "photo pair"
    meta: dict[str, Any] = field(default_factory=dict)


def random_homography(rng: np.random.Generator, height: int, width: int, max_translation: float,
                      max_rotation: float, max_scale: float, perspective: float) -> np.ndarray:
    """A 3×3 homography of the frame (pixel coordinates, x first): rotation ±max_rotation degrees and
    scale in [1/(1+max_scale), 1+max_scale] about the centre, translation ±max_translation px per axis,
    then each corner moved by up to `perspective`·(shorter side) for a perspective component."""
    cx, cy = (width - 1) / 2, (height - 1) / 2
    a = math.radians(rng.uniform(-max_rotation, max_rotation))
    s = math.exp(rng.uniform(-1, 1) * math.log1p(max_scale))
    tx, ty = rng.uniform(-max_translation, max_translation, 2)
    c, sn = math.cos(a) * s, math.sin(a) * s
    sim = np.array([[c, -sn, cx + tx - c * cx + sn * cy], [sn, c, cy + ty - sn * cx - c * cy], [0, 0, 1]])
    if perspective <= 0:
        return sim
    src = np.array([[0, 0], [width - 1, 0], [width - 1, height - 1], [0, height - 1]], np.float32)
    jitter = rng.uniform(-1, 1, (4, 2)) * perspective * min(height, width)
    dst = cv2.perspectiveTransform(src[None], sim)[0] + jitter.astype(np.float32)
    return cv2.getPerspectiveTransform(src, dst.astype(np.float32)).astype(np.float64)


def _elastic_field(rng: np.random.Generator, height: int, width: int, amplitude: float, cells: int) -> np.ndarray:
    """Smooth random displacement H×W×2 (float32 px): Gaussian values on a cells×cells grid, bicubic."""
    if amplitude <= 0:
        return np.zeros((height, width, 2), np.float32)
    coarse = rng.standard_normal((cells, cells, 2)).astype(np.float32) * np.float32(amplitude / 2)
    return cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)


def _grid(height: int, width: int) -> np.ndarray:
    g = np.empty((height, width, 2), np.float32)
    g[..., 0] = np.arange(width, dtype=np.float32)[None]
    g[..., 1] = np.arange(height, dtype=np.float32)[:, None]
    return g


def photo_pair(photos: PhotoLibrary, seed: int | np.random.Generator = 0, height: int = 256, width: int = 256, *,
               max_translation: float = 24.0, max_rotation: float = 12.0, max_scale: float = 0.2,
               perspective: float = 0.06, elastic: float = 3.0, photometric: float = 1.0) -> PhotoPair:
    """One photo pair, deterministic by `seed` (int or numpy Generator).

    Args:
        photos: the photo source.
        height, width: frame size in pixels (>= 16).
        max_translation, max_rotation (degrees), max_scale, perspective: the homography's ranges
            (see random_homography).
        elastic: amplitude of the smooth elastic warp of frame 1, pixels (0 = none).
        photometric: strength of the photometric changes (0 = identical intensities).
    """
    if not (isinstance(height, (int, np.integer)) and isinstance(width, (int, np.integer))) or min(height, width) < 16:
        raise InputError(f"photo_pair: height and width must be ints >= 16, got {height!r}, {width!r}")
    for name, v in (("max_translation", max_translation), ("max_rotation", max_rotation), ("max_scale", max_scale),
                    ("perspective", perspective), ("elastic", elastic), ("photometric", photometric)):
        if not (isinstance(v, (int, float, np.number)) and math.isfinite(v) and v >= 0):
            raise InputError(f"photo_pair: {name}={v!r} must be a finite number >= 0")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(int(seed))
    h, w = int(height), int(width)
    hom = random_homography(rng, h, w, max_translation, max_rotation, max_scale, perspective)
    # Canvas margin: frame 2 under H⁻¹ and frame 1 under the elastic warp must read inside it.
    corners = np.array([[[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]]], np.float32)
    back = cv2.perspectiveTransform(corners, np.linalg.inv(hom))[0]
    reach = max(float(np.abs(back[:, 0] - (w - 1) / 2).max() - (w - 1) / 2),
                float(np.abs(back[:, 1] - (h - 1) / 2).max() - (h - 1) / 2), 0.0)
    margin = int(math.ceil(reach + 2 * elastic)) + 4
    idx, canvas = photos.indexed_crop(rng, h + 2 * margin, w + 2 * margin, scale=(0.35, 1.0))
    shift = np.array([[1, 0, margin], [0, 1, margin], [0, 0, 1]], np.float64)

    grid = _grid(h, w)
    disp = _elastic_field(rng, h, w, float(elastic), int(rng.integers(3, 7)))
    src1 = grid + disp                                     # canvas position (frame coordinates) of img1's pixels
    img1 = cv2.remap(canvas, src1 + np.float32(margin), None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)
    # frame 2 at q reads the canvas at H⁻¹(q): warpPerspective with the canvas->frame-2 map H·shift⁻¹
    img2 = cv2.warpPerspective(canvas, hom @ np.linalg.inv(shift), (w, h), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REFLECT101)
    target = cv2.perspectiveTransform(src1.reshape(1, -1, 2), hom).reshape(h, w, 2)
    flow = (target - grid).astype(np.float32)
    inside = (target[..., 0] >= 0) & (target[..., 0] <= w - 1) & (target[..., 1] >= 0) & (target[..., 1] <= h - 1)
    img1 = degrade(img1, rng, 0.3 * photometric)
    img2 = degrade(img2, rng, photometric)
    return PhotoPair(img1, img2, flow, inside, ~inside, name=f"photo {idx}",
                     meta={"homography": hom, "elastic": float(elastic), "photo": idx})
