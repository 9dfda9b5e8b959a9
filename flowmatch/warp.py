"""Backward warping by a flow field and the forward-backward consistency check.

Flow maps frame 1 to frame 2: pixel (x, y) of frame 1 is at (x + u, y + v) in frame 2.  Backward
warping frame 2 by that flow therefore reconstructs frame 1:  warped(x, y) = img2(x + u, y + v),
sampled bilinearly.  Sample points outside [0, W-1] × [0, H-1] are "out of frame": the warped value
there is 0 and the returned mask is False.

numpy: image H×W or H×W×C, flow H×W×2 -> (float32 H×W[×C], bool H×W); computed in float64 by the
same torch grid_sample as the torch path (one sampler, one border rule).
torch: image N×C×H×W (or C×H×W), flow N×2×H×W (or 2×H×W) -> (float N×C×H×W, bool N×H×W); uses
grid_sample(align_corners=True), differentiable in both image and flow.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .errors import InputError


def _is_torch(x: Any) -> bool:
    return type(x).__module__.startswith("torch")


# ----------------------------------------------------------------------------- both

def _sample(image: Any, flow: Any) -> tuple[Any, Any]:
    """grid_sample of N×C×H×W `image` at x + flow (N×2×H×W, pixels): (warped, in_frame N×H×W), 0 outside."""
    import torch
    import torch.nn.functional as F

    _, _, h, w = flow.shape
    gy, gx = torch.meshgrid(torch.arange(h, device=flow.device, dtype=flow.dtype),
                            torch.arange(w, device=flow.device, dtype=flow.dtype), indexing="ij")
    xs, ys = gx + flow[:, 0], gy + flow[:, 1]
    in_frame = (xs >= 0) & (xs <= w - 1) & (ys >= 0) & (ys <= h - 1)
    # align_corners=True: -1 and +1 are the centres of the first and last pixels, so an in-frame
    # point never gives weight to the zero padding (the last row/column is reached with weight 1).
    grid = torch.stack([2.0 * xs / max(w - 1, 1) - 1.0, 2.0 * ys / max(h - 1, 1) - 1.0], dim=-1)
    out = F.grid_sample(image, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    # where, not a product: a NaN or inf of the image must not leak into out-of-frame pixels
    out = torch.where(in_frame.unsqueeze(1), out, torch.zeros((), dtype=out.dtype, device=out.device))
    return out, in_frame


# ----------------------------------------------------------------------------- numpy

def _warp_numpy(image: np.ndarray, flow: np.ndarray, dtype: Any = np.float32) -> tuple[np.ndarray, np.ndarray]:
    """numpy H×W[×C] image, H×W×2 flow: the torch sampler in float64 (torch's CPU kernel is vectorised and
    multi-threaded, ~20x faster than numpy gathers at 128×192; equal to them to float rounding)."""
    import torch

    if flow.ndim != 3 or flow.shape[2] != 2:
        raise InputError(f"flow must be H×W×2 (pixels, x then y), got shape {flow.shape}")
    h, w = flow.shape[:2]
    if image.ndim not in (2, 3) or image.shape[:2] != (h, w):
        raise InputError(f"image must be H×W or H×W×C with H×W = {h}×{w} like the flow, got shape {image.shape}")
    if not (np.issubdtype(image.dtype, np.number) or image.dtype == np.bool_) or np.iscomplexobj(image):
        raise InputError(f"image must hold real numbers, got dtype {image.dtype}")
    if not (np.issubdtype(flow.dtype, np.number) and not np.iscomplexobj(flow)):
        raise InputError(f"flow must hold real numbers, got dtype {flow.dtype}")
    if not np.isfinite(flow).all():
        raise InputError("flow contains NaN or infinite values")
    img = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float64))
    img = (img[None] if img.dim() == 2 else img.permute(2, 0, 1))[None]
    f = torch.from_numpy(np.ascontiguousarray(flow, dtype=np.float64)).permute(2, 0, 1)[None]
    out, in_frame = _sample(img, f)
    out = out[0, 0] if image.ndim == 2 else out[0].permute(1, 2, 0)
    return out.numpy().astype(dtype, copy=False), in_frame[0].numpy()


# ----------------------------------------------------------------------------- torch

def _warp_torch(image: Any, flow: Any) -> tuple[Any, Any]:
    import torch

    squeeze = False
    if image.dim() == 3 and flow.dim() == 3:
        image, flow, squeeze = image.unsqueeze(0), flow.unsqueeze(0), True
    if flow.dim() != 4 or flow.shape[1] != 2:
        raise InputError(f"flow must be N×2×H×W (pixels, x then y), got shape {tuple(flow.shape)}")
    n, _, h, w = flow.shape
    if image.dim() != 4 or image.shape[0] != n or image.shape[2:] != flow.shape[2:]:
        raise InputError(f"image must be N×C×H×W = {n}×C×{h}×{w} like the flow, got shape {tuple(image.shape)}")
    if not torch.isfinite(flow).all():
        raise InputError("flow contains NaN or infinite values")
    if not image.is_floating_point():
        image = image.float()
    flow = flow.to(image.dtype)
    if image.device != flow.device:
        raise InputError(f"image is on {image.device} but flow on {flow.device}")
    out, in_frame = _sample(image, flow)
    if squeeze:
        return out[0], in_frame[0]
    return out, in_frame


def backward_warp(image: Any, flow: Any) -> tuple[Any, Any]:
    """Sample `image` at x + flow(x) with bilinear interpolation.

    Args:
        image: numpy H×W or H×W×C (any numeric dtype), or torch N×C×H×W / C×H×W.
        flow: numpy H×W×2 or torch N×2×H×W / 2×H×W; pixels, x (u) first.
    Returns:
        (warped, in_frame): warped float32 (numpy) or image-dtype float (torch) with the image's
        layout, 0 where the sample point falls outside the image; in_frame bool H×W (numpy) or
        N×H×W (torch), True where the sample point lies inside [0, W-1] × [0, H-1].
    """
    if _is_torch(image) != _is_torch(flow):
        raise InputError("image and flow must both be numpy arrays or both torch tensors")
    if _is_torch(flow):
        return _warp_torch(image, flow)
    return _warp_numpy(np.asarray(image), np.asarray(flow))


def consistency_mask(flow_fw: Any, flow_bw: Any, threshold: float = 1.0, relative: float = 0.0) -> Any:
    """Forward-backward consistency: True where the backward flow, sampled at the forward target,
    returns to the start.

    With w = flow_fw(x) and ŵ = flow_bw(x + w) (bilinear), a pixel is consistent when
    |w + ŵ|² <= threshold² + relative · (|w|² + |ŵ|²) and x + w is inside the frame.
    threshold in pixels; relative = 0 gives the plain |w + ŵ| <= threshold test (relative = 0.01
    with threshold ~0.7 is the criterion of Sundaram et al. 2010).

    Args:
        flow_fw, flow_bw: numpy H×W×2 or torch N×2×H×W, pixels, x first (1->2 and 2->1).
    Returns:
        bool H×W (numpy) or N×H×W (torch).
    """
    if not threshold >= 0 or not relative >= 0:
        raise InputError(f"threshold and relative must be >= 0, got {threshold} and {relative}")
    if _is_torch(flow_fw) != _is_torch(flow_bw):
        raise InputError("flow_fw and flow_bw must both be numpy arrays or both torch tensors")
    if tuple(flow_fw.shape) != tuple(flow_bw.shape):
        raise InputError(f"flow_fw and flow_bw differ in shape: {tuple(flow_fw.shape)} vs {tuple(flow_bw.shape)}")
    if _is_torch(flow_fw):
        import torch

        with torch.no_grad():
            squeeze = flow_fw.dim() == 3
            fw = flow_fw.unsqueeze(0) if squeeze else flow_fw
            bw = flow_bw.unsqueeze(0) if squeeze else flow_bw
            bw_w, inside = _warp_torch(bw.to(fw.dtype), fw)
            err = ((fw + bw_w) ** 2).sum(1)
            bound = threshold ** 2 + relative * ((fw ** 2).sum(1) + (bw_w ** 2).sum(1))
            ok = (err <= bound) & inside
            return ok[0] if squeeze else ok
    fw, bw = np.asarray(flow_fw, dtype=np.float64), np.asarray(flow_bw, dtype=np.float64)
    bw_w, inside = _warp_numpy(bw, fw, dtype=np.float64)
    err = ((fw + bw_w) ** 2).sum(axis=2)
    bound = threshold ** 2 + relative * ((fw ** 2).sum(axis=2) + (bw_w ** 2).sum(axis=2))
    return (err <= bound) & inside
