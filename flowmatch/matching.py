"""Dense flow from descriptor matching: the PatchBatch pipeline and its stages.

    flow = patchbatch_flow(img1, img2, preset="accurate", verbose=True)   # H×W×2 float32, pixels, x first

Stages (each a public function, timed when verbose):
  1. descriptors   grayscale + per-image normalisation, dense PatchBatch descriptors
                   (flowmatch.descriptors_dense), optionally at an output stride and PCA-reduced;
  2. patchmatch    PatchMatch A->B and B->A (flowmatch.ops.patchmatch);
  3. consistency   keep matches whose round trip A->B->A lands within `threshold` px (`consistency_check`),
                   optionally drop the costliest ones, giving sparse matches with confidences (`sparse_matches`);
  4. interpolate   edge-aware sparse-to-dense interpolation (flowmatch.ops.interpolation);
  5. refine        local corrections by OpenCV DIS started from the interpolated flow (gated to
                   small changes), then variational refinement (OpenCV's VariationalRefinement).

Presets: FAST and ACCURATE (PRESETS); any field can be overridden by keyword.
"""
from __future__ import annotations

import dataclasses
import sys
import time
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .errors import InputError
from .ops.interpolation import NoMatchesWarning, edge_aware_interpolate, edge_cost_map
from .ops.patchmatch import patchmatch

__all__ = ["Matches", "PipelineConfig", "PRESETS", "consistency_check", "sparse_matches", "pca_reduce",
           "compute_descriptors", "match_descriptors", "densify", "refine", "patchbatch_flow", "NoMatchesWarning"]


# ---------------------------------------------------------------------------------------------
# Consistency check and sparse matches

def _as_flow(flow: Any, name: str) -> np.ndarray:
    if isinstance(flow, torch.Tensor):
        flow = flow.detach().cpu().numpy()
    f = np.asarray(flow, dtype=np.float32)
    if f.ndim != 3 or f.shape[2] != 2 or min(f.shape[:2]) < 1:
        raise InputError(f"{name} must be an H×W×2 flow (u, v in pixels), got shape {f.shape}")
    if not np.isfinite(f).all():
        raise InputError(f"{name} contains NaN or infinite values")
    return f


def consistency_check(flow_ab: Any, flow_ba: Any, threshold: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Bidirectional check of two flows A->B and B->A.

    For pixel x of A with target y = x + flow_ab(x) (rounded to the nearest pixel of B), the round
    trip error is |flow_ab(x) + flow_ba(y)|.  A pixel whose target leaves B is inconsistent.

    Args:
        flow_ab: H×W×2 flow A->B; flow_ba: H'×W'×2 flow B->A (pixels, u then v).
        threshold: largest accepted round-trip error in pixels (>= 0).
    Returns:
        (mask H×W bool, True = consistent; error H×W float32 in pixels, +inf where the target leaves B).
    """
    fab, fba = _as_flow(flow_ab, "flow_ab"), _as_flow(flow_ba, "flow_ba")
    if not (np.isfinite(threshold) and threshold >= 0):
        raise InputError(f"threshold must be a finite number >= 0, got {threshold!r}")
    H, W = fab.shape[:2]
    Hb, Wb = fba.shape[:2]
    ys, xs = np.mgrid[0:H, 0:W]
    tx = np.rint(xs + fab[..., 0]).astype(np.int64)
    ty = np.rint(ys + fab[..., 1]).astype(np.int64)
    inside = (tx >= 0) & (tx < Wb) & (ty >= 0) & (ty < Hb)
    back = fba[np.clip(ty, 0, Hb - 1), np.clip(tx, 0, Wb - 1)]
    err = np.linalg.norm(fab + back, axis=2).astype(np.float32)
    err[~inside] = np.inf
    return err <= threshold, err


@dataclass
class Matches:
    """Sparse matches: points M×2 (x, y) in image A, flows M×2 (u, v) to image B, confidence M in [0, 1]
    (float32, pixels)."""
    points: np.ndarray
    flows: np.ndarray
    confidence: np.ndarray

    def __len__(self) -> int:
        return int(self.points.shape[0])


def sparse_matches(flow_ab: Any, flow_ba: Any, cost_ab: Any = None, threshold: float = 1.0,
                   max_cost: float | None = None, cost_quantile: float | None = None, step: int = 1,
                   scale: float = 1.0) -> Matches:
    """Matches that pass the bidirectional check (and the optional cost thresholds), on a grid.

    Args:
        flow_ab, flow_ba: H×W×2 flows A->B and B->A in the units of their grid (pixels, u then v).
        cost_ab: optional H×W matching cost of flow_ab (e.g. squared descriptor distance).
        threshold: round-trip tolerance in grid pixels.
        max_cost: drop matches with cost above this value.
        cost_quantile: drop matches with cost above this quantile (0-1) of the consistent matches' costs.
        step: keep only grid pixels (step·i, step·j) (subsampling the seeds).
        scale: grid-to-image scale (descriptor stride): points and flows are multiplied by it.
    Returns:
        Matches; confidence = exp(-cost / median cost) when costs are given, else 1 - error/(threshold+1).
        Zero matches is a valid result (len 0).
    """
    ok, err = consistency_check(flow_ab, flow_ba, threshold)
    if not isinstance(step, (int, np.integer)) or step < 1:
        raise InputError(f"step must be a positive integer, got {step!r}")
    grid = np.zeros_like(ok)
    grid[::step, ::step] = True
    ok &= grid
    cost = None
    if cost_ab is not None:
        cost = (cost_ab.detach().cpu().numpy() if isinstance(cost_ab, torch.Tensor) else np.asarray(cost_ab))
        cost = cost.astype(np.float32)
        if cost.shape != ok.shape:
            raise InputError(f"cost_ab must be H×W like flow_ab {ok.shape}, got {cost.shape}")
        if max_cost is not None:
            ok &= cost <= max_cost
        if cost_quantile is not None:
            if not 0 < cost_quantile <= 1:
                raise InputError(f"cost_quantile must be in (0, 1], got {cost_quantile!r}")
            if ok.any():
                ok &= cost <= np.quantile(cost[ok], cost_quantile)
    elif max_cost is not None or cost_quantile is not None:
        raise InputError("max_cost / cost_quantile need cost_ab")
    ys, xs = np.nonzero(ok)
    fab = _as_flow(flow_ab, "flow_ab")
    points = np.stack([xs, ys], axis=1).astype(np.float32) * scale
    flows = fab[ys, xs] * scale
    if cost is not None and len(ys):
        c = cost[ys, xs]
        med = float(np.median(c))
        conf = np.exp(-c / med) if med > 0 else np.ones_like(c)
    else:
        conf = 1.0 - err[ys, xs] / (threshold + 1.0)
    return Matches(points.reshape(-1, 2), flows.reshape(-1, 2).astype(np.float32), conf.astype(np.float32))


# ---------------------------------------------------------------------------------------------
# Pipeline configuration

@dataclass(frozen=True)
class PipelineConfig:
    """Settings of the PatchBatch pipeline (units: pixels of the full image unless said otherwise)."""
    descriptor: str = "patchbatch"       # "patchbatch" (the shipped network) or "raw" (normalised 9×9 patches)
    descriptor_model: str | None = None  # load_descriptor_model name/path (None = shipped dense weights)
    descriptor_stride: int = 1           # descriptors (and PatchMatch) on every k-th pixel
    pca_dim: int | None = None           # reduce descriptors to this many PCA components (None = keep)
    half: bool = False                   # store descriptors as float16 for PatchMatch
    iterations: int = 4                  # PatchMatch passes
    radius: int = 8                      # first random-search radius (descriptor-grid pixels)
    window: int = 2                      # random initialisation half-window around the coarse result (grid px)
    seed: int = 0
    coarse_factor: int = 4               # coarse-to-fine: first match on a grid pooled by this factor (1 = off)
    coarse_window: int = 48              # random init half-window on the coarse grid (coarse pixels)
    coarse_radius: int = 32              # first search radius on the coarse grid (coarse pixels)
    coarse_iterations: int = 6           # PatchMatch passes on the coarse grid
    subpixel: bool = True                # parabola refinement of the matches
    consistency: float = 1.0             # round-trip tolerance (descriptor-grid pixels)
    cost_quantile: float | None = None   # drop the costliest consistent matches
    saliency_th: float = 0.0             # drop matches where img1's local gradient energy (0-1 scale) is lower
    seed_step: int = 3                   # seeds for interpolation on every k-th grid pixel
    nn: int = 100                        # interpolation: nearest matches per model
    coef_kernel: float = 0.8             # interpolation: weights exp(-coef · geodesic distance)
    affine: bool = True                  # interpolation: locally affine (else Nadaraya-Watson)
    pref_nn: int = 50                    # interpolation prefilter neighbours (0 = off)
    pref_th: float = 5.0                 # interpolation prefilter threshold (px)
    edge_scale: float = 1.0              # weight of image edges in the geodesic cost
    refine: bool = True                  # variational refinement afterwards
    refine_dis: bool = True              # before it, let OpenCV DIS (medium) refine from the interpolated flow...
    dis_max_change: float = 4.0          # ...keeping its result only where it moves the flow by less than this (px)
    refine_iterations: int = 5           # fixed-point iterations of the refinement
    refine_alpha: float = 20.0           # smoothness weight of the refinement
    threads: int | None = None           # torch threads for the CPU ops (None = leave as is)


PRESETS: dict[str, PipelineConfig] = {
    # every pixel, 256/512-D descriptors stored as float16, seeds every 4 px, 10 refinement passes
    "accurate": PipelineConfig(half=True, iterations=3, radius=4, seed_step=4, refine_iterations=10),
    # descriptors every 2nd pixel, PCA to 32-D, seeds every 4 px, 5 refinement passes
    "fast": PipelineConfig(descriptor_stride=2, pca_dim=32, iterations=3, radius=4, window=2, seed_step=2,
                           coarse_factor=4, coarse_window=24, coarse_radius=16, consistency=0.5,
                           nn=64, refine_iterations=5),
}


class _Timer:
    """Stage timings (wall and process CPU seconds); printed to stderr as they happen when verbose."""

    def __init__(self, verbose: bool, label: str):
        self.verbose, self.label = verbose, label
        self.stages: list[tuple[str, float]] = []
        self.cpu: list[tuple[str, float]] = []
        self._t0 = time.perf_counter()
        self._c = time.process_time()

    def stage(self, name: str, start: float, extra: str = "") -> None:
        dt = time.perf_counter() - start
        dc = time.process_time() - self._c
        self._c = time.process_time()
        self.stages.append((name, dt))
        self.cpu.append((name, dc))
        if self.verbose:
            print(f"[{self.label}] {name:<12s} {dt:7.2f} s (cpu {dc:6.2f} s)"
                  f"{('  ' + extra) if extra else ''}", file=sys.stderr)

    def done(self) -> None:
        if self.verbose:
            print(f"[{self.label}] {'total':<12s} {time.perf_counter() - self._t0:7.2f} s", file=sys.stderr)


# ---------------------------------------------------------------------------------------------
# Stages

def pca_reduce(desc_a: torch.Tensor, desc_b: torch.Tensor, dim: int, samples: int = 20000,
               seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Project two H×W×D descriptor fields on the top `dim` principal components of their pixels.

    The basis is fitted on up to `samples` random pixels of each field (deterministic for `seed`);
    squared distances shrink by the discarded variance only.  Returns two H×W×dim float32 fields."""
    if not isinstance(dim, (int, np.integer)) or dim < 1:
        raise InputError(f"pca_dim must be a positive integer, got {dim!r}")
    D = desc_a.shape[-1]
    if dim >= D:
        return desc_a.float(), desc_b.float()
    g = torch.Generator().manual_seed(seed)
    fa, fb = desc_a.reshape(-1, D), desc_b.reshape(-1, D)
    pick = [f[torch.randint(0, f.shape[0], (min(samples, f.shape[0]),), generator=g)].float() for f in (fa, fb)]
    x = torch.cat(pick)
    mean = x.mean(0)
    cov = (x - mean).T @ (x - mean) / max(1, x.shape[0] - 1)
    _, vecs = torch.linalg.eigh(cov.double())
    basis = vecs[:, -dim:].flip(1).float()  # D×dim, largest variance first
    proj = [((f.float() - mean) @ basis).reshape(*d.shape[:2], dim).contiguous() for f, d in
            ((fa, desc_a), (fb, desc_b))]
    return proj[0], proj[1]


def raw_patch_descriptors(image: np.ndarray, stride: int = 1, radius: int = 4) -> torch.Tensor:
    """A learning-free stand-in descriptor: the (2r+1)² grayscale patch around each pixel (3×3 box
    pre-smoothed, reflect-101 borders), minus its mean, divided by its norm.

    image: H×W or H×W×3.  Returns ceil(H/stride)×ceil(W/stride)×(2r+1)² float32."""
    from .descriptors_dense import prepare_image

    g = prepare_image(image)[None, None]
    if min(g.shape[-2:]) <= radius:
        raise InputError(f"image is {g.shape[-1]}×{g.shape[-2]} pixels; raw patch descriptors need more than "
                         f"{radius}×{radius}")
    g = torch.nn.functional.avg_pool2d(torch.nn.functional.pad(g, (1, 1, 1, 1), mode="replicate"), 3, 1)
    g = torch.nn.functional.pad(g, (radius,) * 4, mode="reflect")
    H, W = g.shape[-2] - 2 * radius, g.shape[-1] - 2 * radius
    k = 2 * radius + 1
    rows = []
    for y0 in range(0, H, stride * 64):  # bands bound the unfolded copy
        band = g[..., y0:min(H, y0 + stride * 64) + 2 * radius, :]
        p = torch.nn.functional.unfold(band, k)[0].T.reshape(band.shape[-2] - 2 * radius, W, k * k)
        rows.append(p[::stride, ::stride])
    d = torch.cat(rows)
    d = d - d.mean(-1, keepdim=True)
    return (d / (d.norm(dim=-1, keepdim=True) + 1e-3)).contiguous()


def compute_descriptors(img1: np.ndarray, img2: np.ndarray, cfg: PipelineConfig,
                        model: Any = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Dense descriptors of both frames on the cfg.descriptor_stride grid (PCA-reduced when asked).

    img1, img2: H×W×3 (or H×W) frames.  Returns two ceil(H/k)×ceil(W/k)×D fields (float32 or float16)."""
    if cfg.descriptor == "raw":
        da = raw_patch_descriptors(img1, cfg.descriptor_stride)
        db = raw_patch_descriptors(img2, cfg.descriptor_stride)
    elif cfg.descriptor == "patchbatch":
        from .descriptors_dense import descriptors, load_descriptor_model

        net = model if model is not None else load_descriptor_model(cfg.descriptor_model)
        da = descriptors(img1, net, stride=cfg.descriptor_stride)
        db = descriptors(img2, net, stride=cfg.descriptor_stride)
    else:
        raise InputError(f"descriptor must be 'patchbatch' or 'raw', got {cfg.descriptor!r}")
    if cfg.pca_dim is not None:
        da, db = pca_reduce(da, db, cfg.pca_dim, seed=cfg.seed)
    if cfg.half:
        da, db = da.half(), db.half()
    return da, db


def _pool(desc: torch.Tensor, factor: int) -> torch.Tensor:
    """H×W×D field averaged over factor×factor cells -> ceil(H/f)×ceil(W/f)×D float32 (edge cells are
    completed by repeating the last row/column).  Works channels-last, without a transposed copy."""
    H, W, D = desc.shape
    Hc, Wc = -(-H // factor), -(-W // factor)
    rows = torch.arange(Hc * factor).clamp_(max=H - 1)
    cols = torch.arange(Wc * factor).clamp_(max=W - 1)
    x = desc if (Hc * factor == H and Wc * factor == W) else desc[rows][:, cols]
    return x.float().reshape(Hc, factor, Wc, factor, D).mean((1, 3)).contiguous()


def _one_way(da: torch.Tensor, db: torch.Tensor, cfg: PipelineConfig, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """PatchMatch da -> db, coarse-to-fine when cfg.coarse_factor > 1 (else a plain run with cfg.window)."""
    c = cfg.coarse_factor
    H, W = da.shape[:2]
    init = None
    window = cfg.window
    if c > 1 and min(H, W) >= 2 * c:
        ca, cb = _pool(da, c), _pool(db, c)
        coarse, _ = patchmatch(ca, cb, iterations=cfg.coarse_iterations, radius=cfg.coarse_radius,
                               window=cfg.coarse_window, seed=seed + 1000)
        # nearest upsampling of the coarse offsets (scaled to the fine grid) as the fine initial guess
        init = (coarse * c).repeat_interleave(c, 0).repeat_interleave(c, 1)[:H, :W]
    elif c > 1:
        window = max(window, cfg.coarse_window)  # too small to pool: search the coarse window directly
    return patchmatch(da, db, iterations=cfg.iterations, radius=cfg.radius, window=window, seed=seed,
                      subpixel=cfg.subpixel, init=init)


def match_descriptors(desc_a: torch.Tensor, desc_b: torch.Tensor, cfg: PipelineConfig):
    """PatchMatch both ways.  Returns (flow_ab, cost_ab, flow_ba, cost_ba): numpy H×W×2 / H×W in grid pixels."""
    fab, cab = _one_way(desc_a, desc_b, cfg, cfg.seed)
    fba, cba = _one_way(desc_b, desc_a, cfg, cfg.seed + 1)
    return fab.numpy(), cab.numpy(), fba.numpy(), cba.numpy()


def densify(matches: Matches, image: np.ndarray, cfg: PipelineConfig) -> np.ndarray:
    """Edge-aware interpolation of sparse matches to an H×W×2 flow (H, W of `image`).

    With no matches, warns (NoMatchesWarning) and returns zero flow."""
    cost = edge_cost_map(image, scale=cfg.edge_scale)
    return edge_aware_interpolate(matches.points, matches.flows, cost, nn=cfg.nn, coef_kernel=cfg.coef_kernel,
                                  affine=cfg.affine, pref_nn=cfg.pref_nn, pref_th=cfg.pref_th)


def saliency(image: np.ndarray, sigma: float = 2.0) -> np.ndarray:
    """Local texture strength of a frame: Gaussian-averaged gradient magnitude of the grayscale image
    scaled to [0, 1] (H×W float32).  Matches on flat regions (low saliency) are unreliable."""
    import cv2

    g = _gray_u8(image).astype(np.float32) / 255.0
    gx = cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3) / 8.0
    gy = cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3) / 8.0
    return np.sqrt(cv2.GaussianBlur(gx * gx + gy * gy, (0, 0), sigma))


def _gray_u8(img: np.ndarray) -> np.ndarray:
    a = np.asarray(img, dtype=np.float32)
    if a.ndim == 3:
        a = a @ np.array([0.299, 0.587, 0.114], np.float32)
    if a.max(initial=0.0) <= 1.5:
        a = a * 255.0
    return np.clip(np.rint(a), 0, 255).astype(np.uint8)


def refine(flow: np.ndarray, img1: np.ndarray, img2: np.ndarray, cfg: PipelineConfig) -> np.ndarray:
    """Variational refinement of an H×W×2 flow (OpenCV VariationalRefinement on grayscale frames),
    optionally preceded by OpenCV DIS (medium preset) started from the flow (cfg.refine_dis), whose
    result is kept only where it changes the flow by less than cfg.dis_max_change pixels."""
    import cv2

    g1, g2 = _gray_u8(img1), _gray_u8(img2)
    out = np.ascontiguousarray(flow, dtype=np.float32).copy()
    if cfg.refine_dis and min(g1.shape) >= 16:
        # DIS uses a flow passed in as its initial guess (downscaled to its coarsest level).  It
        # sharpens small motions but can drift far from good large-motion matches, so only its
        # local corrections (under dis_max_change px) are kept.
        dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM).calc(g1, g2, out.copy())
        dis = np.nan_to_num(np.asarray(dis, np.float32), nan=0.0, posinf=0.0, neginf=0.0)
        near = np.linalg.norm(dis - out, axis=2) < cfg.dis_max_change
        out = np.where(near[..., None], dis, out).astype(np.float32)
    vr = cv2.VariationalRefinement_create()
    vr.setFixedPointIterations(int(cfg.refine_iterations))
    vr.setSorIterations(5)
    vr.setAlpha(float(cfg.refine_alpha))
    vr.setDelta(5.0)
    vr.setGamma(10.0)
    out = vr.calc(g1, g2, out)
    return np.nan_to_num(np.asarray(out, np.float32), nan=0.0, posinf=0.0, neginf=0.0)


def resolve_config(preset: str | PipelineConfig = "accurate", **overrides: Any) -> PipelineConfig:
    """A PipelineConfig from a preset name (or config) with field overrides; InputError on unknown names."""
    if isinstance(preset, PipelineConfig):
        cfg = preset
    elif preset in PRESETS:
        cfg = PRESETS[preset]
    else:
        raise InputError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
    fields = {f.name for f in dataclasses.fields(PipelineConfig)}
    unknown = set(overrides) - fields
    if unknown:
        raise InputError(f"unknown pipeline option(s) {sorted(unknown)}; known: {sorted(fields)}")
    cfg = dataclasses.replace(cfg, **overrides)
    for name in ("descriptor_stride", "iterations", "seed_step", "nn", "coarse_factor", "coarse_iterations"):
        val = getattr(cfg, name)
        if isinstance(val, bool) or not isinstance(val, (int, np.integer)) or val < 1:
            raise InputError(f"{name} must be a positive integer, got {val!r}")
    for name in ("radius", "window", "pref_nn", "refine_iterations", "coarse_window", "coarse_radius"):
        val = getattr(cfg, name)
        if isinstance(val, bool) or not isinstance(val, (int, np.integer)) or val < 0:
            raise InputError(f"{name} must be an integer >= 0, got {val!r}")
    return cfg


def patchbatch_flow(img1: Any, img2: Any, preset: str | PipelineConfig = "accurate", verbose: bool = False,
                    model: Any = None, return_stages: bool = False, **overrides: Any):
    """Optical flow img1 -> img2 by the PatchBatch pipeline.

    Args:
        img1, img2: frames H×W or H×W×3 (uint8/uint16/float), same size.
        preset: "accurate", "fast" or a PipelineConfig; overrides: PipelineConfig fields.
        verbose: print each stage's wall time to stderr.
        model: an already loaded descriptor network (else cfg.descriptor_model is loaded).
        return_stages: also return a dict of intermediate results and timings.
    Returns:
        H×W×2 float32 flow (pixels, u then v) [, stages dict].
    Warns NoMatchesWarning (and returns the refined zero flow) when no match survives the check.
    """
    from .methods.registry import as_image

    cfg = resolve_config(preset, **overrides)
    a, b = as_image(img1, "img1"), as_image(img2, "img2")
    if a.shape != b.shape:
        raise InputError(f"img1 and img2 differ in size: {a.shape[1]}×{a.shape[0]} vs {b.shape[1]}×{b.shape[0]}")
    old_threads = torch.get_num_threads()
    if cfg.threads:
        torch.set_num_threads(int(cfg.threads))
    label = preset if isinstance(preset, str) else "custom"
    timer = _Timer(verbose, f"patchbatch-{label}")
    try:
        t = time.perf_counter()
        da, db = compute_descriptors(a, b, cfg, model)
        timer.stage("descriptors", t, f"{tuple(da.shape)} {str(da.dtype).replace('torch.', '')}")
        t = time.perf_counter()
        fab, cab, fba, _ = match_descriptors(da, db, cfg)
        timer.stage("patchmatch", t, "both directions")
        t = time.perf_counter()
        k = cfg.descriptor_stride
        m = sparse_matches(fab, fba, cab, threshold=cfg.consistency, cost_quantile=cfg.cost_quantile,
                           step=cfg.seed_step, scale=float(k))
        if cfg.saliency_th > 0 and len(m):
            sal = saliency(a)
            keep = sal[m.points[:, 1].astype(np.int64), m.points[:, 0].astype(np.int64)] >= cfg.saliency_th
            m = Matches(m.points[keep], m.flows[keep], m.confidence[keep])
        n_grid = -(-fab.shape[0] // cfg.seed_step) * -(-fab.shape[1] // cfg.seed_step)
        timer.stage("consistency", t, f"{len(m)} of {n_grid} grid matches kept")
        t = time.perf_counter()
        if len(m) == 0:
            warnings.warn("patchbatch: no match survived the consistency check; the flow is the variational "
                          "refinement of zero flow", NoMatchesWarning, stacklevel=2)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NoMatchesWarning)  # already reported above
            dense = densify(m, a, cfg)
        timer.stage("interpolate", t)
        out = dense
        if cfg.refine:
            t = time.perf_counter()
            out = refine(dense, a, b, cfg)
            timer.stage("refine", t)
        timer.done()
    finally:
        torch.set_num_threads(old_threads)
    if return_stages:
        return out, {"matches": m, "flow_ab": fab, "flow_ba": fba, "cost_ab": cab, "interpolated": dense,
                     "timings": dict(timer.stages), "cpu_timings": dict(timer.cpu), "config": cfg}
    return out
