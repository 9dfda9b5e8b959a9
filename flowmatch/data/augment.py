"""FlowNet-style augmentation of image pairs with their flow, applied consistently.

    aug = FlowAugment(crop=(320, 448))
    rng = np.random.default_rng(0)
    out = aug(sample, rng)               # FlowSample (or anything with img1, img2, flow, valid)

Geometric part: one affine map T1 (translation, rotation, scale about the image centre, then a
crop) takes original img1 coordinates to augmented ones; img2 gets T2 = R·T1, where R is an
optional small relative transform (off by default).  The augmented flow is then exact:

    flow'(q) = T2(p + flow(p)) − q,   p = T1⁻¹(q)     (= L·flow(p) when T2 = T1, L = T1's linear part)

Dense ground truth is resampled bilinearly at p; a pixel stays valid only if every pixel the
bilinear weights touch was valid and p lies inside the original frame.  Sparse ground truth
(KITTI: few valid pixels) is splatted instead: each valid pixel p moves to round(T1·p) with flow
T2(p + flow(p)) − T1·p, so no value is ever interpolated with an unknown neighbour.  By default
the parameters are redrawn (up to `max_tries` = 50 times) until the crop lies inside both
original images, as FlowNet's augmentation layer does (falling back to a plain centre crop), so
augmented pixels are rarely invalid.  This favours zoom-in and small shifts: with a 320×448 crop
of 384×512 input the drawn scale averages about 1.65 instead of 1.45.

Photometric part (FlowNet's ranges; images scaled to [0, 1]): multiplicative colour per channel
0.5..2 (each pixel rescaled to keep its channel sum, as FlowNet's augmentation layer does),
gamma 0.7..1.5, additive brightness N(0, 0.2), contrast factor 1 + (−0.8..0.4) about 0.5,
Gaussian noise with σ in 0..0.04; then clipped and rounded back to uint8.  The parameters are
shared by both images (brightness constancy up to noise) unless `independent=True`.

Every range is either a (low, high) tuple or a single number x meaning (−x, x); parameters are
drawn uniformly.  Randomness comes only from the Generator passed in, so a run is reproducible.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from ..errors import InputError
from .base import FlowSample
from .synthetic import _to_uint8, gaussian_noise

__all__ = ["FlowAugment", "GeometricParams"]


def _range(name: str, value: Any, positive: bool = False) -> tuple[float, float]:
    """A (low, high) range from a tuple or a symmetric scalar; checked finite and ordered."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise InputError(f"FlowAugment: {name}={value!r} must be a number or a (low, high) pair")
        lo, hi = value
    elif isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        lo, hi = -float(value), float(value)
    else:
        raise InputError(f"FlowAugment: {name}={value!r} must be a number or a (low, high) pair")
    try:
        lo, hi = float(lo), float(hi)
    except (TypeError, ValueError):
        raise InputError(f"FlowAugment: {name}={value!r} must hold numbers") from None
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo > hi or (positive and lo <= 0):
        need = "0 < low <= high" if positive else "low <= high"
        raise InputError(f"FlowAugment: {name}={value!r} must be finite with {need}")
    return lo, hi


def _draw(rng: np.random.Generator, r: tuple[float, float]) -> float:
    return float(rng.uniform(r[0], r[1])) if r[1] > r[0] else r[0]


@dataclass
class GeometricParams:
    """The drawn transforms, 3×3 matrices from original pixel coordinates (x, y) to augmented ones."""

    t1: np.ndarray
    t2: np.ndarray
    out_size: tuple[int, int]  # (height, width)


class FlowAugment:
    """Random geometric + photometric augmentation of (img1, img2, flow, valid[, occlusion]).

    Args:
        crop: output (height, width); None keeps the input size.
        geometric: apply the geometric part (False = photometric-only, e.g. for descriptor
            training; a crop then is a plain random crop inside the image).
        photometric: apply the photometric part.
        translate: shift as a fraction of the image width/height (FlowNet: ±0.2).
        rotate: rotation in degrees (FlowNet: ±17).
        scale: zoom factor, > 1 magnifies (FlowNet: 0.9..2.0).
        relative: extra transform of img2 only, as (translate fraction, rotate degrees, scale
            range), e.g. (0.03, 3.0, (0.95, 1.05)); None = img2 gets the same transform.
        keep_inside: redraw the geometric parameters (at most max_tries times) until the crop
            lies inside both original images; if none does, the sample is only centre-cropped.
        sparse: "auto" splats the flow when fewer than half the pixels are valid (KITTI);
            True/False force splatting / bilinear resampling.
        colour, gamma, contrast, brightness, noise: photometric ranges (FlowNet's by default;
            brightness is the σ of a Gaussian, noise a range of σ, both on the [0, 1] scale).
        independent: draw the photometric parameters separately for each image.
        invalidate_out_of_frame: also mark pixels whose flow target leaves the augmented img2 invalid.
    """

    def __init__(self, crop: tuple[int, int] | None = None, *, geometric: bool = True, photometric: bool = True,
                 translate: Any = 0.2, rotate: Any = 17.0, scale: Any = (0.9, 2.0),
                 relative: tuple[Any, Any, Any] | None = None, keep_inside: bool = True, max_tries: int = 50,
                 sparse: bool | str = "auto",
                 colour: Any = (0.5, 2.0), gamma: Any = (0.7, 1.5), contrast: Any = (-0.8, 0.4),
                 brightness: float = 0.2, noise: Any = (0.0, 0.04), independent: bool = False,
                 invalidate_out_of_frame: bool = False) -> None:
        if crop is not None:
            if (not isinstance(crop, (tuple, list)) or len(crop) != 2
                    or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v > 0 for v in crop)):
                raise InputError(f"FlowAugment: crop={crop!r} must be (height, width) positive ints or None")
            crop = (int(crop[0]), int(crop[1]))
        if sparse not in (True, False, "auto"):
            raise InputError(f"FlowAugment: sparse={sparse!r} must be True, False or 'auto'")
        if not isinstance(max_tries, int) or max_tries < 1:
            raise InputError(f"FlowAugment: max_tries={max_tries!r} must be an int >= 1")
        self.crop = crop
        self.geometric, self.photometric = bool(geometric), bool(photometric)
        self.translate = _range("translate", translate)
        self.rotate = _range("rotate", rotate)
        self.scale = _range("scale", scale, positive=True)
        if relative is not None:
            if not isinstance(relative, (tuple, list)) or len(relative) != 3:
                raise InputError(f"FlowAugment: relative={relative!r} must be (translate, rotate, scale) or None")
            relative = (_range("relative translate", relative[0]), _range("relative rotate", relative[1]),
                        _range("relative scale", relative[2], positive=True))
        self.relative = relative
        self.keep_inside, self.max_tries, self.sparse = bool(keep_inside), max_tries, sparse
        self.colour = _range("colour", colour, positive=True)
        self.gamma = _range("gamma", gamma, positive=True)
        self.contrast = _range("contrast", contrast)
        if self.contrast[0] <= -1.0:
            raise InputError(f"FlowAugment: contrast={contrast!r} must stay above -1 (a factor 1 + c > 0)")
        if not isinstance(brightness, (int, float)) or not math.isfinite(brightness) or brightness < 0:
            raise InputError(f"FlowAugment: brightness={brightness!r} must be a sigma >= 0")
        self.brightness = float(brightness)
        self.noise = _range("noise", noise)
        if self.noise[0] < 0:
            raise InputError(f"FlowAugment: noise={noise!r} must be a range of sigmas >= 0")
        self.independent = bool(independent)
        self.invalidate_out_of_frame = bool(invalidate_out_of_frame)

    # ------------------------------------------------------------------------------------------
    def __call__(self, sample: Any, rng: np.random.Generator | int) -> FlowSample:
        """Augment one sample (FlowSample, SyntheticPair, or any object with img1, img2, flow,
        valid and optionally occlusion, name, meta).  img1/img2 H×W×3 (or H×W) uint8; flow
        H×W×2 float32 pixels (x first) or None; valid/occlusion H×W bool or None.

        Returns a FlowSample of the crop size; meta gains "augment": {"t1", "t2"} (3×3 maps from
        original to augmented pixel coordinates)."""
        rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        img1, img2, flow, valid, occ = self._check(sample)
        h, w = img1.shape[:2]
        meta = dict(getattr(sample, "meta", None) or {})
        if self.geometric or self.crop is not None:
            g = self.draw_geometry(rng, (h, w))
            img1, img2, flow, valid, occ = self.apply_geometry(g, img1, img2, flow, valid, occ)
            meta["augment"] = {"t1": g.t1, "t2": g.t2}
        if self.photometric:
            p1 = self._draw_photometric(rng)
            p2 = self._draw_photometric(rng) if self.independent else p1
            img1 = self._apply_photometric(img1, p1, rng)
            img2 = self._apply_photometric(img2, p2, rng)
        return FlowSample(img1, img2, flow, valid, occ, str(getattr(sample, "name", "")), meta)

    # ------------------------------------------------------------------------------------------
    def _check(self, sample: Any) -> tuple[np.ndarray, np.ndarray, Any, Any, Any]:
        try:
            img1, img2 = np.asarray(sample.img1), np.asarray(sample.img2)
        except AttributeError:
            raise InputError("FlowAugment: sample must have img1 and img2 (a FlowSample or SyntheticPair)") from None
        flow, valid, occ = (getattr(sample, k, None) for k in ("flow", "valid", "occlusion"))
        for name, img in (("img1", img1), ("img2", img2)):
            if img.dtype != np.uint8 or img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] not in (1, 3)):
                raise InputError(f"FlowAugment: {name} must be an H×W or H×W×3 uint8 image, got "
                                 f"{img.dtype} {tuple(img.shape)}")
        h, w = img1.shape[:2]
        if img2.shape != img1.shape:
            raise InputError(f"FlowAugment: img1 {tuple(img1.shape)} and img2 {tuple(img2.shape)} differ in shape")
        if flow is not None:
            flow = np.asarray(flow)
            if flow.shape != (h, w, 2) or flow.dtype.kind != "f":
                raise InputError(f"FlowAugment: flow must be float H×W×2 = ({h}, {w}, 2), got "
                                 f"{flow.dtype} {tuple(flow.shape)}")
            flow = flow.astype(np.float32, copy=False)
        for name, m in (("valid", valid), ("occlusion", occ)):
            if m is not None and (np.shape(m) != (h, w) or np.asarray(m).dtype != np.bool_):
                raise InputError(f"FlowAugment: {name} must be a bool H×W = ({h}, {w}) mask, got "
                                 f"{np.asarray(m).dtype} {tuple(np.shape(m))}")
        if flow is not None and valid is None:
            valid = np.isfinite(flow).all(axis=2)
        if flow is not None and not np.isfinite(flow).all() and not np.isfinite(flow[valid]).all():
            raise InputError("FlowAugment: flow has NaN/inf at pixels marked valid")
        return img1, img2, flow, (None if valid is None else np.asarray(valid)), \
            (None if occ is None else np.asarray(occ))

    # ------------------------------------------------------------------------------------------
    def draw_geometry(self, rng: np.random.Generator, size: tuple[int, int]) -> GeometricParams:
        """Draw T1, T2 for an input of size (height, width) (see the module docstring)."""
        h, w = size
        oh, ow = self.crop or (h, w)
        c_in = np.array([(w - 1) / 2.0, (h - 1) / 2.0])
        c_out = np.array([(ow - 1) / 2.0, (oh - 1) / 2.0])
        corners = np.array([[0, 0, 1], [ow - 1, 0, 1], [0, oh - 1, 1], [ow - 1, oh - 1, 1]], float).T
        for _ in range(self.max_tries):
            if self.geometric:
                tx = _draw(rng, self.translate) * w
                ty = _draw(rng, self.translate) * h
                ang = _draw(rng, self.rotate)
                s = _draw(rng, self.scale)
            else:  # plain random crop inside the image
                tx = rng.uniform(-1, 1) * max(0.0, (w - ow) / 2.0)
                ty = rng.uniform(-1, 1) * max(0.0, (h - oh) / 2.0)
                ang, s = 0.0, 1.0
            # q = s·R(ang)·(p − c_in − t) + c_out
            t1 = _affine(c_out, ang, s) @ _shift(-c_in[0] - tx, -c_in[1] - ty)
            t2 = t1
            if self.relative is not None and self.geometric:
                rt, rr, rs = self.relative
                rel = _shift(*c_out) @ _affine(np.zeros(2), _draw(rng, rr), _draw(rng, rs)) @ _shift(*-c_out)
                rel = _shift(_draw(rng, rt) * ow, _draw(rng, rt) * oh) @ rel
                t2 = rel @ t1
            if not self.keep_inside:
                return GeometricParams(t1, t2, (oh, ow))
            inside = True
            for t in (t1, t2):
                src = np.linalg.solve(t, corners)[:2]
                inside &= bool((src[0] >= 0).all() and (src[0] <= w - 1).all()
                               and (src[1] >= 0).all() and (src[1] <= h - 1).all())
            if inside:
                return GeometricParams(t1, t2, (oh, ow))
        # nothing fitted: no geometric change, a centred crop (FlowNet's augmentation layer also
        # falls back to its untransformed input)
        t1 = _shift(c_out[0] - c_in[0], c_out[1] - c_in[1])
        return GeometricParams(t1, t1, (oh, ow))

    def apply_geometry(self, g: GeometricParams, img1: np.ndarray, img2: np.ndarray, flow: Any, valid: Any,
                       occ: Any) -> tuple[np.ndarray, np.ndarray, Any, Any, Any]:
        """Warp images, flow, valid and occlusion by the drawn transforms (see the module docstring)."""
        oh, ow = g.out_size
        h, w = img1.shape[:2]
        warp = dict(dsize=(ow, oh), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)
        out1 = cv2.warpAffine(img1, g.t1[:2], **warp)
        out2 = cv2.warpAffine(img2, g.t2[:2], **warp)
        if img1.ndim == 3 and out1.ndim == 2:  # cv2 drops a single channel
            out1, out2 = out1[..., None], out2[..., None]
        if flow is None:
            return out1, out2, None, None, None
        sparse = self.sparse if self.sparse != "auto" else bool(valid.mean() < 0.5)
        if sparse:
            f, v, o = _splat(g, flow, valid, occ, (oh, ow))
        else:
            f, v, o = _resample(g, flow, valid, occ, (h, w), (oh, ow))
        if self.invalidate_out_of_frame or o is not None:
            ys, xs = np.mgrid[0:oh, 0:ow].astype(np.float32)
            tx, ty = xs + f[..., 0], ys + f[..., 1]
            outside = (tx < 0) | (tx > ow - 1) | (ty < 0) | (ty > oh - 1)
            if self.invalidate_out_of_frame:
                v &= ~outside
            if o is not None:
                o |= outside & v  # a target outside the augmented img2 is not visible there
        f[~v] = 0.0
        return out1, out2, f, v, o

    # ------------------------------------------------------------------------------------------
    def _draw_photometric(self, rng: np.random.Generator) -> dict[str, Any]:
        return {
            "colour": np.array([_draw(rng, self.colour) for _ in range(3)], np.float32),
            "gamma": _draw(rng, self.gamma),
            "brightness": float(rng.normal(0.0, self.brightness)) if self.brightness > 0 else 0.0,
            "contrast": _draw(rng, self.contrast),
            "noise": _draw(rng, self.noise),
        }

    @staticmethod
    def _apply_photometric(img: np.ndarray, p: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
        """On the [0, 1] scale: colour × per channel, rescaled so each pixel keeps its channel sum
        (hue changes, brightness does not) -> clip -> gamma -> + brightness -> contrast about 0.5
        -> + noise -> clip.

        After the colour step everything but the noise maps each 8-bit value through one fixed
        curve, so it runs as a lookup table."""
        if img.ndim == 3 and img.shape[2] == 3 and not np.allclose(p["colour"], p["colour"][0]):
            x = img.astype(np.float32) * np.float32(1.0 / 255.0)
            s_in = x.sum(axis=2)
            s_out = cv2.transform(x, p["colour"].reshape(1, 3))  # Σ_c m_c·x_c, H×W
            x *= p["colour"]
            x *= (s_in / (s_out + np.float32(0.01)))[..., None]
            img = _to_uint8(x * np.float32(255.0))  # saturates to [0, 255]
        x = np.arange(256, dtype=np.float64) / 255.0
        curve = x ** p["gamma"] + p["brightness"]
        curve = 0.5 + (curve - 0.5) * (1.0 + p["contrast"])
        if p["noise"] > 0:
            out = cv2.LUT(img, (curve * 255.0).astype(np.float32).reshape(1, 256))
            out = out.reshape(img.shape) + gaussian_noise(rng, img.shape, p["noise"] * 255.0)
            return np.clip(out + 0.5, 0, 255).astype(np.uint8)
        lut = np.clip(np.floor(curve * 255.0 + 0.5), 0, 255).astype(np.uint8).reshape(1, 256)
        return cv2.LUT(img, lut).reshape(img.shape)


# ----------------------------------------------------------------------------------------------
# geometry helpers

def _shift(tx: float, ty: float) -> np.ndarray:
    return np.array([[1.0, 0.0, tx], [0.0, 1.0, ty], [0.0, 0.0, 1.0]])


def _affine(centre: np.ndarray, angle_deg: float, scale: float) -> np.ndarray:
    """Rotate by angle (degrees; x right, y down) and scale, then translate to `centre`."""
    a = math.radians(angle_deg)
    c, s = math.cos(a) * scale, math.sin(a) * scale
    return np.array([[c, -s, centre[0]], [s, c, centre[1]], [0.0, 0.0, 1.0]])


def _apply(t: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return (t[0, 0] * x + t[0, 1] * y + t[0, 2]).astype(np.float32), \
        (t[1, 0] * x + t[1, 1] * y + t[1, 2]).astype(np.float32)


def _resample(g: GeometricParams, flow: np.ndarray, valid: np.ndarray, occ: Any, in_size: tuple[int, int],
              out_size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, Any]:
    """Dense flow: bilinear at p = T1⁻¹ q, valid only where all bilinear neighbours were valid."""
    oh, ow = out_size
    inv = np.linalg.inv(g.t1)
    ys, xs = np.mgrid[0:oh, 0:ow].astype(np.float64)
    px, py = _apply(inv, xs, ys)
    f = cv2.remap(np.where(valid[..., None], flow, 0).astype(np.float32), px, py, cv2.INTER_LINEAR,
                  borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    # valid as a float: 1 only if every neighbour with a nonzero weight is valid and in the frame
    vf = cv2.remap(valid.astype(np.float32), px, py, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    v = vf > 1.0 - 1e-4
    qx, qy = _apply(g.t2, px + f[..., 0], py + f[..., 1])
    out = np.stack([qx - xs.astype(np.float32), qy - ys.astype(np.float32)], axis=2)
    o = None
    if occ is not None:
        o = cv2.remap(occ.astype(np.uint8), px, py, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT,
                      borderValue=0) > 0
    return out, v, o


def _splat(g: GeometricParams, flow: np.ndarray, valid: np.ndarray, occ: Any,
           out_size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, Any]:
    """Sparse flow: move each valid pixel p to round(T1 p) with flow T2(p + flow(p)) − T1 p."""
    oh, ow = out_size
    py, px = np.nonzero(valid)
    fx, fy = flow[py, px, 0].astype(np.float64), flow[py, px, 1].astype(np.float64)
    qx, qy = _apply(g.t1, px.astype(np.float64), py.astype(np.float64))
    tx, ty = _apply(g.t2, px + fx, py + fy)
    ix, iy = np.rint(qx).astype(np.int64), np.rint(qy).astype(np.int64)
    keep = (ix >= 0) & (ix < ow) & (iy >= 0) & (iy < oh)
    ix, iy = ix[keep], iy[keep]
    out = np.zeros((oh, ow, 2), np.float32)
    v = np.zeros((oh, ow), bool)
    # several sources may land on one pixel when shrinking: the last (raster order) wins
    out[iy, ix, 0] = (tx - qx)[keep]
    out[iy, ix, 1] = (ty - qy)[keep]
    v[iy, ix] = True
    o = None
    if occ is not None:
        o = np.zeros((oh, ow), bool)
        o[iy, ix] = occ[py, px][keep]
    return out, v, o
