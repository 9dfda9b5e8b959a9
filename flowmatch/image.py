"""Images, flows and masks as arrays: conversion, validation and layouts, in one place.

Every module that takes a frame, a flow or a mask from a user goes through these functions, so the
input rules live here once (kornia's KORNIA_CHECK_SHAPE is the model for `check_shape`).

Layouts
- frame (numpy): H×W, H×W×1, H×W×3 or H×W×4 (alpha dropped); uint8, uint16 or float.
- frame (torch): the same, or C×H×W (channels first, C in 1/3 and the last axis not 1/3/4).
- batch: N×3×H×W float32 in [0, 1] (what networks take; see `to_batch`).
- flow: H×W×2, pixels, x (u) first.  mask: H×W bool.
Value range: uint8 and uint16 frames span their dtype; a float frame is taken as [0, 1] when its
maximum is <= 1.5, else as [0, 255].  `full_scale` is the one place that decides it.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from .errors import InputError

__all__ = ["to_numpy", "check_shape", "full_scale", "as_flow", "as_mask", "frame_to_numpy", "as_image", "to_gray",
           "normalize_gray", "gray_u8", "to_batch"]

# ITU-R 601 luma weights (what cv2.cvtColor uses), R, G, B.
LUMA = (0.299, 0.587, 0.114)
# A float frame whose maximum is at most this is taken to be in [0, 1], else in [0, 255].
UNIT_RANGE_MAX = 1.5
_DTYPE_MAX: dict[Any, float] = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0, torch.uint8: 255.0}
if getattr(torch, "uint16", None) is not None:
    _DTYPE_MAX[torch.uint16] = 65535.0


def full_scale(x: np.ndarray | torch.Tensor) -> float:
    """The value of full brightness in frame(s) x: 255 for uint8, 65535 for uint16, and for any other
    dtype 1 when the maximum is <= 1.5 (a [0, 1] image; also an empty one), else 255."""
    dtype_max = _DTYPE_MAX.get(x.dtype)
    if dtype_max is not None:
        return dtype_max
    empty = x.size == 0 if isinstance(x, np.ndarray) else x.numel() == 0
    return 1.0 if empty or float(x.max()) <= UNIT_RANGE_MAX else 255.0


def to_numpy(x: Any, name: str) -> np.ndarray:
    """numpy array of a numpy array or a (CPU or GPU) torch tensor; InputError for anything else."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
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


def as_flow(flow: Any, name: str = "flow", dtype: Any = np.float32, nonempty: bool = True,
            finite: bool = False) -> np.ndarray:
    """An H×W×2 flow (numpy or torch, pixels, x first) as a numpy array of `dtype`.

    InputError for another shape, a non-numeric dtype, an empty field (when `nonempty`) or NaN/inf
    (when `finite`)."""
    f = to_numpy(flow, name)
    if f.ndim != 3 or f.shape[2] != 2:
        raise InputError(f"{name} must be H×W×2 (pixels, x then y), got shape {tuple(f.shape)}")
    if nonempty and min(f.shape[:2]) < 1:
        raise InputError(f"{name} is empty: shape {tuple(f.shape)}")
    if not (np.issubdtype(f.dtype, np.floating) or np.issubdtype(f.dtype, np.integer)):
        raise InputError(f"{name} must be a float array, got dtype {f.dtype}")
    f = f.astype(dtype, copy=False)
    if finite and not np.isfinite(f).all():
        raise InputError(f"{name} contains NaN or infinite values")
    return f


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
        x = x.detach().cpu()
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


def _float32_frame(x: np.ndarray, name: str) -> tuple[np.ndarray, float]:
    """x as float32 (same shape) and its full_scale; InputError for a dtype that is not an integer
    or float one, or for NaN / inf."""
    if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
        raise InputError(f"{name} has unsupported dtype {x.dtype}")
    f = x.astype(np.float32)
    if not np.isfinite(f).all():
        raise InputError(f"{name} contains NaN or infinite values")
    return f, full_scale(x if x.dtype in _DTYPE_MAX else f)


def as_image(x: Any, name: str) -> np.ndarray:
    """Validate one input frame and return it as float32 H×W×3 in [0, 255] (what flow methods take).

    Accepts numpy arrays or torch tensors, H×W, H×W×1, H×W×3 (or 4, alpha dropped), C×H×W tensors,
    uint8, uint16 (scaled to 0-255) or float (taken as [0, 255] when its max exceeds 1.5, else as
    [0, 1]).  At least 2×2 pixels."""
    x = _channels_last(frame_to_numpy(x, name), name, "H×W or H×W×{1,3,4}")
    if x.shape[0] < 2 or x.shape[1] < 2:
        raise InputError(f"{name} is {x.shape[1]}×{x.shape[0]} pixels; at least 2×2 is needed")
    out, scale = _float32_frame(x, name)
    if scale != 255.0:
        out = out * (255.0 / scale)
    if out.ndim == 2:
        out = np.repeat(out[..., None], 3, axis=2)
    return np.ascontiguousarray(out)


def to_gray(img: np.ndarray, name: str = "image") -> np.ndarray:
    """H×W or H×W×3 numpy frame (uint8/uint16/float) -> H×W float32 luminance in [0, 1]
    (floats whose max exceeds 1.5 are taken as [0, 255])."""
    a = _channels_last(np.asarray(img), name, "H×W or H×W×3")
    f, scale = _float32_frame(a, name)
    if scale != 1.0:
        f = f / scale
    if f.ndim == 3:
        f = f @ np.array(LUMA, np.float32)
    return np.ascontiguousarray(f, dtype=np.float32)


def normalize_gray(gray: np.ndarray) -> np.ndarray:
    """Subtract the image's mean and divide by its standard deviation (1 for a flat image)."""
    std = float(gray.std())
    return ((gray - gray.mean()) / (std if std > 1e-6 else 1.0)).astype(np.float32)


def gray_u8(img: np.ndarray) -> np.ndarray:
    """float32 H×W×3 in [0, 255] (as `as_image` returns) -> uint8 H×W luma (what OpenCV's flow
    solvers take), rounded to nearest and saturated."""
    g = img[..., 0] * LUMA[0] + img[..., 1] * LUMA[1] + img[..., 2] * LUMA[2]
    return np.clip(np.rint(g), 0, 255).astype(np.uint8)


def _batch_from_numpy(x: np.ndarray, name: str) -> tuple[torch.Tensor, bool, float | None]:
    if x.dtype == object or not (np.issubdtype(x.dtype, np.number) or x.dtype == np.bool_):
        raise InputError(f"{name} has unsupported dtype {x.dtype}")
    dtype_max = _DTYPE_MAX.get(x.dtype)
    if x.ndim not in (2, 3, 4):
        raise InputError(f"{name} must be H×W, H×W×C or N×H×W×C as a numpy array, got shape {x.shape}")
    batched = x.ndim == 4
    x = x[None, :, :, None] if x.ndim == 2 else x if batched else x[None]
    t = torch.from_numpy(np.ascontiguousarray(x).astype(np.float32, copy=False)).permute(0, 3, 1, 2)
    return t, batched, dtype_max


def _batch_from_torch(x: torch.Tensor, name: str) -> tuple[torch.Tensor, bool, float | None]:
    dtype_max = _DTYPE_MAX.get(x.dtype)
    if x.is_complex() or x.dtype == torch.bool:
        raise InputError(f"{name} has unsupported dtype {x.dtype}")
    if x.ndim not in (2, 3, 4):
        raise InputError(f"{name} must be H×W, C×H×W or N×C×H×W as a torch tensor, got shape {tuple(x.shape)}")
    batched = x.ndim == 4
    x = x[None, None] if x.ndim == 2 else x if batched else x[None]
    return x.detach().float(), batched, dtype_max


def to_batch(x: Any, name: str) -> tuple[torch.Tensor, bool, bool]:
    """Frame(s) -> (N×3×H×W float32 in [0, 1], batched?, was_numpy?).

    numpy: H×W, H×W×C or N×H×W×C; torch: H×W, C×H×W or N×C×H×W; C in {1, 3} (4: alpha dropped).
    uint8 / uint16 are divided by their maximum; floats are taken as [0, 255] when their max
    exceeds 1.5, else as [0, 1]."""
    is_numpy = isinstance(x, np.ndarray)
    if is_numpy:
        t, batched, dtype_max = _batch_from_numpy(x, name)
    elif isinstance(x, torch.Tensor):
        t, batched, dtype_max = _batch_from_torch(x, name)
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
    scale = dtype_max if dtype_max is not None else full_scale(t)  # the float32 copy decides, as it always did
    if scale != 1.0:
        t = t / scale
    return t, batched, is_numpy
