"""Procedural "flying shapes" image pairs with exact ground-truth flow and occlusions.

A pair is a stack of layers drawn back to front: a textured background (layer 0) and several
textured shapes (ellipses, polygons; layers 1..n, higher = nearer).  Each layer is a texture
mapped into frame 1 by an affine map M1 and into frame 2 by A·M1, where A is the layer's own
affine motion in image space (translation, rotation and scale about the layer's centre).  So
the flow of a frame-1 pixel p is A·p − p for whichever layer is frontmost at p: exact, no
sampling of a flow field.  A frame-1 pixel is occluded when its frame-2 position is out of the
frame or covered there by a nearer layer.

    pair = generate_pair(384, 512, seed=0)
    pair.img1, pair.img2      # H×W×3 uint8
    pair.flow                 # H×W×2 float32, pixels, x (u) first, frame 1 -> frame 2
    pair.occlusion            # H×W bool, True = not visible in frame 2
    pair.valid                # H×W bool, all True (flow is defined everywhere)

Textures are multi-octave value noise with random colour mixing, optionally stripes and a
gradient; rendering uses cv2.warpAffine per layer inside the layer's bounding box only, and the
background uses reflected borders (the same reflection in both frames keeps the flow exact).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import cv2
import numpy as np

from ..errors import InputError

__all__ = ["SyntheticPair", "SyntheticSequence", "generate_pair", "generate_sequence", "procedural_texture",
           "TextureSource"]


@dataclass
class SyntheticPair:
    """One generated pair.

    img1, img2: H×W×3 uint8 (RGB).  flow: H×W×2 float32, pixels, x (u) first, from img1 to img2.
    occlusion: H×W bool, True where the img1 pixel is not visible in img2 (covered by a nearer
    layer or moved out of frame).  valid: H×W bool (True everywhere: the flow is exact).
    layers: H×W uint8, index of the frontmost layer in img1 (0 = background).
    meta: the drawn motion parameters (for debugging and reproducibility).
    flow_bw, occlusion_bw: the same from img2 to img1 (only with backward=True, else None).
    """

    img1: np.ndarray
    img2: np.ndarray
    flow: np.ndarray
    occlusion: np.ndarray
    valid: np.ndarray
    layers: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    flow_bw: np.ndarray | None = None
    occlusion_bw: np.ndarray | None = None


# ----------------------------------------------------------------------------------------------
# small affine helpers (3×3 homogeneous matrices, points are (x, y) pixel centres)

def _translate(tx: float, ty: float) -> np.ndarray:
    return np.array([[1.0, 0.0, tx], [0.0, 1.0, ty], [0.0, 0.0, 1.0]])


def _rot_scale(angle_deg: float, scale: float) -> np.ndarray:
    a = math.radians(angle_deg)
    c, s = math.cos(a) * scale, math.sin(a) * scale
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _motion_about(cx: float, cy: float, angle_deg: float, scale: float, tx: float, ty: float) -> np.ndarray:
    """Rotate/scale about (cx, cy), then translate by (tx, ty)."""
    return _translate(cx + tx, cy + ty) @ _rot_scale(angle_deg, scale) @ _translate(-cx, -cy)


# ----------------------------------------------------------------------------------------------
# textures

# (rng, height, width, foreground) -> height×width×3 uint8: the texture of the background
# (foreground=False) or of one moving layer.
TextureSource = Callable[[np.random.Generator, int, int, bool], np.ndarray]


def procedural_texture(rng: np.random.Generator, height: int, width: int, foreground: bool = False) -> np.ndarray:
    """The default TextureSource: procedural noise textures (the same kind for every layer)."""
    return _texture(rng, height, width)

def _texture(rng: np.random.Generator, h: int, w: int, fine_period: float = 4.0) -> np.ndarray:
    """A random colour texture, h×w×3 uint8.

    Value-noise octaves built coarse to fine on small grids (each level upsampled ×2 and new
    noise added), with the random colour mixing, contrast and mean applied on the grid (they are
    linear, so they commute with the interpolation); only the final bicubic upsampling to h×w
    (finest period `fine_period`..1.6×`fine_period` px, so bilinear resampling stays accurate)
    and the optional stripes touch full-resolution arrays."""
    period = fine_period * rng.uniform(1.0, 1.6)
    gh, gw = int(math.ceil(h / period)) + 2, int(math.ceil(w / period)) + 2
    levels = max(1, min(6, int(math.log2(max(gh, gw))) - 1))
    sizes = [(max(2, int(math.ceil(gh / 2 ** k))), max(2, int(math.ceil(gw / 2 ** k)))) for k in range(levels)]
    acc = rng.standard_normal(sizes[-1] + (3,)).astype(np.float32)
    for k in range(levels - 2, -1, -1):
        acc = cv2.resize(acc, (sizes[k][1], sizes[k][0]), interpolation=cv2.INTER_CUBIC)
        # finer octaves weaker: roughly 1/f^0.35 amplitude spectrum (texture at every scale)
        acc += rng.standard_normal(sizes[k] + (3,)).astype(np.float32) * (0.88 ** (levels - 1 - k))
    # random colour mixing: correlated channels look more natural than independent noise
    mix = rng.normal(0.0, 1.0, (3, 3)).astype(np.float32) + np.eye(3, dtype=np.float32) * rng.uniform(0.5, 1.5)
    acc = (acc.reshape(-1, 3) @ mix.T).reshape(acc.shape)
    if rng.random() < 0.5:  # a linear colour gradient (exact under linear interpolation)
        ang = rng.uniform(0, 2 * math.pi)
        ramp = (math.cos(ang) * np.arange(gw, dtype=np.float32)[None, :]
                + math.sin(ang) * np.arange(gh, dtype=np.float32)[:, None]) / max(gh, gw)
        acc += ramp[..., None] * rng.normal(0, 1.5, 3).astype(np.float32) * float(acc.std())
    # contrast and mean colour, on the grid
    acc *= np.float32(rng.uniform(40.0, 65.0) / (float(acc.std()) + 1e-6))
    acc += (rng.uniform(60.0, 195.0, 3) - acc.reshape(-1, 3).mean(0)).astype(np.float32)
    # straight to h×w (the grid's outer cells are cut off unevenly, which does not matter for
    # random noise); in uint8, where OpenCV's resize is several times faster than in float
    tex = cv2.resize(_to_uint8(acc), (w, h), interpolation=cv2.INTER_CUBIC)
    if rng.random() < 0.35:
        # stripes of random direction, period and colour; sin(ax + by + c) written separably
        ang = rng.uniform(0, math.pi)
        freq = 2 * math.pi / rng.uniform(6.0, 30.0)
        ax = math.cos(ang) * freq * np.arange(w, dtype=np.float32)
        by = math.sin(ang) * freq * np.arange(h, dtype=np.float32) + rng.uniform(0, 2 * math.pi)
        stripes = np.outer(np.cos(by), np.sin(ax)) + np.outer(np.sin(by), np.cos(ax))
        colour = rng.normal(0, 25.0, 3)
        tex = cv2.add(tex, cv2.merge([stripes * np.float32(c) for c in colour]), dtype=cv2.CV_8U)
    return tex


def _shape_mask(rng: np.random.Generator, size: int) -> np.ndarray:
    """A size×size float32 alpha in [0, 1]: an ellipse or a random star-shaped polygon (antialiased)."""
    mask = np.zeros((size, size), np.uint8)
    c = (size - 1) / 2.0
    r = size / 2.0 - 1.0
    shift = 4  # cv2 sub-pixel drawing: coordinates scaled by 2**shift
    k = 1 << shift
    if rng.random() < 0.45:
        axes = (int(r * rng.uniform(0.5, 1.0) * k), int(r * rng.uniform(0.5, 1.0) * k))
        cv2.ellipse(mask, (int(c * k), int(c * k)), axes, float(rng.uniform(0, 180)), 0, 360, 255,
                    thickness=-1, lineType=cv2.LINE_AA, shift=shift)
    else:
        nv = int(rng.integers(3, 9))
        ang = np.sort(rng.uniform(0, 2 * math.pi, nv))
        rad = r * rng.uniform(0.55, 1.0, nv)
        pts = np.stack([c + rad * np.cos(ang), c + rad * np.sin(ang)], 1)
        cv2.fillPoly(mask, [np.round(pts * k).astype(np.int32)], 255, lineType=cv2.LINE_AA, shift=shift)
    return mask.astype(np.float32) * (1.0 / 255.0)


# ----------------------------------------------------------------------------------------------
# rendering

def _render_layer(canvas: np.ndarray, labels: np.ndarray, index: int, tex: np.ndarray, alpha: np.ndarray,
                  m: np.ndarray) -> tuple[int, int, int, int] | None:
    """Composite texture `tex` (h×w×3 uint8, with float32 `alpha`) mapped by the 3×3 texture->frame
    matrix `m` over `canvas` (uint8, in place), inside the layer's bounding box only; mark labels
    where alpha > 0.5; return the box (x0, y0, x1, y1) drawn into, or None.

    Rendering in uint8 halves the warp cost; it rounds to whole grey levels once per layer, as
    storing the images does anyway."""
    h, w = canvas.shape[:2]
    th, tw = alpha.shape
    corners = np.array([[-0.5, -0.5, 1], [tw - 0.5, -0.5, 1], [-0.5, th - 0.5, 1], [tw - 0.5, th - 0.5, 1]]).T
    pc = (m @ corners)[:2]
    x0 = max(int(math.floor(pc[0].min())) - 1, 0)
    y0 = max(int(math.floor(pc[1].min())) - 1, 0)
    x1 = min(int(math.ceil(pc[0].max())) + 2, w)
    y1 = min(int(math.ceil(pc[1].max())) + 2, h)
    if x1 <= x0 or y1 <= y0:
        return None
    mr = (_translate(-x0, -y0) @ m)[:2]
    size = (x1 - x0, y1 - y0)
    col = cv2.warpAffine(tex, mr, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    a = cv2.warpAffine(alpha, mr, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    roi = canvas[y0:y1, x0:x1]
    # alpha compositing a·col + (1−a)·roi in one threaded OpenCV pass
    roi[...] = cv2.blendLinear(col, np.ascontiguousarray(roi), a, 1.0 - a)
    labels[y0:y1, x0:x1][a > 0.5] = index
    return x0, y0, x1, y1


def gaussian_noise(rng: np.random.Generator, shape: tuple[int, ...], sigma: float) -> np.ndarray:
    """float32 Gaussian noise N(0, sigma²) of `shape`, deterministic given `rng`.

    Drawn by OpenCV's generator (about 3× faster than numpy's for images), seeded from `rng`;
    this reseeds OpenCV's RNG of the calling thread (cv2.setRNGSeed)."""
    out = np.empty(shape, np.float32)
    channels = shape[2] if len(shape) == 3 else 1
    if channels > 4:  # cv2.randn takes up to 4 channels
        return rng.standard_normal(shape, dtype=np.float32) * np.float32(sigma)
    cv2.setRNGSeed(int(rng.integers(0, 2 ** 31 - 1)))
    cv2.randn(out, (0.0,) * channels, (float(sigma),) * channels)
    return out


def _to_uint8(img: np.ndarray) -> np.ndarray:
    """Round and saturate to uint8 (cv2.add with a dtype does both in one pass)."""
    return cv2.add(img, (0.0, 0.0, 0.0, 0.0), dtype=cv2.CV_8U)


def _check_options(height: Any, width: Any, num_shapes: Any, max_motion: Any, max_rotation: Any,
                   max_scale: Any, background_motion: Any, noise: Any, illumination: Any) -> None:
    for name, v in (("height", height), ("width", width)):
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 4:
            raise InputError(f"generate_pair: {name}={v!r} must be an int >= 4")
    if num_shapes is not None:
        lo_hi = num_shapes if isinstance(num_shapes, tuple) else (num_shapes, num_shapes)
        if (len(lo_hi) != 2 or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in lo_hi)
                or lo_hi[0] < 0 or lo_hi[1] < lo_hi[0] or lo_hi[1] > 250):
            raise InputError(f"generate_pair: num_shapes={num_shapes!r} must be an int in 0..250 "
                             "or a (low, high) tuple of such ints with low <= high")
    for name, v, lo, hi in (("max_motion", max_motion, 0.0, 1e4), ("max_rotation", max_rotation, 0.0, 180.0),
                            ("max_scale", max_scale, 0.0, 0.9), ("background_motion", background_motion, 0.0, 1.0),
                            ("noise", noise, 0.0, 255.0), ("illumination", illumination, 0.0, 0.9)):
        if not isinstance(v, (int, float, np.floating, np.integer)) or not (lo <= float(v) <= hi):
            raise InputError(f"generate_pair: {name}={v!r} must be a number in [{lo}, {hi}]")


def _layer_flow(grid: np.ndarray, labels: np.ndarray, boxes: list, mats: list[np.ndarray]) -> np.ndarray:
    """Flow A_l·p − p of the frontmost layer l at every pixel (mats[l] = A_l, 3×3).

    The background's affine flow everywhere, then each shape inside its drawn box where it is
    the frontmost layer."""
    flow = cv2.transform(grid, (mats[0] - np.eye(3))[:2])
    for i, box in enumerate(boxes, start=1):
        if box is None:
            continue
        x0, y0, x1, y1 = box
        mine = labels[y0:y1, x0:x1] == i
        np.copyto(flow[y0:y1, x0:x1], cv2.transform(grid[y0:y1, x0:x1], (mats[i] - np.eye(3))[:2]),
                  where=mine[..., None])
    return flow


def _occluded(grid: np.ndarray, flow: np.ndarray, labels: np.ndarray, target_labels: np.ndarray) -> np.ndarray:
    """True where p + flow(p) leaves the pixel centres [0, W-1]×[0, H-1] (a bilinear backward warp
    cannot sample there) or a nearer layer covers it in the target frame (nearest lookup)."""
    h, w = labels.shape
    target = grid + flow
    front = cv2.remap(target_labels, target, None, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT,
                      borderValue=255)
    inside = cv2.inRange(target, (0.0, 0.0), (w - 1.0, h - 1.0))
    return (front > labels) | (inside == 0)


_OPTIONS_DOC = """
        num_shapes: number of foreground shapes, or a (low, high) inclusive range; default (4, 8).
        max_motion: largest shape translation per axis and frame step, pixels (uniform in ±max_motion).
        max_rotation: largest shape rotation per frame step, degrees.
        max_scale: largest relative shape scale change per step (scale in [1-max_scale, 1+max_scale]).
        background_motion: background motion relative to the shapes' (translation
            ±background_motion·max_motion, rotation and scale change also scaled by it).
        noise: standard deviation of Gaussian noise added to each image, grey levels (0..255).
        illumination: largest global brightness change of each later frame (gain in 1±illumination,
            plus an offset up to ±illumination·64 grey levels); 0 keeps brightness constancy.
        backward: also compute the exact backward flow (later frame -> earlier) and its occlusions.
        textures: where layer textures come from, a callable (rng, height, width, foreground) -> H×W×3
            uint8; default procedural_texture (multi-octave noise).  flowmatch.data.flying_photos
            passes crops of real photographs."""


@dataclass
class SyntheticSequence:
    """A generated sequence of F frames under constant per-layer motion.

    frames: F images H×W×3 uint8.  flows[k]: H×W×2 float32 (pixels, x first) from frame k to k+1.
    occlusions[k]: H×W bool, True where a frame-k pixel is not visible in frame k+1.
    layers[k]: H×W uint8, frontmost layer index in frame k (0 = background).  meta: drawn parameters.
    flows_bw[k], occlusions_bw[k]: from frame k+1 back to frame k (only with backward=True, else None).
    """

    frames: list[np.ndarray]
    flows: list[np.ndarray]
    occlusions: list[np.ndarray]
    layers: list[np.ndarray]
    meta: dict[str, Any] = field(default_factory=dict)
    flows_bw: list[np.ndarray] | None = None
    occlusions_bw: list[np.ndarray] | None = None


def generate_sequence(height: int, width: int, seed: int | np.random.Generator = 0, *, frames: int = 3,
                      num_shapes: int | tuple[int, int] | None = None,
                      max_motion: float = 40.0, max_rotation: float = 20.0, max_scale: float = 0.15,
                      background_motion: float = 0.3, noise: float = 0.0,
                      illumination: float = 0.0, backward: bool = False,
                      textures: TextureSource | None = None) -> SyntheticSequence:
    """Generate `frames` frames of flying shapes, each layer repeating its affine motion every step.

    Args:
        height, width: frame size in pixels (>= 4).
        seed: int seed (or a numpy Generator, consumed).
        frames: number of frames (>= 2); frame k shows every layer moved by its motion k times.{options}

    Returns:
        SyntheticSequence with F frames, F-1 flows and F-1 occlusion masks (see the class).
    """
    _check_options(height, width, num_shapes, max_motion, max_rotation, max_scale, background_motion,
                   noise, illumination)
    if not isinstance(frames, (int, np.integer)) or isinstance(frames, bool) or not 2 <= frames <= 1000:
        raise InputError(f"generate_sequence: frames={frames!r} must be an int in 2..1000")
    h, w, nf = int(height), int(width), int(frames)
    if isinstance(seed, np.random.Generator):
        rng = seed
    elif isinstance(seed, (int, np.integer)) and not isinstance(seed, bool) and seed >= 0:
        rng = np.random.default_rng(int(seed))
    else:
        raise InputError(f"generate_pair: seed={seed!r} must be an int >= 0 or a numpy Generator")
    if num_shapes is None:
        num_shapes = (4, 8)
    lo, hi = num_shapes if isinstance(num_shapes, tuple) else (num_shapes, num_shapes)
    n = int(rng.integers(lo, hi + 1))
    max_motion, bgm = float(max_motion), float(background_motion)

    # background: texture a bit larger than the frame, reflected beyond that
    # (capped: beyond it the reflected border keeps the flow exact, and huge motions stay cheap)
    margin = min(int(math.ceil(max_motion * bgm)) + 8, 128)
    texture = textures or procedural_texture
    bg_tex = texture(rng, h + 2 * margin, w + 2 * margin, False)
    bg_m1 = _translate(-margin, -margin)
    bg_a = _motion_about((w - 1) / 2, (h - 1) / 2, rng.uniform(-1, 1) * max_rotation * bgm * 0.25,
                         1.0 + rng.uniform(-1, 1) * max_scale * bgm * 0.5,
                         *(rng.uniform(-1, 1, 2) * max_motion * bgm))
    imgs = [bg_tex[margin:margin + h, margin:margin + w].copy()]  # bg_m1 is an integer shift: a crop
    step = np.eye(3)
    for _ in range(1, nf):
        step = bg_a @ step
        imgs.append(cv2.warpAffine(bg_tex, (step @ bg_m1)[:2], (w, h), flags=cv2.INTER_LINEAR,
                                   borderMode=cv2.BORDER_REFLECT101))
    labs = [np.zeros((h, w), np.uint8) for _ in range(nf)]
    boxes: list[list[tuple[int, int, int, int] | None]] = [[] for _ in range(nf)]  # per frame, per shape
    motions = [bg_a]

    # shapes, back to front; frame k maps the texture by A^k · M1
    short = min(h, w)
    for i in range(1, n + 1):
        size = max(6, int(short * rng.uniform(0.15, 0.6)))
        tex = texture(rng, size, size, True)
        alpha = _shape_mask(rng, size)
        cx, cy = rng.uniform(-0.1, 1.1) * (w - 1), rng.uniform(-0.1, 1.1) * (h - 1)
        m = _translate(cx, cy) @ _rot_scale(rng.uniform(0, 360), rng.uniform(0.8, 1.25)) \
            @ _translate(-(size - 1) / 2, -(size - 1) / 2)
        a = _motion_about(cx, cy, rng.uniform(-1, 1) * max_rotation, 1.0 + rng.uniform(-1, 1) * max_scale,
                          *(rng.uniform(-1, 1, 2) * max_motion))
        for k in range(nf):
            boxes[k].append(_render_layer(imgs[k], labs[k], i, tex, alpha, m))
            m = a @ m
        motions.append(a)

    # exact flow: the affine motion of the frontmost layer, A·p − p
    xs = np.arange(w, dtype=np.float32)[None, :]
    ys = np.arange(h, dtype=np.float32)[:, None]
    grid = np.empty((h, w, 2), np.float32)
    grid[..., 0], grid[..., 1] = xs, ys
    flows, occs, flows_bw, occs_bw = [], [], [], []
    inverse = [np.linalg.inv(a) for a in motions] if backward else []
    for k in range(nf - 1):
        flows.append(_layer_flow(grid, labs[k], boxes[k], motions))
        occs.append(_occluded(grid, flows[-1], labs[k], labs[k + 1]))
        if backward:  # frame k+1 -> k: the inverse motions of the layers frontmost in frame k+1
            flows_bw.append(_layer_flow(grid, labs[k + 1], boxes[k + 1], inverse))
            occs_bw.append(_occluded(grid, flows_bw[-1], labs[k + 1], labs[k]))

    # photometric options (after the geometry, so the flow stays exact)
    for k in range(nf):
        if (illumination > 0 and k > 0) or noise > 0:
            img = imgs[k].astype(np.float32)
            if illumination > 0 and k > 0:
                gain = 1.0 + rng.uniform(-1, 1) * illumination
                img = img * np.float32(gain) + np.float32(rng.uniform(-1, 1) * illumination * 64.0)
            if noise > 0:
                img += gaussian_noise(rng, img.shape, noise)
            imgs[k] = _to_uint8(img)
    meta = {"num_shapes": n, "motions": np.stack(motions)[:, :2].astype(np.float32)}
    return SyntheticSequence(frames=imgs, flows=flows, occlusions=occs, layers=labs, meta=meta,
                             flows_bw=flows_bw if backward else None, occlusions_bw=occs_bw if backward else None)


def generate_pair(height: int, width: int, seed: int | np.random.Generator = 0, *,
                  num_shapes: int | tuple[int, int] | None = None,
                  max_motion: float = 40.0, max_rotation: float = 20.0, max_scale: float = 0.15,
                  background_motion: float = 0.3, noise: float = 0.0,
                  illumination: float = 0.0, backward: bool = False,
                  textures: TextureSource | None = None) -> SyntheticPair:
    """Generate one flying-shapes pair, deterministic by `seed`.

    Args:
        height, width: frame size in pixels (>= 4).
        seed: int seed (or a numpy Generator, consumed).{options}

    Returns:
        SyntheticPair: img1, img2 H×W×3 uint8; flow H×W×2 float32 (pixels, x first, img1 -> img2);
        occlusion H×W bool (True = occluded in img2); valid H×W bool (all True).
    """
    seq = generate_sequence(height, width, seed, frames=2, num_shapes=num_shapes, max_motion=max_motion,
                            max_rotation=max_rotation, max_scale=max_scale,
                            background_motion=background_motion, noise=noise, illumination=illumination,
                            backward=backward, textures=textures)
    return SyntheticPair(img1=seq.frames[0], img2=seq.frames[1], flow=seq.flows[0],
                         occlusion=seq.occlusions[0], valid=np.ones((int(height), int(width)), bool),
                         layers=seq.layers[0], meta=seq.meta,
                         flow_bw=seq.flows_bw[0] if backward else None,
                         occlusion_bw=seq.occlusions_bw[0] if backward else None)


# one copy of the option descriptions, shared by both docstrings
generate_sequence.__doc__ = generate_sequence.__doc__.replace("{options}", _OPTIONS_DOC)
generate_pair.__doc__ = generate_pair.__doc__.replace("{options}", _OPTIONS_DOC)
