"""FlowEstimator: run a FlowNet on two images of any size and get full-resolution flow in pixels.

    est = FlowEstimator.from_pretrained("flownets")        # the shipped weights (README "Shipped weights")
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
returned at the input size in input pixels.  `precision="auto"` (default) is bf16 autocast where the
device runs bf16 natively (flowmatch.precision: CUDA with bf16, CPUs with AVX-512 BF16 or AMX) and fp32
elsewhere; "fp32", "bf16" (CPU or GPU) and "fp16" (GPU only) force one.  The result is always float32.
"""
from __future__ import annotations

import os
from functools import partial
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ._paths import shipped_weights
from .errors import InputError
from .image import ValueRange, to_batch
from .io import load_frame
from .models.flownet import _FlowNetBase, build_model
from .precision import resolve_precision

MULTIPLE = 64
PRECISIONS = ("auto", "fp32", "fp16", "bf16")


class FlowEstimator:
    """Wraps a FlowNetS/FlowNetC for inference on frames of any size.

    Args:
        model: a FlowNetS or FlowNetC (see flowmatch.models).
        device: "cpu", "cuda" or a torch.device.
        precision: "auto" (bf16 where the device runs it natively, else fp32), "fp32", "fp16" (GPU
            only) or "bf16" (autocast); the chosen one is `self.precision`.
        size_mode: "pad" (replicate-pad to a multiple of 64, crop back) or "resize".
        scale: resize factor applied to the input before the network (1.0 = none).
    """

    def __init__(self, model: _FlowNetBase, device: str | torch.device = "cpu", precision: str = "auto",
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
        if precision == "auto":
            precision = resolve_precision("auto", self.device)
        self.model = model.to(self.device).eval()
        self.precision, self.size_mode, self.scale = precision, size_mode, float(scale)

    # -- construction ------------------------------------------------------------------------
    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, kind: str | None = None, **kwargs: Any) -> "FlowEstimator":
        """Load a flowmatch checkpoint/weights file of a FlowNetS or FlowNetC (CheckpointError
        for a file of another model, or one whose tensors do not fit its config)."""
        from .checkpoint import build_from_checkpoint, load_checkpoint

        ckpt = load_checkpoint(path, kind or ("flownets", "flownetc"))
        # built on the meta device and compared with the file's tensors first (nothing huge from a tiny file)
        model = build_from_checkpoint(partial(build_model, ckpt.kind), ckpt, source=f"checkpoint {os.fspath(path)!r}")
        return cls(model, **kwargs)

    @classmethod
    def from_pretrained(cls, kind: str = "flownets", **kwargs: Any) -> "FlowEstimator":
        """The weights shipped in flowmatch/weights (small, trained on procedural data only)."""
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

    def __call__(self, img1: Any, img2: Any = None, value_range: ValueRange = None) -> np.ndarray | torch.Tensor:
        """Flow from img1 to img2 in pixels, x (u) first, float32.

        img1, img2: paths, numpy H×W[×C] / N×H×W×C or torch [C×]H×W / N×C×H×W; uint8, uint16 or
        float (value range as in flowmatch.image.full_scale: floats [0, 1] unless `value_range`,
        e.g. 255, says otherwise); C = 1, 3 or 4; both the same shape.
        Returns the caller's layout (flowmatch.image): numpy H×W×2 (N×H×W×2 for a batch) for numpy
        input or paths, torch 2×H×W (N×2×H×W for a batch) on the input's device for torch input."""
        if img2 is None:
            raise InputError("two frames are needed (img1, img2); only one was given")
        img1, img2 = load_frame(img1), load_frame(img2)
        a, batched_a, np_a = to_batch(img1, "img1", value_range)
        b, batched_b, np_b = to_batch(img2, "img2", value_range)
        if a.shape != b.shape or batched_a != batched_b:
            raise InputError(f"img1 and img2 must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)} "
                             "(as N×3×H×W)")
        flow = self.predict(a, b)
        if np_a:
            out = flow.permute(0, 2, 3, 1).cpu().numpy()
            return out if batched_a else out[0]
        flow = flow.to(img1.device if isinstance(img1, torch.Tensor) else "cpu")
        return flow if batched_a else flow[0]
