"""Images, flows and masks as arrays: conversion, validation and layouts, in one place.

Every module that takes a frame, a flow or a mask from a user goes through these functions, so the
input rules live here once (kornia's KORNIA_CHECK_SHAPE is the model for `check_shape`).

Layouts
- frame (numpy): H×W, H×W×1, H×W×3 or H×W×4 (alpha dropped); uint8, uint16 or float.
- frame (torch): the same, or C×H×W (channels first, C in 1/3 and the last axis not 1/3/4).
- batch: N×3×H×W float32 in [0, 1] (what networks take; see `to_batch`).
- flow: H×W×2, pixels, x (u) first.  mask: H×W bool.
Value range (`full_scale` is the one place that decides it, per call and never from the values):
- uint8 frames span 0-255 and uint16 frames 0-65535;
- float frames (numpy or torch, any float dtype) are taken as [0, 1], the torch / scikit-image
  convention; frames in [0, 255] need ``value_range=255`` (or ``(0, 255)``), the CLI's ``--range 255``;
- an explicit ``value_range`` (a white level, or a (black, white) pair) overrides the dtype rule for
  every frame of the call, e.g. 4095 for 12-bit data stored as uint16;
- a frame whose values lie far outside its range (beyond half the range past either end) is refused
  with an InputError that names the range to pass: a [0, 255] float frame is never silently
  treated as [0, 1] nor rescaled per frame.

Inputs and outputs as users have them (the rule of `flowmatch.flow` and `FlowEstimator`):
- frames: a path (read by flowmatch.io.read_image), a numpy H×W / H×W×C array, a torch H×W / C×H×W
  tensor, or a batch (numpy N×H×W×C, torch N×C×H×W); C = 1, 3 or 4 (alpha dropped);
- flows are returned in the caller's layout and type: numpy H×W×2 for a numpy frame (N×H×W×2 for a
  numpy batch), torch 2×H×W for a torch C×H×W frame and torch N×2×H×W for a torch batch (on the
  frame's device); a path gives numpy H×W×2.  Functions that take a flow (metrics, viz, io.write_flow)
  accept all of these layouts (`flow_layout` / `as_flow_batch`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence, Tuple, Union

import numpy as np
import torch

from .errors import InputError

__all__ = ["to_numpy", "check_shape", "full_scale", "check_value_range", "as_flow", "as_flows", "as_mask", "frame_to_numpy",
           "as_image", "to_gray", "normalize_gray", "normalized_gray", "local_normalize", "gray_u8", "to_batch",
           "ValueRange", "FrameLayout", "split_frames", "flow_in_layout", "as_flows"]

# ITU-R 601 luma weights (what cv2.cvtColor uses), R, G, B.
LUMA = (0.299, 0.587, 0.114)
# How far (as a fraction of the range) a frame may stray outside its value range before it is
# refused: room for resampling overshoot, none for a [0, 255] frame taken as [0, 1].
RANGE_SLACK = 0.5
# A value range: the white level (black = 0) or a (black, white) pair.
ValueRange = Union[float, Tuple[float, float], None]
_DTYPE_MAX: dict[Any, float] = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0, torch.uint8: 255.0}
if getattr(torch, "uint16", None) is not None:
    _DTYPE_MAX[torch.uint16] = 65535.0


def _parse_range(value_range: Any) -> tuple[float, float]:
    """(black, white) of a value_range argument; InputError for anything but a positive finite
    number or a pair of finite numbers with black < white."""
    if isinstance(value_range, (list, tuple)) and len(value_range) == 2:
        lo, hi = value_range
    elif isinstance(value_range, (int, float, np.integer, np.floating)) and not isinstance(value_range, bool):
        lo, hi = 0.0, value_range
    else:
        raise InputError(f"value_range must be the white level (e.g. 1 or 255) or a (black, white) pair, "
                         f"got {value_range!r}")
    try:
        lo, hi = float(lo), float(hi)
    except (TypeError, ValueError):
        raise InputError(f"value_range must hold numbers, got {value_range!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and hi > lo):
        raise InputError(f"value_range must be finite with black < white, got {value_range!r}")
    return lo, hi


def full_scale(x: np.ndarray | torch.Tensor, value_range: ValueRange = None) -> tuple[float, float]:
    """(black, white) levels of frame(s) x: `value_range` when given, else by dtype alone: (0, 255)
    for uint8, (0, 65535) for uint16 and (0, 1) for every float (and other integer) dtype.  The values
    of x are never looked at, so every frame of a call gets the same rule."""
    if value_range is not None:
        return _parse_range(value_range)
    return 0.0, _DTYPE_MAX.get(x.dtype, 1.0)


def check_value_range(lo_hi: tuple[float, float], vmin: float, vmax: float, name: str) -> None:
    """InputError when values in [vmin, vmax] lie far outside the range (black, white) = lo_hi
    (more than RANGE_SLACK of the range past either end), naming the range that would fit."""
    lo, hi = lo_hi
    slack = RANGE_SLACK * (hi - lo)
    if vmin >= lo - slack and vmax <= hi + slack:
        return
    hint = "pass value_range=255 (CLI: --range 255)" if 0 <= vmin and vmax <= 255 * (1 + RANGE_SLACK) else \
        f"pass value_range=({vmin:g}, {vmax:g}) or rescale it"
    what = "the default range of float frames" if (lo, hi) == (0.0, 1.0) else "its value range"
    raise InputError(f"{name} has values in [{vmin:g}, {vmax:g}], far outside [{lo:g}, {hi:g}] ({what}); {hint}")


def _cpu_tensor(t: torch.Tensor, name: str) -> torch.Tensor:
    """t detached on the CPU, in a dtype numpy has (bfloat16 / float8 -> float32); InputError for a
    tensor without data (meta) or a sparse one."""
    if t.device.type == "meta":
        raise InputError(f"{name} is a meta tensor (a shape without data); pass a tensor with values")
    if t.layout != torch.strided:
        raise InputError(f"{name} is a {t.layout} tensor; pass a dense one (t.to_dense())")
    t = t.detach().cpu()
    if t.is_floating_point() and t.dtype not in (torch.float16, torch.float32, torch.float64):
        t = t.float()  # numpy has no bfloat16 / float8
    return t


def to_numpy(x: Any, name: str) -> np.ndarray:
    """numpy array of a numpy array or a (CPU or GPU) torch tensor; InputError for anything else."""
    if isinstance(x, torch.Tensor):
        x = _cpu_tensor(x, name).numpy()
    if not isinstance(x, np.ndarray):
        raise InputError(f"{name} must be a numpy array or torch tensor, got {type(x).__name__}")
    return x


def check_shape(x: Any, dims: Sequence[str | int], name: str) -> dict[str, int]:
    """Check that x.shape matches `dims` (ints must match exactly, names bind to any size and must
    agree where repeated: ("H", "W", 2)); returns the named sizes.  InputError otherwise."""
    shape = tuple(x.shape)
    spec = "×".join(str(d) for d in dims)
    sizes: dict[str, int] = {}
    ok = len(shape) == len(dims)
    for d, n in zip(dims, shape) if ok else ():
        if isinstance(d, int):
            ok &= n == d
        else:
            ok &= sizes.setdefault(d, n) == n
    if not ok:
        raise InputError(f"{name} must be {spec}, got shape {shape}")
    return sizes


def _flow_channels_last(f: np.ndarray) -> np.ndarray:
    """An H×W×2 view of a [1×]H×W×2 or [1×]2×H×W flow (channels last wins when both fit)."""
    if f.ndim == 4 and f.shape[0] == 1:
        f = f[0]
    if f.ndim == 3 and f.shape[2] != 2 and f.shape[0] == 2:
        f = np.moveaxis(f, 0, -1)  # 2×H×W (torch layout) -> H×W×2
    return f


def _check_flow_array(f: np.ndarray, name: str, dtype: Any, nonempty: bool, finite: bool) -> np.ndarray:
    if nonempty and min(f.shape[-3:-1]) < 1:
        raise InputError(f"{name} is empty: shape {tuple(f.shape)}")
    if not (np.issubdtype(f.dtype, np.floating) or np.issubdtype(f.dtype, np.integer)):
        raise InputError(f"{name} must be a float array, got dtype {f.dtype}")
    f = f.astype(dtype, copy=False)
    if finite and not np.isfinite(f).all():
        raise InputError(f"{name} contains NaN or infinite values")
    return f


def as_flow(flow: Any, name: str = "flow", dtype: Any = np.float32, nonempty: bool = True,
            finite: bool = False) -> np.ndarray:
    """One flow (pixels, x first) as a numpy H×W×2 array of `dtype`.

    Accepts numpy or torch H×W×2, 2×H×W (torch's layout, e.g. a FlowEstimator output) and a batch
    of one (1×H×W×2, 1×2×H×W); a shape that fits both H×W×2 and 2×H×W is read as H×W×2.
    InputError for another shape, a non-numeric dtype, an empty field (when `nonempty`) or NaN/inf
    (when `finite`)."""
    f = _flow_channels_last(to_numpy(flow, name))
    if f.ndim != 3 or f.shape[2] != 2:
        raise InputError(f"{name} must be one flow, H×W×2 or 2×H×W (pixels, x then y), got shape "
                         f"{tuple(to_numpy(flow, name).shape)}")
    return _check_flow_array(f, name, dtype, nonempty, finite)


def as_flows(flow: Any, name: str = "flow", dtype: Any = np.float32, nonempty: bool = True,
             finite: bool = False) -> tuple[np.ndarray, bool]:
    """One flow or a batch of flows as numpy N×H×W×2, and whether the input was a batch.

    Accepts everything `as_flow` takes plus batches N×H×W×2 and N×2×H×W (numpy or torch)."""
    f = to_numpy(flow, name)
    if f.ndim != 4:
        return as_flow(f, name, dtype, nonempty, finite)[None], False
    if f.shape[3] != 2 and f.shape[1] == 2:
        f = np.moveaxis(f, 1, -1)  # N×2×H×W -> N×H×W×2
    if f.shape[3] != 2:
        raise InputError(f"{name} must be N×H×W×2 or N×2×H×W as a batch, got shape {tuple(f.shape)}")
    return _check_flow_array(f, name, dtype, nonempty, finite), True


def as_mask(mask: Any, shape: tuple[int, int], name: str = "valid", default: bool | None = None) -> np.ndarray | None:
    """An H×W mask (any dtype, nonzero = True) as numpy bool; InputError when its shape is not `shape`.

    mask None gives None, or a mask filled with `default` when that is given."""
    if mask is None:
        return None if default is None else np.full(shape, default, dtype=bool)
    m = to_numpy(mask, name)
    if m.shape != tuple(shape):
        raise InputError(f"{name} must be H×W = {tuple(shape)}, got shape {tuple(m.shape)}")
    return m.astype(bool, copy=False)


def frame_to_numpy(x: Any, name: str) -> np.ndarray:
    """One frame as a numpy array in H×W[×C] layout (a torch C×H×W tensor is moved to the CPU and
    made channels-last); InputError for a type that is neither."""
    if isinstance(x, torch.Tensor):
        x = _cpu_tensor(x, name)
        if x.ndim == 3 and x.shape[0] in (1, 3) and x.shape[-1] not in (1, 3, 4):
            x = x.permute(1, 2, 0)  # C×H×W -> H×W×C
        x = x.numpy()
    return to_numpy(x, name)


def _channels_last(x: np.ndarray, name: str, shape_hint: str) -> np.ndarray:
    """H×W or H×W×3 view of an H×W×{1,3,4} frame (alpha dropped, a single channel squeezed)."""
    if x.ndim == 3 and x.shape[2] == 4:
        x = x[..., :3]
    if x.ndim == 3 and x.shape[2] == 1:
        x = x[..., 0]
    if x.ndim not in (2, 3) or (x.ndim == 3 and x.shape[2] != 3):
        raise InputError(f"{name} must be {shape_hint}, got shape {tuple(x.shape)}")
    return x


def _float32_frame(x: np.ndarray, name: str, value_range: ValueRange) -> tuple[np.ndarray, tuple[float, float]]:
    """x as float32 (same shape) and its (black, white) levels (`full_scale`); InputError for a dtype
    that is not an integer or float one, for NaN / inf, or for values far outside the range."""
    if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
        raise InputError(f"{name} has unsupported dtype {x.dtype}")
    f = x.astype(np.float32)
    if not np.isfinite(f).all():
        raise InputError(f"{name} contains NaN or infinite values")
    lo_hi = full_scale(x, value_range)
    if f.size and (value_range is not None or x.dtype not in _DTYPE_MAX):
        check_value_range(lo_hi, float(f.min()), float(f.max()), name)
    return f, lo_hi


def _rescale(f: Any, lo_hi: tuple[float, float], white: float) -> Any:
    """f (numpy or torch float32) mapped from (black, white) = lo_hi to [0, white]."""
    lo, hi = lo_hi
    if lo != 0.0:
        f = f - lo
    return f * (white / (hi - lo)) if hi - lo != white else f


def as_image(x: Any, name: str, value_range: ValueRange = None) -> np.ndarray:
    """Validate one input frame and return it as float32 H×W×3 in [0, 255] (what flow methods take).

    Accepts numpy arrays or torch tensors, H×W, H×W×1, H×W×3 (or 4, alpha dropped), C×H×W tensors;
    uint8, uint16 or float; the value range follows `full_scale` (floats: [0, 1] unless
    `value_range` says otherwise, e.g. 255).  At least 2×2 pixels."""
    x = _channels_last(frame_to_numpy(x, name), name, "H×W or H×W×{1,3,4}")
    if x.shape[0] < 2 or x.shape[1] < 2:
        raise InputError(f"{name} is {x.shape[1]}×{x.shape[0]} pixels; at least 2×2 is needed")
    out, lo_hi = _float32_frame(x, name, value_range)
    out = _rescale(out, lo_hi, 255.0)
    if out.ndim == 2:
        out = np.repeat(out[..., None], 3, axis=2)
    return np.ascontiguousarray(out, dtype=np.float32)


def to_gray(img: np.ndarray, name: str = "image", value_range: ValueRange = None) -> np.ndarray:
    """H×W or H×W×3 numpy frame (uint8/uint16/float; range as in `full_scale`) -> H×W float32
    luminance in [0, 1]."""
    a = _channels_last(np.asarray(img), name, "H×W or H×W×3")
    f, lo_hi = _float32_frame(a, name, value_range)
    f = _rescale(f, lo_hi, 1.0)
    if f.ndim == 3:
        f = f @ np.array(LUMA, np.float32)
    return np.ascontiguousarray(f, dtype=np.float32)


def normalize_gray(gray: np.ndarray) -> np.ndarray:
    """Subtract the image's mean and divide by its standard deviation (1 for a flat image)."""
    std = float(gray.std())
    return ((gray - gray.mean()) / (std if std > 1e-6 else 1.0)).astype(np.float32)


# Local contrast normalisation of a descriptor network's input (PatchBatchNet input_norm="local"):
# Gaussian window sigma in pixels (the 62-px context spans ~±4 sigma) and the floor of the local standard
# deviation, in units of the image's own standard deviation (flat areas are not blown up into noise).
LOCAL_NORM_SIGMA = 8.0
LOCAL_NORM_FLOOR = 0.05
INPUT_NORMS = ("global", "local")


def local_normalize(gray: np.ndarray, sigma: float = LOCAL_NORM_SIGMA, floor: float = LOCAL_NORM_FLOOR) -> np.ndarray:
    """(g - m) / sqrt(v + floor²) of an H×W float32 image g already normalised by `normalize_gray`,
    with m and v its Gaussian-weighted (sigma px, reflect-101 borders) local mean and variance: every
    neighbourhood gets zero mean and about unit contrast, so haze, fog and dark areas reach a network
    with the contrast bright areas have.  Invariant to a·g + b (a > 0).  Returns H×W float32."""
    import cv2

    g = np.ascontiguousarray(gray, dtype=np.float32)
    if g.ndim != 2:
        raise InputError(f"local_normalize needs an H×W image, got shape {g.shape}")
    # OpenCV's kernel grows with sigma (~8 sigma taps): a huge one would hang
    if not (isinstance(sigma, (int, float)) and 0 < sigma <= 100):
        raise InputError(f"local_normalize: sigma must be in (0, 100] px, got {sigma!r}")
    if not (isinstance(floor, (int, float)) and 0 < floor < 1e3):
        raise InputError(f"local_normalize: floor must be a positive number, got {floor!r}")
    blur = lambda x: cv2.GaussianBlur(x, (0, 0), sigma, borderType=cv2.BORDER_REFLECT_101)  # noqa: E731
    mean = blur(g)
    centred = g - mean
    var = blur(centred * centred)
    return (centred / np.sqrt(np.maximum(var, 0.0) + floor * floor)).astype(np.float32)


def gray_u8(img: np.ndarray) -> np.ndarray:
    """float32 H×W×3 (or H×W) in [0, 255], as `as_image` returns -> uint8 H×W grey (what OpenCV's
    flow solvers take), computed by OpenCV itself so that a method gives OpenCV's own result: a frame
    of whole numbers in [0, 255] (every 8-bit input) goes through ``cv2.cvtColor(frame_u8,
    cv2.COLOR_RGB2GRAY)`` exactly as a user of OpenCV would call it; any other frame through the
    float cvtColor, rounded to nearest and saturated (OpenCV's ``convertTo``)."""
    import cv2

    a = np.asarray(img)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if a.dtype == np.uint8:
        u8 = a
    elif a.size and float(a.min()) >= 0 and float(a.max()) <= 255 and np.array_equal(np.rint(a), a):
        u8 = a.astype(np.uint8)
    else:
        g = a if a.ndim == 2 else cv2.cvtColor(np.ascontiguousarray(a, dtype=np.float32), cv2.COLOR_RGB2GRAY)
        return np.clip(np.rint(g), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(u8) if u8.ndim == 2 else cv2.cvtColor(np.ascontiguousarray(u8), cv2.COLOR_RGB2GRAY)


def _batch_from_numpy(x: np.ndarray, name: str) -> tuple[torch.Tensor, bool]:
    if x.dtype == object or not (np.issubdtype(x.dtype, np.number) or x.dtype == np.bool_):
        raise InputError(f"{name} has unsupported dtype {x.dtype}")
    if x.ndim not in (2, 3, 4):
        raise InputError(f"{name} must be H×W, H×W×C or N×H×W×C as a numpy array, got shape {x.shape}")
    batched = x.ndim == 4
    x = x[None, :, :, None] if x.ndim == 2 else x if batched else x[None]
    t = torch.from_numpy(np.ascontiguousarray(x).astype(np.float32, copy=False)).permute(0, 3, 1, 2)
    return t, batched


def _batch_from_torch(x: torch.Tensor, name: str) -> tuple[torch.Tensor, bool]:
    if x.is_complex() or x.dtype == torch.bool:
        raise InputError(f"{name} has unsupported dtype {x.dtype}")
    if x.ndim not in (2, 3, 4):
        raise InputError(f"{name} must be H×W, C×H×W or N×C×H×W as a torch tensor, got shape {tuple(x.shape)}")
    batched = x.ndim == 4
    x = x[None, None] if x.ndim == 2 else x if batched else x[None]
    return x.detach().float(), batched


def to_batch(x: Any, name: str, value_range: ValueRange = None) -> tuple[torch.Tensor, bool, bool]:
    """Frame(s) -> (N×3×H×W float32 in [0, 1], batched?, was_numpy?).

    numpy: H×W, H×W×C or N×H×W×C; torch: H×W, C×H×W or N×C×H×W; C in {1, 3} (4: alpha dropped).
    The value range follows `full_scale` (uint8 / uint16 by dtype, floats [0, 1] unless
    `value_range` says otherwise); the whole batch gets one rule."""
    is_numpy = isinstance(x, np.ndarray)
    if is_numpy:
        t, batched = _batch_from_numpy(x, name)
    elif isinstance(x, torch.Tensor):
        t, batched = _batch_from_torch(x, name)
    else:
        raise InputError(f"{name} must be a numpy array or a torch tensor, got {type(x).__name__}")
    c = t.shape[1]
    if c == 4:
        t = t[:, :3]
    elif c == 1:
        t = t.expand(-1, 3, -1, -1)
    elif c != 3:
        layout = "N×H×W×C / H×W×C" if is_numpy else "N×C×H×W / C×H×W"
        raise InputError(f"{name} has {c} channels (layout {layout}); expected 1 (grey), 3 (RGB) or 4 (RGBA)")
    n, _, h, w = t.shape
    if n == 0 or h < 2 or w < 2:
        raise InputError(f"{name} is {w}×{h} pixels (batch {n}); at least one frame of 2×2 pixels is needed")
    if not torch.isfinite(t).all():
        raise InputError(f"{name} contains NaN or infinite values")
    lo_hi = full_scale(x, value_range)
    if value_range is not None or x.dtype not in _DTYPE_MAX:
        check_value_range(lo_hi, float(t.min()), float(t.max()), name)
    return _rescale(t, lo_hi, 1.0), batched, is_numpy


def normalized_gray(img: Any, name: str = "image", norm: str = "global") -> np.ndarray:
    """H×W or H×W×3 frame (numpy or torch, any numeric dtype) -> H×W float32 luma minus its mean,
    divided by its standard deviation, then (norm="local") by `local_normalize`.  The result does not
    depend on the value range, so none is asked for (descriptor networks take this)."""
    if norm not in INPUT_NORMS:
        raise InputError(f"norm must be one of {INPUT_NORMS}, got {norm!r}")
    a = _channels_last(frame_to_numpy(img, name), name, "H×W or H×W×3")
    if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
        raise InputError(f"{name} has unsupported dtype {a.dtype}")
    f = a.astype(np.float32)
    if not np.isfinite(f).all():
        raise InputError(f"{name} contains NaN or infinite values")
    g = normalize_gray(f @ np.array(LUMA, np.float32) if f.ndim == 3 else f)
    return local_normalize(g) if norm == "local" else g


@dataclass(frozen=True)
class FrameLayout:
    """How a caller gave its frames: as torch (and on which device) or numpy, one frame or a batch."""
    torch: bool
    batched: bool
    device: Any = None


def split_frames(x: Any, name: str) -> tuple[list[Any], FrameLayout]:
    """Frame(s) -> (list of single frames, their layout).  A numpy N×H×W×C array and a torch
    N×C×H×W tensor are batches; anything else is one frame (checked later by `as_image`)."""
    if isinstance(x, torch.Tensor):
        if x.ndim == 4:
            return list(x.unbind(0)), FrameLayout(True, True, x.device)
        return [x], FrameLayout(True, False, x.device)
    if isinstance(x, np.ndarray) and x.ndim == 4:
        return list(x), FrameLayout(False, True)
    return [x], FrameLayout(False, False)


def flow_in_layout(flows: Sequence[np.ndarray], layout: FrameLayout) -> np.ndarray | torch.Tensor:
    """H×W×2 numpy flows -> the caller's layout: numpy H×W×2 (N×H×W×2 for a batch), torch 2×H×W
    (N×2×H×W for a batch) on the frames' device."""
    out = np.stack([np.asarray(f, np.float32) for f in flows])
    if not layout.torch:
        return out if layout.batched else out[0]
    t = torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()
    if layout.device is not None and t.device != layout.device:
        t = t.to(layout.device)
    return t if layout.batched else t[0]
