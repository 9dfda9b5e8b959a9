"""Flying photos: Flying-Chairs-like layered pairs made of real photographs, with exact flow and occlusions.

    lib = PhotoLibrary()
    pair = flying_photos_pair(lib, seed=0, height=384, width=512)            # Chairs-like
    pair = flying_photos_pair(lib, seed=0, height=384, width=512, final=True) # + Sintel-final-like effects

The layered renderer is flowmatch.data.synthetic's (one implementation for procedural and photo
textures): a background crop of one photo under its own affine motion, and several foreground layers
(random ellipses and polygons) cut from other photos, each with its own affine motion (translation,
rotation, scale); flow = the frontmost layer's motion, occlusion = covered by a nearer layer in frame 2
or out of frame.  The motion scale of each pair is drawn in [motion_min, 1]·max_motion, so small and
large motions both occur, as in Chairs.

``final=True`` adds what Sintel's final pass has and its clean pass lacks, none of which moves a pixel:
motion blur of each frame along its own per-pixel motion, haze (fog), and a brightness/contrast/colour
change with noise and compression between the frames.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..errors import InputError
from .photometric import degrade, fog, motion_blur_along_flow
from .photos import PhotoLibrary
from .synthetic import SyntheticPair, generate_pair

__all__ = ["photo_textures", "flying_photos_pair"]


def photo_textures(photos: PhotoLibrary) -> Any:
    """A synthetic.TextureSource cutting textures from `photos`: the background a large share of one
    photo, each foreground layer a smaller crop of another photo."""
    state: dict[str, int] = {}

    def texture(rng: np.random.Generator, height: int, width: int, foreground: bool) -> np.ndarray:
        if not foreground:
            state["background"], img = photos.indexed_crop(rng, height, width, scale=(0.6, 1.0))
            return img
        exclude = (state["background"],) if "background" in state else ()
        return photos.indexed_crop(rng, height, width, scale=(0.15, 0.6), exclude=exclude)[1]

    return texture


def flying_photos_pair(photos: PhotoLibrary, seed: int | np.random.Generator = 0, height: int = 384,
                       width: int = 512, *, max_motion: float = 40.0, motion_min: float = 0.1,
                       num_shapes: tuple[int, int] = (3, 8), max_rotation: float = 15.0, max_scale: float = 0.15,
                       background_motion: float = 0.35, final: bool = False, photometric: float = 0.5) -> SyntheticPair:
    """One flying-photos pair, deterministic by `seed`.

    Args:
        photos: where the textures come from.
        height, width: frame size, pixels.
        max_motion: largest layer translation per axis, pixels; each pair draws its own scale in
            [motion_min, 1]·max_motion.
        num_shapes, max_rotation (degrees), max_scale, background_motion: as generate_pair's.
        final: add Sintel-final-like effects (motion blur along the flow, fog, stronger photometric change).
        photometric: strength of the photometric change between the frames (0 = brightness constancy).
    Returns:
        SyntheticPair (img1, img2 H×W×3 uint8; flow H×W×2 float32 px, x first; occlusion; valid).
    """
    if not 0.0 <= motion_min <= 1.0:
        raise InputError(f"flying_photos_pair: motion_min={motion_min!r} must be in [0, 1]")
    if not (math.isfinite(photometric) and photometric >= 0):
        raise InputError(f"flying_photos_pair: photometric={photometric!r} must be a finite number >= 0")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(int(seed))
    motion = float(max_motion) * float(rng.uniform(motion_min, 1.0))
    pair = generate_pair(height, width, rng, num_shapes=num_shapes, max_motion=motion, max_rotation=max_rotation,
                         max_scale=max_scale, background_motion=background_motion, backward=final,
                         textures=photo_textures(photos))
    img1, img2 = pair.img1, pair.img2
    if final:
        shutter = float(rng.uniform(0.2, 0.8))
        img1 = motion_blur_along_flow(img1, pair.flow, shutter=shutter)
        img2 = motion_blur_along_flow(img2, pair.flow_bw, shutter=shutter)
        if rng.random() < 0.5:
            state = rng.bit_generator.state
            amount = float(rng.uniform(0.1, 0.5))
            img1 = fog(img1, rng, amount)
            rng.bit_generator.state = state  # the same haze in both frames (it is part of the scene)
            rng.uniform(0.1, 0.5)
            img2 = fog(img2, rng, amount)
    strength = photometric * (2.0 if final else 1.0)
    img1 = degrade(img1, rng, 0.3 * strength)
    img2 = degrade(img2, rng, strength)
    pair.img1, pair.img2 = img1, img2
    pair.meta["motion_scale"] = motion
    pair.meta["final"] = bool(final)
    return pair
