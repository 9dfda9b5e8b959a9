"""The method registry: every flow method behind one signature.

A method is a function ``run(img1, img2, *, device, **options) -> flow`` where img1, img2 are
float32 arrays H×W×3 with values in [0, 255] (grayscale inputs are replicated to three channels)
and flow is a float32 array H×W×2 in pixels, x (u) first, mapping img1 to img2.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch

from ..errors import InputError, MethodUnavailableError
from ..image import ValueRange, as_image, flow_in_layout, split_frames
from ..io import load_frame
from .options import validate_options

# Modules that register the built-in methods when imported (each calls `register`).
BUILTIN_MODULES = (
    "flowmatch.methods.classical",
    "flowmatch.methods.flownet",
    "flowmatch.methods.patchbatch",
)

# The methods from best to worst (measured; see README).  `best_method()` takes the first
# one that can run here; `make demo` and `flowmatch.flow` use it by default.
# Order = mean EPE over the 11 real sample pairs + 3 held-out synthetic ones
# (benchmarks/bench_accuracy.py -> benchmarks/results/accuracy.md, 2026-11-23 15:20).
# The shipped FlowNets are small and CPU-trained (procedural textures, then flying photos): on real
# frames they are still worse than every classical baseline, so they come last.
# patchbatch-thorough is a little more accurate than patchbatch-accurate but ~5x slower (README
# "Presets: speed and accuracy"): the default is the one that answers in seconds.
PREFERENCE = ("patchbatch-accurate", "patchbatch-thorough", "patchbatch-fast", "dis-medium", "dis-fast", "dis-ultrafast", "deepflow",
              "pcaflow", "farneback", "dualtvl1", "flownetc", "flownets")


@dataclass(frozen=True)
class Method:
    name: str
    run: Callable[..., np.ndarray]
    description: str
    needs_extension: bool = False
    needs_weights: bool = False
    needs_gpu: bool = False
    # Can run on a CUDA device (device="cuda[:N]"); False: CPU only (`flowmatch info` lists these).
    uses_gpu: bool = False
    # Returns None when the method can run here, else the reason it cannot.
    check: Callable[[], str | None] | None = None
    defaults: dict[str, Any] = field(default_factory=dict)
    # Type and range of every option (flowmatch.methods.options): checked before `run` is called.
    options: dict[str, Any] = field(default_factory=dict)
    # Pairs `flowmatch video` computes at once on a multi-core CPU (video.run.default_workers): >1 only
    # for thread-safe methods whose single call leaves cores idle (OpenCV's DIS keeps ~1.8 of 2 cores
    # busy, DeepFlow one; pairs at once give DIS 1.1-1.5x its pairs/s here, identical flows).  Torch
    # methods keep 1: one call already uses every core, and the intra-op thread count is process-wide.
    video_workers: int = 1

    def unavailable_reason(self) -> str | None:
        return self.check() if self.check is not None else None

    @property
    def available(self) -> bool:
        return self.unavailable_reason() is None


_REGISTRY: dict[str, Method] = {}
_loaded = False


def register(method: Method) -> Method:
    """Add a method (a later registration under the same name replaces the earlier one)."""
    _REGISTRY[method.name] = method
    return method


def _load_builtins() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for mod in BUILTIN_MODULES:
        importlib.import_module(mod)


def methods(available_only: bool = False) -> list[Method]:
    """All registered methods (sorted by name); with available_only, only those that can run here."""
    _load_builtins()
    found = sorted(_REGISTRY.values(), key=lambda m: m.name)
    return [m for m in found if m.available] if available_only else found


def get_method(name: str) -> Method:
    """The method called `name`; InputError listing the known names when there is none."""
    _load_builtins()
    if name not in _REGISTRY:
        raise InputError(f"unknown flow method {name!r}; known methods: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def best_method() -> str:
    """Name of the best method that can run here (see PREFERENCE)."""
    _load_builtins()
    for name in PREFERENCE:
        if name in _REGISTRY and _REGISTRY[name].available:
            return name
    for m in methods(available_only=True):
        return m.name
    raise MethodUnavailableError("no flow method can run here")


def flow(img1: Any, img2: Any, method: str | None = None, device: str = "cpu", value_range: ValueRange = None,
         **options: Any) -> np.ndarray | torch.Tensor:
    """Optical flow from img1 to img2 (or from each frame of a batch to the matching one).

    Args:
        img1, img2: frames as users have them (the rule is in flowmatch.image): paths, numpy H×W /
            H×W×C, torch H×W / C×H×W, or batches (numpy N×H×W×C, torch N×C×H×W) of the same shape;
            uint8, uint16 or float.
        method: a name from `flowmatch.methods()`; default: the best method available here.
        device: "cpu", "cuda" or "cuda:N" (methods that run on the GPU).
        value_range: the range of float frames, the same for both (default [0, 1]; e.g. 255 for
            floats in [0, 255]; see flowmatch.image.full_scale).
        options: method-specific settings (see the method's `defaults`).
    Returns:
        float32 flow in pixels, x (u) then y (v), in the caller's layout: numpy H×W×2 for numpy
        frames or paths (N×H×W×2 for a numpy batch), torch 2×H×W for a torch frame (N×2×H×W for a
        torch batch) on the frames' device.
    """
    frames1, layout = split_frames(load_frame(img1), "img1")
    frames2, layout2 = split_frames(load_frame(img2), "img2")
    if len(frames1) != len(frames2) or layout.batched != layout2.batched:
        raise InputError(f"img1 and img2 must both be single frames or batches of the same size, got "
                         f"{len(frames1) if layout.batched else 'one frame'} and "
                         f"{len(frames2) if layout2.batched else 'one frame'}")
    if not frames1:
        raise InputError("img1 is an empty batch")
    m = get_method(method or best_method())
    reason = m.unavailable_reason()
    if reason is not None:
        raise MethodUnavailableError(f"method {m.name!r} cannot run here: {reason}")
    unknown = set(options) - set(m.defaults)
    if unknown:
        raise InputError(f"method {m.name!r} has no option(s) {sorted(unknown)}; it takes {sorted(m.defaults)}")
    options = validate_options(m.name, m.options, options)
    flows = []
    for i, (f1, f2) in enumerate(zip(frames1, frames2)):
        tag = f"[{i}]" if layout.batched else ""
        a, b = as_image(f1, f"img1{tag}", value_range), as_image(f2, f"img2{tag}", value_range)
        if a.shape != b.shape:
            raise InputError(f"img1{tag} and img2{tag} differ in size: {a.shape[1]}×{a.shape[0]} vs "
                             f"{b.shape[1]}×{b.shape[0]}")
        out = np.asarray(m.run(a, b, device=device, **{**m.defaults, **options}), dtype=np.float32)
        if out.shape != a.shape[:2] + (2,):
            raise RuntimeError(f"method {m.name!r} returned flow of shape {out.shape}, expected {a.shape[:2] + (2,)}")
        flows.append(out)
    return flow_in_layout(flows, layout)
