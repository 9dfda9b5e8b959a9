"""Photometric changes between the two frames of a training pair (the geometry, and so the flow, is untouched).

    img2 = degrade(img2, rng, strength=1.0)    # brightness, contrast, gamma, colour cast, blur, noise, JPEG
    img2 = motion_blur_along_flow(img2, flow2) # blur each pixel along its own motion (Sintel final-like)
    img = fog(img, rng, amount=0.3)            # haze towards a bright colour, denser far from a random point

Images are H×W×3 uint8 RGB in and out.  Every change is drawn from the given numpy Generator, so a
pair is reproducible from its seed.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

__all__ = ["degrade", "motion_blur", "motion_blur_along_flow", "fog", "jpeg"]


def _u8(img: np.ndarray) -> np.ndarray:
    return cv2.add(img, (0.0, 0.0, 0.0, 0.0), dtype=cv2.CV_8U)


def jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    """JPEG round trip at `quality` (1..100)."""
    ok, buf = cv2.imencode(".jpg", img[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    return np.ascontiguousarray(cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1]) if ok else img


def motion_blur(img: np.ndarray, length: float, angle_deg: float) -> np.ndarray:
    """Uniform linear motion blur of `length` pixels at `angle_deg` (0 = along x)."""
    n = int(math.ceil(length)) | 1
    if n < 3:
        return img
    k = np.zeros((n, n), np.float32)
    c = (n - 1) / 2
    a = math.radians(angle_deg)
    for t in np.linspace(-length / 2, length / 2, 4 * n):
        k[int(round(c + t * math.sin(a))), int(round(c + t * math.cos(a)))] = 1.0
    return cv2.filter2D(img, -1, k / k.sum(), borderType=cv2.BORDER_REFLECT101)


def degrade(img: np.ndarray, rng: np.random.Generator, strength: float = 1.0) -> np.ndarray:
    """Random global photometric change of one frame, scaled by `strength` (0 = none, 1 = full):
    brightness, contrast, gamma, colour cast; then with some probability Gaussian blur, linear motion
    blur, Gaussian noise and a JPEG round trip."""
    if strength <= 0:
        return img
    s = float(strength)
    f = img.astype(np.float32) * np.float32(1 / 255)
    f = np.clip(f, 0, 1) ** np.float32(math.exp(rng.uniform(-0.35, 0.35) * s))            # gamma
    cast = 1.0 + rng.uniform(-0.1, 0.1, 3) * s                                           # colour cast
    gain = math.exp(rng.uniform(-0.35, 0.35) * s)                                        # contrast
    mean = float(f.mean())
    f = (f - mean) * np.float32(gain) + np.float32(mean + rng.uniform(-0.15, 0.15) * s)   # brightness
    f = f * cast.astype(np.float32)
    out = _u8(f * 255)
    if rng.random() < 0.3 * s:
        sigma = rng.uniform(0.3, 1.5)
        out = cv2.GaussianBlur(out, (0, 0), sigma, borderType=cv2.BORDER_REFLECT101)
    if rng.random() < 0.2 * s:
        out = motion_blur(out, rng.uniform(2.0, 7.0), rng.uniform(0, 180))
    if rng.random() < 0.5 * s:
        noise = rng.standard_normal(out.shape, dtype=np.float32) * np.float32(rng.uniform(1.0, 6.0) * s)
        out = _u8(out.astype(np.float32) + noise)
    if rng.random() < 0.4 * s:
        out = jpeg(out, int(rng.integers(35, 95)))
    return out


def motion_blur_along_flow(img: np.ndarray, flow: np.ndarray, samples: int = 7, shutter: float = 0.5) -> np.ndarray:
    """Blur every pixel along its own motion: the mean of `samples` samples at p + t·flow(p) for t in
    [-shutter/2, shutter/2] (a box shutter).  `flow` is H×W×2 float32 pixels (x first), the motion of
    the scene at this frame.  Flow is unchanged: the blur is symmetric about each pixel's position."""
    h, w = flow.shape[:2]
    grid = np.empty((h, w, 2), np.float32)
    grid[..., 0] = np.arange(w, dtype=np.float32)[None]
    grid[..., 1] = np.arange(h, dtype=np.float32)[:, None]
    acc = np.zeros(img.shape, np.float32)
    for t in np.linspace(-shutter / 2, shutter / 2, samples):
        acc += cv2.remap(img, grid + np.float32(t) * flow, None, cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_REFLECT101).astype(np.float32)
    return _u8(acc * np.float32(1 / samples))


def fog(img: np.ndarray, rng: np.random.Generator, amount: float) -> np.ndarray:
    """Blend towards a light haze colour, densest far from a random centre (0 = none, 1 = opaque at most)."""
    if amount <= 0:
        return img
    h, w = img.shape[:2]
    cx, cy = rng.uniform(0, w), rng.uniform(0, h)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    d = np.sqrt((xs - cx) ** 2 + (ys - cy) ** 2) / np.float32(math.hypot(w, h))
    a = np.clip(amount * (0.4 + 0.6 * d), 0, 0.9).astype(np.float32)[..., None]
    colour = rng.uniform(170, 240) + rng.uniform(-15, 15, 3)
    return _u8(img.astype(np.float32) * (1 - a) + a * colour.astype(np.float32))
