"""PatchMatch nearest-neighbour search on dense descriptor fields (torch.ops.flowmatch.patchmatch).

    flow, cost = patchmatch(desc_a, desc_b, iterations=2, radius=5, window=8, seed=0)

desc_a, desc_b are H×W×D descriptor fields (float32 or float16, one D-vector per pixel, same
shape).  The result maps A to B: pixel (x, y) of A matches pixel (x + u, y + v) of B, where
flow[y, x] = (u, v) in pixels (x first), and cost[y, x] is the squared L2 distance of the two
descriptors at the integer match.  Matches always land inside B.

`patchmatch_bruteforce` is the exhaustive reference over a square window (the test oracle and the
benchmark baseline).
"""
from __future__ import annotations

import torch

from .. import _ext
from .._checks import check_allocation
from ..errors import InputError
from . import _library

__all__ = ["patchmatch", "patchmatch_bruteforce", "validate_descriptors"]

_FLOAT_TYPES = (torch.float32, torch.float16)


def validate_descriptors(desc_a: torch.Tensor, desc_b: torch.Tensor, *, check_finite: bool = True) -> None:
    """Raise InputError unless desc_a, desc_b are finite H×W×D float32/float16 tensors of one shape/device."""
    for name, t in (("desc_a", desc_a), ("desc_b", desc_b)):
        if not isinstance(t, torch.Tensor):
            raise InputError(f"{name} must be a torch.Tensor (H×W×D), got {type(t).__name__}")
        if t.dim() != 3:
            raise InputError(f"{name} must be H×W×D (channels last), got shape {tuple(t.shape)}")
        if t.dtype not in _FLOAT_TYPES:
            raise InputError(f"{name} must be float32 or float16, got {t.dtype}; convert with .float()")
        if min(t.shape) < 1:
            raise InputError(f"{name} is empty: shape {tuple(t.shape)}")
    if desc_a.shape != desc_b.shape:
        raise InputError(f"desc_a {tuple(desc_a.shape)} and desc_b {tuple(desc_b.shape)} differ in size or "
                         "descriptor dimension; compute both with the same model on same-size images")
    if desc_a.dtype != desc_b.dtype:
        raise InputError(f"desc_a ({desc_a.dtype}) and desc_b ({desc_b.dtype}) differ in dtype")
    if desc_a.device != desc_b.device:
        raise InputError(f"desc_a ({desc_a.device}) and desc_b ({desc_b.device}) are on different devices")
    # bounded before any pass over the data: an expanded (stride-0) view may claim terabytes, and the
    # op makes both contiguous
    h, w, d = desc_a.shape
    check_allocation(f"patchmatch: two contiguous {h}×{w}×{d} descriptor fields",
                     2 * desc_a.numel() * desc_a.element_size(), desc_a.device)
    if check_finite:
        for name, t in (("desc_a", desc_a), ("desc_b", desc_b)):
            # one reduction pass without a mask temporary (NaN and ±inf propagate into min/max)
            lo, hi = torch.aminmax(t)
            if not (bool(torch.isfinite(lo)) and bool(torch.isfinite(hi))):
                raise InputError(f"{name} contains NaN or infinite values")


def _has_cuda_kernel() -> bool:
    check = getattr(torch._C, "_dispatch_has_kernel_for_dispatch_key", None)
    return bool(check and check("flowmatch::patchmatch", "CUDA"))


def patchmatch(desc_a: torch.Tensor, desc_b: torch.Tensor, iterations: int = 2, radius: int = 5,
               window: int = 8, seed: int = 0, subpixel: bool = False,
               init: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Approximate nearest-neighbour field from desc_a to desc_b by PatchMatch (squared L2 cost).

    Random initialisation uniform in [-window, window]² around each pixel's initial guess (`init`,
    zero by default), then `iterations`
    passes of propagation (from left/up neighbours on even passes, right/down on odd ones) and
    random search around the current best with radius `radius`, radius/2, ..., 1.  Deterministic
    for a given seed (independent of the thread count on the CPU).

    Args:
        desc_a, desc_b: H×W×D float32 or float16 descriptor fields, same shape and device.
        iterations: number of propagation + search passes (>= 1).
        radius: first random-search radius in pixels (>= 0; 0 disables random search).
        window: half-size in pixels of the random initialisation window (>= 0).
        seed: any integer.
        subpixel: refine each integer match by a parabola fit through the neighbouring costs
            (the returned cost stays that of the integer match).
        init: optional H×W×2 initial guess of the flow (pixels, u then v; rounded to integers), e.g. an
            upsampled coarse result; the random initialisation is drawn around it.
    Returns:
        flow: H×W×2 float32, pixels, (u, v) x first, A(x, y) -> B(x+u, y+v).
        cost: H×W float32, squared L2 descriptor distance of each match.
    """
    validate_descriptors(desc_a, desc_b)
    for name, val, lo in (("iterations", iterations, 1), ("radius", radius, 0), ("window", window, 0)):
        if isinstance(val, bool) or not isinstance(val, int) or val < lo or val >= 2 ** 20:
            raise InputError(f"patchmatch: {name} must be an integer in [{lo}, 2^20), got {val!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise InputError(f"patchmatch: seed must be an integer, got {seed!r}")
    seed = int(seed) % (2 ** 63)
    guess = None
    if init is not None:
        guess = torch.as_tensor(init)
        if guess.shape != (*desc_a.shape[:2], 2):
            raise InputError(f"patchmatch: init must be H×W×2 = {(*desc_a.shape[:2], 2)}, got {tuple(guess.shape)}")
        guess = guess.to(torch.float64)
        if not bool(torch.isfinite(guess).all()) or bool((guess.abs() >= 2 ** 20).any()):
            raise InputError("patchmatch: init must be finite with |values| < 2^20 pixels")
        guess = guess.round().to(device=desc_a.device, dtype=torch.int32).contiguous()
    if not _library.load():
        _ext.require("flowmatch.ops.patchmatch")
    if desc_a.device.type == "cuda" and not _has_cuda_kernel():
        raise InputError("patchmatch: descriptors are on CUDA but the extension was built without CUDA kernels; "
                         "move them to the CPU with .cpu() or rebuild with a CUDA torch")
    return torch.ops.flowmatch.patchmatch(desc_a.contiguous(), desc_b.contiguous(), iterations, radius, window,
                                          seed, bool(subpixel), guess)


def patchmatch_bruteforce(desc_a: torch.Tensor, desc_b: torch.Tensor, window: int | None = None,
                          rows_per_chunk: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """Exhaustive nearest neighbour of every pixel over offsets in [-window, window]² (None = whole image).

    Vectorised over pixels: one squared-distance map per offset, in chunks of rows.  Ties are broken
    like the op: smallest v, then smallest u.  Costs are accumulated in float32.
    Returns (flow H×W×2 float32 (u, v), cost H×W float32) like `patchmatch`.
    """
    validate_descriptors(desc_a, desc_b)
    H, W, _ = desc_a.shape
    if window is None:
        window = max(H, W)
    a = desc_a.float()
    b = desc_b.float()
    best_cost = torch.full((H, W), float("inf"), device=a.device)
    best_u = torch.zeros((H, W), dtype=torch.int64, device=a.device)
    best_v = torch.zeros_like(best_u)
    wv, wu = min(window, H - 1), min(window, W - 1)
    for v in range(-wv, wv + 1):  # increasing v, then u: a strict `<` keeps the first = (v, u)-smallest
        for u in range(-wu, wu + 1):
            ys0, ys1 = max(0, -v), min(H, H - v)  # rows of A whose target row y+v is inside B
            xs0, xs1 = max(0, -u), min(W, W - u)
            if ys0 >= ys1 or xs0 >= xs1:
                continue
            for r0 in range(ys0, ys1, rows_per_chunk):
                r1 = min(ys1, r0 + rows_per_chunk)
                d = a[r0:r1, xs0:xs1] - b[r0 + v:r1 + v, xs0 + u:xs1 + u]
                c = (d * d).sum(-1)
                cur = best_cost[r0:r1, xs0:xs1]
                better = c < cur
                cur[better] = c[better]
                best_u[r0:r1, xs0:xs1][better] = u
                best_v[r0:r1, xs0:xs1][better] = v
    flow = torch.stack([best_u, best_v], dim=-1).float()
    return flow, best_cost
