"""`patchbatch_flow`: the five stages in order, timed.

Data path: frames (float32 H×W×3 in [0, 255], flowmatch.image.as_image) -> descriptors (torch h×w×D,
h×w = the descriptor grid) -> PatchMatch flows and costs both ways (torch h×w×2, h×w) -> sparse
Matches (torch M×2, in image pixels) -> interpolated flow (numpy H×W×2) -> refined flow (numpy
H×W×2 float32, pixels, u then v).
"""
from __future__ import annotations

import dataclasses
import logging
import sys
import time
import warnings
from typing import Any, Callable

import numpy as np
import torch

from ..._threads import torch_threads
from ...errors import InputError
from ...image import as_image
from ...ops.interpolation import NoMatchesWarning
from .config import MatchingConfig, PipelineConfig, RefinementConfig
from .consistency import drop_flat, sparse_matches
from .descriptors import compute_descriptors
from .frame_cache import FrameCache
from .interpolation import densify
from .matching import match_descriptors
from .presets import resolve_config
from .refinement import refine

log = logging.getLogger(__name__)


def check_device(device: str | torch.device) -> torch.device:
    """The torch.device for "cpu", "cuda" or "cuda:N"; InputError for another kind or a GPU that is not there."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise InputError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {device!r}") from exc
    if dev.type not in ("cpu", "cuda"):
        raise InputError(f"the PatchBatch pipeline runs on 'cpu' or 'cuda[:N]', got {device!r}")
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise InputError(f"device {device!r} asked for, but no CUDA device is visible; use device='cpu'")
        if dev.index is not None and dev.index >= count:
            raise InputError(f"device {device!r} asked for, but only {count} CUDA device(s) are visible")
    return dev


def match_size(height: int, width: int, downscale: int, min_side: int = 32) -> tuple[int, int, int]:
    """(h, w, k): the frame size the matching stages run at and the factor actually used, the
    largest k <= downscale that keeps the shorter side >= min_side px (1 for small frames)."""
    k = max(1, min(downscale, min(height, width) // max(1, min_side)))
    return max(1, round(height / k)), max(1, round(width / k)), k


def matching_at(cfg: MatchingConfig, k: int) -> MatchingConfig:
    """The matching settings for frames downscaled k times: the coarse level keeps its size in frame
    pixels (coarse_factor // k, at least 1), so coarse windows and radii, counted in coarse cells,
    keep covering the same motion."""
    return cfg if k == 1 else dataclasses.replace(cfg, coarse_factor=max(1, cfg.coarse_factor // k))


def refinement_at(cfg: RefinementConfig, k: int) -> RefinementConfig:
    """The refinement settings after matching at 1/k size: DIS may move the flow k times as far
    (dis_max_change × k), since the matched flow is k times coarser in frame pixels."""
    return cfg if k == 1 else dataclasses.replace(cfg, dis_max_change=cfg.dis_max_change * k)


def _resize_frame(img: np.ndarray, h: int, w: int) -> np.ndarray:
    import cv2
    return cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)


def _upsample_flow(flow: np.ndarray, h: int, w: int) -> np.ndarray:
    """An h0×w0×2 flow resized to h×w, its vectors scaled by the size ratio per axis (x, then y)."""
    import cv2
    h0, w0 = flow.shape[:2]
    out = cv2.resize(np.ascontiguousarray(flow, np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    out[..., 0] *= w / w0
    out[..., 1] *= h / h0
    return out


class _Timer:
    """Stage timings (wall and process CPU seconds), logged at INFO as each stage ends (the CLI shows
    them; -q hides them).  verbose=True prints them to stderr instead: the Python API's explicit
    request, which must work in a program that configured no logging."""

    def __init__(self, verbose: bool, label: str, stages: int):
        self.verbose, self.label, self.total = verbose, label, stages
        self.stages: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self._t0 = time.perf_counter()
        self._start = self._t0
        self._c = time.process_time()

    def say(self, text: str) -> None:
        if self.verbose:
            print(f"[{self.label}] {text}", file=sys.stderr)
        else:
            log.info("[%s] %s", self.label, text)

    def stage(self, name: str, extra: str = "") -> None:
        """Close the stage that began at the previous call (or at construction)."""
        now, cpu = time.perf_counter(), time.process_time()
        dt, dc = now - self._start, cpu - self._c
        self._start, self._c = now, cpu
        self.stages[name], self.cpu[name] = dt, dc
        self.say(f"{len(self.stages)}/{self.total} {name:<12s} {dt:7.2f} s (cpu {dc:6.2f} s)"
                 f"{('  ' + extra) if extra else ''}")

    def done(self) -> None:
        self.say(f"{'total':<16s} {time.perf_counter() - self._t0:7.2f} s")


def patchbatch_flow(img1: Any, img2: Any, preset: str | PipelineConfig = "accurate", verbose: bool = False,
                    model: Any = None, return_stages: bool = False, device: str | torch.device = "cpu",
                    cache: FrameCache | None = None, **options: Any):
    """Optical flow img1 -> img2 by the PatchBatch pipeline.

    Args:
        img1, img2: frames H×W or H×W×3 (uint8/uint16/float), same size.
        preset: "accurate", "fast", "thorough" or a PipelineConfig; options: flat overrides (config.OPTION_FIELDS).
        verbose: print each stage's wall time to stderr.
        model: an already loaded descriptor network (else cfg.descriptors.model is loaded); InputError
            when the descriptor_model option is given too.
        return_stages: also return a dict of intermediate results and timings.
        device: where descriptors, PatchMatch and the forward-backward check run ("cpu", "cuda",
            "cuda:N"); interpolation and refinement run on the CPU.  InputError for a device that is
            not there.
        cache: a FrameCache of network descriptor fields kept between calls: a frame seen in the
            previous call (a video's shared frame) is not run through the network again.
    Returns:
        H×W×2 float32 flow (pixels, u then v) [, stages dict: matches, PatchMatch flows and costs (at
        the matching size when downscale > 1, stages["downscale"] the factor used, stages["matching_frame"]
        img1 at that size), the interpolated flow (full size), timings].
    Warns NoMatchesWarning (and returns the refined zero flow) when no match survives the check.
    """
    # value_range: of the frames (flowmatch.image.full_scale), e.g. 255 for float frames in [0, 255]
    value_range = options.pop("value_range", None)
    if model is not None and options.get("descriptor_model") is not None:
        # one would silently win over the other
        raise InputError("give either model= (a loaded descriptor network) or the descriptor_model option, not both")
    cfg = resolve_config(preset, **options)
    dev = check_device(device)
    a, b = as_image(img1, "img1", value_range), as_image(img2, "img2", value_range)
    if a.shape != b.shape:
        raise InputError(f"img1 and img2 differ in size: {a.shape[1]}×{a.shape[0]} vs {b.shape[1]}×{b.shape[0]}")
    names = ["descriptors", "patchmatch", "consistency", "interpolate"] + (["refine"] if cfg.refinement.enabled else [])
    timer = _Timer(verbose, f"patchbatch-{preset if isinstance(preset, str) else 'custom'}", len(names))
    timer.say(f"{a.shape[1]}×{a.shape[0]} on {dev}: {len(names)} stages ({', '.join(names)})")
    mh, mw, k = match_size(a.shape[0], a.shape[1], cfg.downscale, cfg.downscale_min_side)
    ma, mb = (a, b) if k == 1 else (_resize_frame(a, mh, mw), _resize_frame(b, mh, mw))
    if k > 1:
        timer.say(f"matching at {mw}×{mh} (downscale {k}), refining at {a.shape[1]}×{a.shape[0]}")
    with torch_threads(cfg.threads):
        da, db = compute_descriptors(ma, mb, cfg.descriptors, model, seed=cfg.seed, device=dev, cache=cache)
        timer.stage("descriptors", f"{tuple(da.shape)} {str(da.dtype).replace('torch.', '')} on {dev}")
        fab, cab, fba, _ = match_descriptors(da, db, matching_at(cfg.matching, k), seed=cfg.seed)
        timer.stage("patchmatch", "both directions")
        m, dense, out = late_stages(fab, fba, cab, ma, a, b, cfg, k, timer.stage)
        timer.done()
    if return_stages:
        return out, {"matches": m, "flow_ab": fab, "flow_ba": fba, "cost_ab": cab, "interpolated": dense,
                     "timings": timer.stages, "cpu_timings": timer.cpu, "config": cfg, "downscale": k,
                     "matching_frame": ma,
                     "matching": matching_at(cfg.matching, k), "refinement": refinement_at(cfg.refinement, k)}
    return out


def late_stages(flow_ab: torch.Tensor, flow_ba: torch.Tensor, cost_ab: torch.Tensor, frame: np.ndarray,
                img1: np.ndarray, img2: np.ndarray, cfg: PipelineConfig, k: int,
                stage: Callable[..., None] = lambda name, extra="": None):
    """Stages 3-5 (consistency check, interpolation, refinement) on PatchMatch's results, as
    patchbatch_flow runs them; benchmarks/bench_late_stages.py re-runs them on cached flows.

    Args:
        flow_ab, flow_ba, cost_ab: h×w×2 flows (grid px) and h×w cost of stage 2.
        frame: img1 at the matching size (float32 H'×W'×3, [0, 255]; img1 itself when k == 1).
        img1, img2: the full-size frames (refinement); cfg: the pipeline settings; k: the downscale used.
        stage: called as stage(name, extra) when each stage ends (patchbatch_flow's timer).
    Returns:
        (Matches, interpolated H×W×2 flow, refined H×W×2 flow; the same array when refinement is off).
    Warns NoMatchesWarning when no match survives the check."""
    c = cfg.consistency
    m = sparse_matches(flow_ab, flow_ba, cost_ab, threshold=c.threshold, cost_quantile=c.cost_quantile,
                       step=c.seed_step, scale=float(cfg.descriptors.stride))
    m = drop_flat(m, frame, c.saliency_th)
    n_grid = -(-flow_ab.shape[0] // c.seed_step) * -(-flow_ab.shape[1] // c.seed_step)
    stage("consistency", f"{len(m)} of {n_grid} grid matches kept")
    if len(m) == 0:
        warnings.warn("patchbatch: no match survived the consistency check; the flow is the variational "
                      "refinement of zero flow", NoMatchesWarning, stacklevel=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NoMatchesWarning)  # already reported above
        dense = densify(m, frame, cfg.interpolation)
    if k > 1:
        dense = _upsample_flow(dense, img1.shape[0], img1.shape[1])
    stage("interpolate")
    out = dense
    if cfg.refinement.enabled:
        out = refine(dense, img1, img2, refinement_at(cfg.refinement, k))
        stage("refine")
    return m, dense, out
