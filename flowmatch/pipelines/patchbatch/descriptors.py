"""Stage 1: dense descriptors of both frames on the descriptor grid (PatchBatch network or raw
patches), optionally PCA-reduced and stored as float16.  Output layout: torch h×w×D (channels last)."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ...errors import InputError
from ...precision import resolve_precision
from .config import DescriptorConfig
from .frame_cache import FrameCache
from .network import descriptors, load_descriptor_model, prepare_image


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
    mean, basis = _pca_basis(torch.cat(pick), dim)
    # (f - mean) @ basis as f @ basis - mean @ basis: no centred copy of the whole field
    shift = -(mean @ basis)
    proj = [torch.addmm(shift, f.float(), basis).reshape(*d.shape[:2], dim) for f, d in
            ((fa, desc_a), (fb, desc_b))]
    return proj[0], proj[1]


def raw_patch_descriptors(image: Any, stride: int = 1, radius: int = 4) -> torch.Tensor:
    """A learning-free stand-in descriptor: the (2r+1)² grayscale patch around each pixel (3×3 box
    pre-smoothed, reflect-101 borders), minus its mean, divided by its norm.

    image: H×W or H×W×3.  Returns ceil(H/stride)×ceil(W/stride)×(2r+1)² float32."""
    g = prepare_image(image)[None, None]
    if min(g.shape[-2:]) <= radius:
        raise InputError(f"image is {g.shape[-1]}×{g.shape[-2]} pixels; raw patch descriptors need more than "
                         f"{radius}×{radius}")
    g = F.avg_pool2d(F.pad(g, (1, 1, 1, 1), mode="replicate"), 3, 1)
    g = F.pad(g, (radius,) * 4, mode="reflect")
    H, W = g.shape[-2] - 2 * radius, g.shape[-1] - 2 * radius
    k = 2 * radius + 1
    h, w = -(-H // stride), -(-W // stride)
    g = g[0, 0].contiguous()
    # every stride-th k×k window as a view (no copy), copied once per band into the output
    wins = g.as_strided((h, w, k, k), (stride * g.stride(0), stride, g.stride(0), 1))
    out = torch.empty(h, w, k * k)
    band = max(1, 65536 // w)  # rows per band: the working set stays in cache-sized pieces
    for r0 in range(0, h, band):
        p = out[r0:r0 + band]
        p.copy_(wins[r0:r0 + band].reshape(p.shape))
        centre_and_normalise_(p)
    return out


def centre_and_normalise_(p: torch.Tensor) -> torch.Tensor:
    """In place, each vector along the last dim minus its mean, over its norm (+1e-3, so flat patches
    stay near zero): the raw patch descriptor's normalisation (also used on training patches,
    flowmatch.train.with_raw)."""
    p.sub_(p.mean(-1, keepdim=True))
    return p.div_(p.norm(dim=-1, keepdim=True).add_(1e-3))


def _lerp_axis(x: torch.Tensor, axis: int, factor: int, size: int) -> torch.Tensor:
    """Linear interpolation along `axis` from samples at positions 0, f, 2f, ... to 0, 1, ..., size-1
    (edge-replicated past the last sample)."""
    pos = torch.arange(size, device=x.device)
    lo = (pos // factor).clamp_(max=x.shape[axis] - 1)
    hi = (lo + 1).clamp_(max=x.shape[axis] - 1)
    t = ((pos % factor).to(x.dtype) / factor).reshape([-1 if a == axis else 1 for a in range(x.dim())])
    a, b = x.index_select(axis, lo), x.index_select(axis, hi)
    return a.add_(b.sub_(a).mul_(t))


def upsample_field(field: torch.Tensor, factor: int, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear upsampling of an h×w×D descriptor field sampled every `factor` grid pixels to the
    size[0]×size[1] grid: grid pixel (i, j) interpolates field position (i/factor, j/factor), so the
    samples themselves are kept exactly.  Returns size×D in field's dtype."""
    if factor == 1:
        return field[: size[0], : size[1]]
    return _lerp_axis(_lerp_axis(field, 0, factor, size[0]), 1, factor, size[1]).contiguous()


def combine(learned: torch.Tensor, raw: torch.Tensor, raw_weight: float) -> torch.Tensor:
    """[√(1-w)·l/|l|, √w·r] for h×w×D learned and h×w×K unit-norm raw descriptors: the squared distance
    of two combined descriptors is (1-w)·(learned, unit-normalised) + w·(raw).  Differentiable when
    `learned` requires grad (training for the combined descriptor, flowmatch.train.with_raw)."""
    if learned.requires_grad and torch.is_grad_enabled():
        # autograd cannot follow the in-place writes below
        unit = learned / learned.norm(dim=-1, keepdim=True).add(1e-6)
        return torch.cat([unit * (1.0 - raw_weight) ** 0.5, raw.to(learned.dtype) * raw_weight ** 0.5], dim=-1)
    d = learned.shape[-1]
    out = torch.empty(*learned.shape[:-1], d + raw.shape[-1], dtype=learned.dtype, device=learned.device)
    # written in place, part by part: two passes over memory instead of four (this machine is bandwidth-bound)
    scale = learned.norm(dim=-1, keepdim=True).add_(1e-6).reciprocal_().mul_((1.0 - raw_weight) ** 0.5)
    torch.mul(learned, scale, out=out[..., :d])
    torch.mul(raw, raw_weight ** 0.5, out=out[..., d:])
    return out


def daisy_descriptors(image: Any, stride: int = 1, radius: int = 8) -> torch.Tensor:
    """DAISY (Tola et al.; scikit-image's implementation: 2 rings of 6 histograms of 8 orientations,
    104-D) at every stride-th pixel, on the grayscale image with reflect-101 borders so that every pixel
    has one.  Returns ceil(H/stride)×ceil(W/stride)×104 float32, each descriptor L2-normalised."""
    try:
        from skimage.feature import daisy
    except ImportError as exc:
        raise InputError("descriptor 'daisy' needs scikit-image (pip install scikit-image)") from exc
    g = prepare_image(image).numpy()
    if min(g.shape) <= radius:
        raise InputError(f"image is {g.shape[1]}×{g.shape[0]} pixels; DAISY needs more than {radius}×{radius}")
    pad = np.pad(g, radius, mode="reflect")
    # step=stride samples the same grid as step=1 then [::stride] (checked in the tests), 2.5-3x faster at 2
    d = daisy(pad, step=stride, radius=radius, rings=2, histograms=6, orientations=8, normalization="l2")
    return torch.from_numpy(np.ascontiguousarray(d, dtype=np.float32))


def _pca_basis(x: torch.Tensor, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean D, basis D×dim, largest variance first) of the rows of x (N×D; centred in place)."""
    mean = x.mean(0)
    x -= mean
    _, vecs = torch.linalg.eigh((x.T @ x / max(1, x.shape[0] - 1)).double())
    return mean, vecs[:, -dim:].flip(1).float()


_CHUNK = 2048  # rows per GEMM block in combined_pca (2 MiB of 256-D float32)


def combined_pca(learned: tuple[torch.Tensor, torch.Tensor], raw: tuple[torch.Tensor, torch.Tensor],
                 factor: int, raw_weight: float, dim: int, samples: int = 20000,
                 seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The combined descriptors of two frames, reduced to `dim` principal components, without ever
    building the combined field.

    learned: the network's fields on a grid `factor` times coarser than raw's (hn×wn×D each);
    raw: h×w×K unit raw patches.  The combined descriptor is [√(1-w)·up(l/|l|), √w·r] with `up` the
    bilinear upsampling of upsample_field; both it and the projection are linear, so the learned
    part is projected on the coarse grid and then upsampled (factor² less work) and the raw part is
    projected where it is.  The basis is fitted on up to `samples` random coarse-grid nodes per
    frame, where up() is exact (deterministic for `seed`).  Returns two h×w×dim float32 fields."""
    wl, wr = (1.0 - raw_weight) ** 0.5, raw_weight ** 0.5
    flats = [d.reshape(-1, d.shape[-1]).float() for d in learned]
    # 1/|l| per node: the unit field l/|l| is never built (projecting first and scaling the 32-D result
    # is the same product and saves two passes over the largest array of the stage)
    inv = [f.norm(dim=-1).add_(1e-6).reciprocal_() for f in flats]
    D, K = flats[0].shape[-1], raw[0].shape[-1]
    g = torch.Generator().manual_seed(seed)
    picks = []
    for d in learned:
        n = d.shape[0] * d.shape[1]
        picks.append(torch.randint(0, n, (min(samples, n),), generator=g).to(d.device))
    rows = torch.empty(sum(len(i) for i in picks), D + K, device=flats[0].device)
    o = 0
    for f, s, r, d, idx in zip(flats, inv, raw, learned, picks):
        wn = d.shape[1]
        # the raw node under coarse node (y, x) is (y·factor, x·factor) on raw's grid
        ridx = (idx // wn) * factor * r.shape[1] + (idx % wn) * factor
        block = rows[o:o + len(idx)]
        torch.mul(f.index_select(0, idx), (s.index_select(0, idx) * wl)[:, None], out=block[:, :D])
        torch.mul(r.reshape(-1, K).index_select(0, ridx).float(), wr, out=block[:, D:])
        o += len(idx)
    mean, basis = _pca_basis(rows, dim)
    bl, br = basis[:D] * wl, basis[D:] * wr
    shift = -(mean @ basis)
    out = []
    for f, s, r, d in zip(flats, inv, raw, learned):
        h, w = r.shape[:2]
        low = torch.empty(f.shape[0], dim, device=f.device)
        for c0 in range(0, f.shape[0], _CHUNK):  # cache-sized row blocks: each block is read once
            torch.mm(f[c0:c0 + _CHUNK], bl, out=low[c0:c0 + _CHUNK])
        low.mul_(s[:, None])
        field = torch.addmm(shift, r.reshape(-1, K).float(), br).reshape(h, w, dim)
        out.append(field.add_(upsample_field(low.reshape(*d.shape[:2], dim), factor, (h, w))))
    return out[0], out[1]


def compute_descriptors(img1: np.ndarray, img2: np.ndarray, cfg: DescriptorConfig, model: Any = None,
                        seed: int = 0, device: str | torch.device = "cpu",
                        cache: FrameCache | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Dense descriptors of both frames on the cfg.stride grid (PCA-reduced when asked; `seed`
    picks the PCA samples), on `device` (the network runs there; the learning-free kinds are
    computed on the CPU and moved).  cfg.precision "auto" resolves for `device`.  With a `cache`
    (frame_cache.FrameCache), each frame's network field is looked up there first.

    img1, img2: H×W×3 (or H×W) frames.  Returns two ceil(H/k)×ceil(W/k)×D fields (float32 or float16)."""
    dev = torch.device(device)
    if cfg.kind == "raw":
        da, db = raw_patch_descriptors(img1, cfg.stride), raw_patch_descriptors(img2, cfg.stride)
    elif cfg.kind == "daisy":
        da, db = daisy_descriptors(img1, cfg.stride), daisy_descriptors(img2, cfg.stride)
    else:
        if model is not None:
            net = model
        else:
            net = load_descriptor_model(cfg.model) if cache is None else cache.network(cfg.model, load_descriptor_model)
        prec = resolve_precision(cfg.precision, dev)
        n = cfg.net_stride or cfg.stride
        def field(img: np.ndarray) -> torch.Tensor:
            run = lambda: descriptors(img, net, stride=n, precision=prec, device=dev)  # noqa: E731
            return run() if cache is None else cache.get(img, (n, prec, str(dev)), net, run)

        da, db = field(img1), field(img2)
        size = (-(-img1.shape[0] // cfg.stride), -(-img1.shape[1] // cfg.stride))
        if cfg.kind == "combined":
            partner = raw_patch_descriptors if cfg.combine_with == "raw" else daisy_descriptors
            ra, rb = (partner(img, cfg.stride).to(dev) for img in (img1, img2))
            if cfg.pca_dim is not None and cfg.pca_dim < da.shape[-1] + ra.shape[-1]:
                da, db = combined_pca((da, db), (ra, rb), n // cfg.stride, cfg.raw_weight, cfg.pca_dim, seed=seed)
                return (da.half(), db.half()) if cfg.half else (da, db)
            da, db = (combine(upsample_field(d, n // cfg.stride, size), r, cfg.raw_weight)
                      for d, r in ((da, ra), (db, rb)))
        elif n != cfg.stride:
            da, db = (upsample_field(d, n // cfg.stride, size) for d in (da, db))
    da, db = da.to(dev), db.to(dev)
    if cfg.pca_dim is not None:
        da, db = pca_reduce(da, db, cfg.pca_dim, seed=seed)
    if cfg.half:
        da, db = da.half(), db.half()
    return da, db
