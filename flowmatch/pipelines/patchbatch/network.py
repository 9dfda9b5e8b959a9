"""Dense PatchBatch descriptors: one D-dimensional descriptor for every pixel of an image.

    net = load_descriptor_model()             # shipped weights (dense variant)
    desc = descriptors(img, net)              # H×W×D float32 torch tensor

Descriptor pass: the image is converted to grayscale, normalised by its own mean and standard
deviation (and then locally, for a network with input_norm="local"), and padded with reflect-101
borders, so every pixel has a full patch of context.

Two ways to evaluate a network:
  * ``mode="dense"`` (the dense variant only: per-channel BN, floor-mode pools, 62×62 context).
    All pixels at once: eval-mode BN is folded into the convolutions, every pool runs at stride 1
    and its 2×2 phases are moved into the batch ("space-to-batch"), so every later convolution
    is an ordinary dense convolution on a quarter-size grid.  After the four pools the batch holds
    256 phases whose interleaving is the output image.  The image is processed in tiles of
    `tile`×`tile` output pixels (plus 61 px of context), so memory is bounded by the tile size.
    Pixel (y, x) sees the 62×62 window of rows y-30 .. y+31 and columns x-30 .. x+31, and its
    descriptor equals the network's per-patch forward on that window (float tolerance).
  * ``mode="patch"``: the network's own forward on one P×P patch per pixel (any variant; the
    paper's 51×51 network needs this).  ~50× slower; chunked so memory stays bounded.

Output stride k (``stride=k``) returns the descriptors of pixels (k·i, k·j) only; for powers of
two up to 16 the dense path skips the unused phases and does proportionally less work.
"""
from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..._paths import DESCRIPTOR_WEIGHTS, weights_path
from ...checkpoint import build_from_checkpoint, load_checkpoint
from ...data.patch_pairs import patch_offsets
from ...errors import CheckpointError, InputError
from ...image import normalized_gray
from ...models.patchbatch import LEAK, PatchBatchNet, fused_layers

__all__ = ["descriptors", "load_descriptor_model", "prepare_image"]
_SPLITS = 4  # number of pools, i.e. space-to-batch steps (output grid 2**4 = 16 px per phase period)


def load_descriptor_model(name: str | None = None, device: str | torch.device = "cpu") -> PatchBatchNet:
    """Load a descriptor network in eval mode.

    Args:
        name: None or "dense" (the shipped dense-evaluable network, 256-D), "dense-512" (the same at
            the paper's width, 512-D), "paper" (the shipped 51×51 network, per-patch only), or the path
            of a "patchbatch" checkpoint / weights file.
    Raises CheckpointError when the file is missing, foreign or does not fit the network."""
    key = name or "dense"
    path = weights_path(DESCRIPTOR_WEIGHTS[key]) if key in DESCRIPTOR_WEIGHTS else key
    if key in DESCRIPTOR_WEIGHTS and not os.path.isfile(path):
        raise CheckpointError(f"shipped descriptor weights {path!r} are missing; train them with "
                              "`flowmatch train patchbatch --export ...` or pass a checkpoint path")
    ckpt = load_checkpoint(path, "patchbatch")
    # built on the meta device and compared with the file's tensors first (nothing huge from a tiny file)
    net = build_from_checkpoint(PatchBatchNet, ckpt, source=f"descriptor weights {path!r}")
    net.meta = dict(ckpt.extra) if isinstance(ckpt.extra, dict) else {}
    return net.to(device).eval()


def prepare_image(image: Any, name: str = "image", norm: str = "global") -> torch.Tensor:
    """Image (H×W or H×W×3; numpy or torch; uint8, uint16 or float) -> H×W float32 grayscale
    normalised by its own mean and standard deviation (so any value range gives the same result),
    then locally (norm="local", flowmatch.image.local_normalize)."""
    return torch.from_numpy(normalized_gray(image, name, norm))


def _check_stride(stride: int) -> int:
    if not isinstance(stride, (int, np.integer)) or stride < 1:
        raise InputError(f"stride must be a positive integer, got {stride!r}")
    return int(stride)


def descriptors(image: Any, model: PatchBatchNet | None = None, *, mode: str = "dense", tile: int = 256,
                stride: int = 1, half: bool = False, precision: str = "fp32",
                device: str | torch.device | None = None, chunk: int = 1024) -> torch.Tensor:
    """Dense descriptors of every pixel (or every `stride`-th pixel) of an image.

    Args:
        image: H×W or H×W×3 frame (numpy or torch; uint8, uint16 or float in [0, 1] or [0, 255]).
        model: a PatchBatchNet (default: load_descriptor_model(), the shipped dense network).
            It is evaluated with eval-mode batch norm whatever its training flag.
        mode: "dense" (all pixels at once; dense variant only) or "patch" (one network forward per
            pixel; any variant; slow).
        tile: output tile side in pixels for mode "dense" (rounded up to a multiple of 16); memory
            grows with tile², not with the image size.
        stride: output stride k: descriptors of pixels (k·i, k·j).
        half: store the output as float16 (computation stays float32).
        precision: "fp32" (default; equals the per-patch forward to float tolerance) or "bf16"
            (mode "dense" only: bfloat16 weights and activations with float32 accumulation inside
            oneDNN; ~2× faster on CPUs with AVX512-BF16, descriptors differ by ~1 % relative).
        device: where to compute (default: the model's device).
        chunk: patches per forward in mode "patch".
    Returns:
        torch tensor ceil(H/k)×ceil(W/k)×D (float32, or float16 with half=True).
    Raises:
        InputError for a bad image, an image smaller than the network's context, a paper-variant
        model with mode "dense", or bad tile/stride values.
    """
    if model is None:
        model = load_descriptor_model()
    if not isinstance(model, PatchBatchNet):
        raise InputError(f"model must be a flowmatch.models.patchbatch.PatchBatchNet, got {type(model).__name__}")
    stride = _check_stride(stride)
    dev = torch.device(device) if device is not None else next(model.parameters()).device
    gray = prepare_image(image, norm=model.input_norm)
    h, w = gray.shape
    before, after = patch_offsets(model.patch_size)
    if min(h, w) <= after:
        raise InputError(f"image is {w}×{h} pixels; the {model.variant!r} descriptor needs at least "
                         f"{after + 1}×{after + 1} (reflect-101 borders of {after} px)")
    out_dtype = torch.float16 if half else torch.float32
    if mode == "dense":
        if model.variant != "dense":
            raise InputError(f"mode='dense' needs the dense variant of the network (62×62, floor pools, "
                             f"per-channel BN); this model is the {model.variant!r} variant: use mode='patch' "
                             "or load_descriptor_model('dense')")
        if not isinstance(tile, (int, np.integer)) or tile < 16:
            raise InputError(f"tile must be an integer >= 16, got {tile!r}")
        if precision not in ("fp32", "bf16"):
            raise InputError(f"precision must be 'fp32' or 'bf16', got {precision!r}")
        compute = torch.bfloat16 if precision == "bf16" else torch.float32
        return _dense(gray, model, int(tile), stride, out_dtype, dev, compute)
    if mode == "patch":
        if precision != "fp32":
            raise InputError("precision='bf16' is only available with mode='dense'")
        if not isinstance(chunk, (int, np.integer)) or chunk < 1:
            raise InputError(f"chunk must be a positive integer, got {chunk!r}")
        return _per_patch(gray, model, stride, out_dtype, dev, int(chunk))
    raise InputError(f"mode must be 'dense' or 'patch', got {mode!r}")


def _pad(gray: torch.Tensor, before: int, after: int, extra_h: int = 0, extra_w: int = 0) -> torch.Tensor:
    """Reflect-101 padding (before, after) on both axes, then `extra` zero rows/columns at the end."""
    x = F.pad(gray[None, None], (before, after, before, after), mode="reflect")  # torch reflect = reflect-101
    if extra_h or extra_w:
        x = F.pad(x, (0, extra_w, 0, extra_h))
    return x


@torch.no_grad()
def _per_patch(gray: torch.Tensor, model: PatchBatchNet, stride: int, out_dtype: torch.dtype,
               dev: torch.device, chunk: int) -> torch.Tensor:
    p = model.patch_size
    before, after = patch_offsets(p)
    padded = _pad(gray, before, after)[0, 0].contiguous()
    h, w = gray.shape
    ys, xs = torch.arange(0, h, stride), torch.arange(0, w, stride)
    # windows[y, x] is the P×P patch whose top-left is padded[y, x] (a view, no copy).
    windows = padded.unfold(0, p, 1).unfold(1, p, 1)
    coords = torch.cartesian_prod(ys, xs)
    out = torch.empty(len(ys) * len(xs), model.dim, dtype=out_dtype, device=dev)
    was = model.training
    model.eval()
    try:
        for s in range(0, coords.shape[0], chunk):
            c = coords[s:s + chunk]
            patches = windows[c[:, 0], c[:, 1]][:, None].to(dev)
            out[s:s + chunk] = model(patches).to(out_dtype)
    finally:
        model.train(was)
    return out.reshape(len(ys), len(xs), model.dim)


CL = torch.channels_last


def _pool_to_batch(x: torch.Tensor, keep_all: bool) -> torch.Tensor:
    """2×2 max pool at stride 1 of B×C×(h+1)×(w+1) (channels_last), then space-to-batch: -> 4B×C×h/2×w/2
    (h, w even) with the phase (py, px) outermost, or only phase (0, 0), which is the stride-2 pool
    (4× less work than pooling every phase and dropping three).  The stride-1 pool is two elementwise
    maxima of shifted views: 1.5-7× faster here than max_pool2d on channels_last tensors.  The result
    stays channels_last, the layout oneDNN's convolutions are fastest on."""
    if not keep_all:
        return F.max_pool2d(x, 2, 2).contiguous(memory_format=CL)
    x = torch.maximum(x[:, :, :-1], x[:, :, 1:])
    x = torch.maximum(x[..., :-1], x[..., 1:])
    b, c, h, w = x.shape
    x = x.permute(0, 2, 3, 1).reshape(b, h // 2, 2, w // 2, 2, c).permute(2, 4, 0, 1, 3, 5)
    return x.reshape(4 * b, h // 2, w // 2, c).permute(0, 3, 1, 2)


def _dense_tile(x: torch.Tensor, layers: list[tuple[torch.Tensor, torch.Tensor]], skip: int,
                out: torch.Tensor) -> None:
    """Descriptors of a tile, written into `out`.  x: 1×1×(T+61)×(T'+61) padded input; out: a
    (T/2^skip)×(T'/2^skip)×D view (any strides, any dtype) for output tiles T×T' (multiples of 16) at
    output stride 2^skip."""
    x = x.contiguous(memory_format=CL)
    for i, (wt, bs) in enumerate(layers[:-1]):
        x = F.leaky_relu_(F.conv2d(x, wt, bs).contiguous(memory_format=CL), LEAK)
        x = _pool_to_batch(x, keep_all=i >= skip)
    wt, bs = layers[-1]
    x = F.leaky_relu_(F.conv2d(x, wt, bs), LEAK)          # (4^(4-skip))×D×R×C, channels_last
    x = x.permute(0, 2, 3, 1)                             # B×R×C×D (a view: no copy)
    kept = _SPLITS - skip
    r, c, d = x.shape[1:]
    # Batch index = (py_4, px_4, py_3, px_3, ...) with the last split outermost; output row
    # = r·2^kept + Σ py_s·2^(s-1-skip): interleave the phases back into the image.
    x = x.reshape(*([2] * (2 * kept)), r, c, d)
    ys = list(range(0, 2 * kept, 2))   # py of the last split first (most significant)
    xs = list(range(1, 2 * kept, 2))
    x = x.permute(2 * kept, *ys, 2 * kept + 1, *xs, 2 * kept + 2)
    # one strided copy straight into the caller's array (interleaving into a temporary first, then
    # copying that, was ~15 % of the network's time)
    out.unflatten(1, (c,) + (2,) * kept).unflatten(0, (r,) + (2,) * kept).copy_(x)


@torch.no_grad()
def _dense(gray: torch.Tensor, model: PatchBatchNet, tile: int, stride: int, out_dtype: torch.dtype,
           dev: torch.device, compute: torch.dtype = torch.float32) -> torch.Tensor:
    h, w = gray.shape
    period = 2 ** _SPLITS
    skip = 0
    while skip < _SPLITS and stride % (2 ** (skip + 1)) == 0:
        skip += 1
    sub = stride // 2 ** skip  # remaining subsampling after the phase skipping
    tile = -(-tile // period) * period
    hp, wp = -(-h // period) * period, -(-w // period) * period  # output grid rounded up to 16
    th, tw = min(tile, hp), min(tile, wp)
    before, after = patch_offsets(model.patch_size)
    ctx = model.patch_size - 1
    padded = _pad(gray, before, after, hp - h, wp - w).to(dev, compute)
    layers = [(wt.to(dev, compute).contiguous(memory_format=CL), bs.to(dev, compute))
              for wt, bs in fused_layers(model)]
    step = 2 ** skip
    full = torch.empty(hp // step, wp // step, model.dim, dtype=out_dtype, device=dev)
    for r0 in range(0, hp, th):
        rh = min(th, hp - r0)
        for c0 in range(0, wp, tw):
            cw = min(tw, wp - c0)
            x = padded[:, :, r0:r0 + rh + ctx, c0:c0 + cw + ctx]
            _dense_tile(x, layers, skip, full[r0 // step:(r0 + rh) // step, c0 // step:(c0 + cw) // step])
    out = full[: -(-h // step), : -(-w // step)]
    if sub > 1:
        out = out[::sub, ::sub]
    return out.contiguous()
