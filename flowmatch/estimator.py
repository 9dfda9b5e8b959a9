"""FlowEstimator: run a FlowNet on two images of any size and get full-resolution flow in pixels.

    est = FlowEstimator.from_pretrained("flownets")        # the shipped (synthetic-trained) weights
    flow = est(img1, img2)                                  # H×W×2 float32, pixels, x (u) then y (v)

It does what users of the FlowNet ports keep getting wrong:
  - input normalisation (uint8 /255, uint16 /65535, float in [0, 1] or [0, 255]; the model's own
    mean subtraction);
  - sizes that are not a multiple of 64: edge-replicate padding to the next multiple, then the
    flow is cropped back ("pad", default), or a resize to the nearest multiple with the flow
    rescaled accordingly ("resize");
  - flow2 is at 1/4 resolution: it is upsampled ×4 bilinearly;
  - the network predicts flow / div_flow (20): the result is multiplied back.
An optional `scale` resizes the input first (the paper runs FlowNetC at ×1.25); the flow is then
returned at the input size in input pixels.  `precision="fp16"|"bf16"` runs the network under
autocast on a GPU (bf16 also on CPU); the result is always float32.
"""
from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .errors import InputError
from .models.flownet import _FlowNetBase, build_model

MULTIPLE = 64
PRECISIONS = ("fp32", "fp16", "bf16")


def _to_batch(x: Any, name: str) -> tuple[torch.Tensor, bool, bool]:
    """Frame(s) -> (N×3×H×W float32 in [0, 1], batched?, was_numpy?).

    numpy: H×W, H×W×C or N×H×W×C; torch: H×W, C×H×W or N×C×H×W; C in {1, 3} (4: alpha dropped)."""
    is_numpy = isinstance(x, np.ndarray)
    if is_numpy:
        if x.dtype == object or not (np.issubdtype(x.dtype, np.number) or x.dtype == np.bool_):
            raise InputError(f"{name} has unsupported dtype {x.dtype}")
        dtype_max = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}.get(x.dtype)
        if x.ndim == 2:
            x = x[None, :, :, None]
            batched = False
        elif x.ndim == 3:
            x, batched = x[None], False
        elif x.ndim == 4:
            batched = True
        else:
            raise InputError(f"{name} must be H×W, H×W×C or N×H×W×C as a numpy array, got shape {x.shape}")
        t = torch.from_numpy(np.ascontiguousarray(x).astype(np.float32, copy=False)).permute(0, 3, 1, 2)
    elif isinstance(x, torch.Tensor):
        dtype_max = {torch.uint8: 255.0}.get(x.dtype)
        if getattr(torch, "uint16", None) is not None and x.dtype == torch.uint16:
            dtype_max = 65535.0
        if x.is_complex() or x.dtype == torch.bool:
            raise InputError(f"{name} has unsupported dtype {x.dtype}")
        if x.ndim == 2:
            x, batched = x[None, None], False
        elif x.ndim == 3:
            x, batched = x[None], False
        elif x.ndim == 4:
            batched = True
        else:
            raise InputError(f"{name} must be H×W, C×H×W or N×C×H×W as a torch tensor, got shape {tuple(x.shape)}")
        t = x.detach().float()
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
    if dtype_max is not None:
        t = t / dtype_max
    elif t.numel() and t.max() > 1.5:  # float images in [0, 255] (as the method registry passes them)
        t = t / 255.0
    return t, batched, is_numpy


class FlowEstimator:
    """Wraps a FlowNetS/FlowNetC for inference on frames of any size.

    Args:
        model: a FlowNetS or FlowNetC (see flowmatch.models).
        device: "cpu", "cuda" or a torch.device.
        precision: "fp32", "fp16" (GPU only) or "bf16" (autocast).
        size_mode: "pad" (replicate-pad to a multiple of 64, crop back) or "resize".
        scale: resize factor applied to the input before the network (1.0 = none).
    """

    def __init__(self, model: _FlowNetBase, device: str | torch.device = "cpu", precision: str = "fp32",
                 size_mode: str = "pad", scale: float = 1.0) -> None:
        if not isinstance(model, _FlowNetBase):
            raise InputError(f"model must be a FlowNetS or FlowNetC, got {type(model).__name__}")
        if precision not in PRECISIONS:
            raise InputError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        if size_mode not in ("pad", "resize"):
            raise InputError(f"size_mode must be 'pad' or 'resize', got {size_mode!r}")
        if not (isinstance(scale, (int, float)) and 0.1 <= scale <= 8):
            raise InputError(f"scale must be a number in [0.1, 8], got {scale!r}")
        self.device = torch.device(device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise InputError("device 'cuda' asked for, but no CUDA device is visible; use device='cpu'")
        if precision == "fp16" and self.device.type != "cuda":
            raise InputError("precision='fp16' needs a CUDA device; use 'bf16' or 'fp32' on the CPU")
        self.model = model.to(self.device).eval()
        self.precision, self.size_mode, self.scale = precision, size_mode, float(scale)

    # -- construction ------------------------------------------------------------------------
    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, kind: str | None = None, **kwargs: Any) -> "FlowEstimator":
        """Load a flowmatch checkpoint/weights file of a FlowNetS or FlowNetC (CheckpointError
        for a file of another model, or one whose tensors do not fit its config)."""
        from .checkpoint import load_checkpoint, load_state_into

        ckpt = load_checkpoint(path, kind or ("flownets", "flownetc"))
        model = build_model(ckpt.kind, **ckpt.config)
        load_state_into(model, ckpt.model, source=f"checkpoint {os.fspath(path)!r}")
        return cls(model, **kwargs)

    @classmethod
    def from_pretrained(cls, kind: str = "flownets", **kwargs: Any) -> "FlowEstimator":
        """The weights shipped in flowmatch/weights (small, trained on procedural data only)."""
        from .methods.flownet import shipped_weights

        return cls.from_checkpoint(shipped_weights(kind), kind, **kwargs)

    # -- inference ---------------------------------------------------------------------------
    def _resize_target(self, h: int, w: int) -> tuple[int, int]:
        """size_mode="resize": the multiple of 64 nearest to the (scaled) input size."""
        sh, sw = h * self.scale, w * self.scale
        return max(MULTIPLE, int(round(sh / MULTIPLE)) * MULTIPLE), max(MULTIPLE, int(round(sw / MULTIPLE)) * MULTIPLE)

    @torch.no_grad()
    def predict(self, img1: torch.Tensor, img2: torch.Tensor) -> torch.Tensor:
        """N×3×H×W float images in [0, 1] (on any device) -> N×2×H×W float32 flow in pixels."""
        n, _, h, w = img1.shape
        a, b = img1.to(self.device, torch.float32), img2.to(self.device, torch.float32)
        # The working size before padding: the input, or the input × scale.
        wh, ww = (h, w) if self.scale == 1.0 else (max(2, int(round(h * self.scale))), max(2, int(round(w * self.scale))))
        if self.size_mode == "resize":
            wh, ww = self._resize_target(h, w)
        if (wh, ww) != (h, w):
            a = F.interpolate(a, size=(wh, ww), mode="bilinear", align_corners=False)
            b = F.interpolate(b, size=(wh, ww), mode="bilinear", align_corners=False)
        ph, pw = -(-wh // MULTIPLE) * MULTIPLE, -(-ww // MULTIPLE) * MULTIPLE
        a, b = self.model.normalise(a, b)
        if (ph, pw) != (wh, ww):
            # replicate the last row/column: no artificial edge for the network to track
            a = F.pad(a, (0, pw - ww, 0, ph - wh), mode="replicate")
            b = F.pad(b, (0, pw - ww, 0, ph - wh), mode="replicate")
        if self.precision == "fp32":
            flow2 = self.model(a, b)[0]
        else:
            dtype = torch.float16 if self.precision == "fp16" else torch.bfloat16
            with torch.autocast(self.device.type, dtype=dtype):
                flow2 = self.model(a, b)[0]
        flow = F.interpolate(flow2.float() * self.model.div_flow, size=(ph, pw), mode="bilinear", align_corners=False)
        flow = flow[:, :, :wh, :ww]
        if (wh, ww) != (h, w):
            flow = F.interpolate(flow, size=(h, w), mode="bilinear", align_corners=False)
            flow = flow * flow.new_tensor([w / ww, h / wh]).view(1, 2, 1, 1)
        return flow

    def __call__(self, img1: Any, img2: Any = None) -> np.ndarray | torch.Tensor:
        """Flow from img1 to img2 in pixels, x (u) first.

        img1, img2: numpy H×W[×C] / N×H×W×C or torch [C×]H×W / N×C×H×W; uint8, uint16 or float
        ([0, 1], or [0, 255] when the max exceeds 1.5); C = 1, 3 or 4; both the same shape.
        Returns numpy H×W×2 (N×H×W×2 for a batch) for numpy input, torch N×2×H×W (on the input's
        device) for torch input; float32."""
        if img2 is None:
            raise InputError("two frames are needed (img1, img2); only one was given")
        a, batched_a, np_a = _to_batch(img1, "img1")
        b, batched_b, np_b = _to_batch(img2, "img2")
        if a.shape != b.shape or batched_a != batched_b:
            raise InputError(f"img1 and img2 must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)} "
                             "(as N×3×H×W)")
        flow = self.predict(a, b)
        if np_a:
            out = flow.permute(0, 2, 3, 1).cpu().numpy()
            return out if batched_a else out[0]
        return flow.to(img1.device if isinstance(img1, torch.Tensor) else "cpu")
