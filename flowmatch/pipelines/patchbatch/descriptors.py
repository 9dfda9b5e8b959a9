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
    x = torch.cat(pick)
    mean = x.mean(0)
    cov = (x - mean).T @ (x - mean) / max(1, x.shape[0] - 1)
    _, vecs = torch.linalg.eigh(cov.double())
    basis = vecs[:, -dim:].flip(1).float()  # D×dim, largest variance first
    proj = [((f.float() - mean) @ basis).reshape(*d.shape[:2], dim).contiguous() for f, d in
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
    rows = []
    for y0 in range(0, H, stride * 64):  # bands bound the unfolded copy
        band = g[..., y0:min(H, y0 + stride * 64) + 2 * radius, :]
        p = F.unfold(band, k)[0].T.reshape(band.shape[-2] - 2 * radius, W, k * k)
        rows.append(p[::stride, ::stride])
    d = torch.cat(rows)
    d = d - d.mean(-1, keepdim=True)
    return (d / (d.norm(dim=-1, keepdim=True) + 1e-3)).contiguous()


def combine(learned: torch.Tensor, raw: torch.Tensor, raw_weight: float) -> torch.Tensor:
    """[√(1-w)·l/|l|, √w·r] for h×w×D learned and h×w×K unit-norm raw descriptors: the squared distance
    of two combined descriptors is (1-w)·(learned, unit-normalised) + w·(raw)."""
    unit = learned / (learned.norm(dim=-1, keepdim=True) + 1e-6)
    return torch.cat([unit * (1.0 - raw_weight) ** 0.5, raw * raw_weight ** 0.5], -1).contiguous()


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
    d = daisy(pad, step=1, radius=radius, rings=2, histograms=6, orientations=8, normalization="l2")
    d = torch.from_numpy(np.ascontiguousarray(d[::stride, ::stride], dtype=np.float32))
    return d


def compute_descriptors(img1: np.ndarray, img2: np.ndarray, cfg: DescriptorConfig, model: Any = None,
                        seed: int = 0, device: str | torch.device = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Dense descriptors of both frames on the cfg.stride grid (PCA-reduced when asked; `seed`
    picks the PCA samples), on `device` (the network runs there; the learning-free kinds are
    computed on the CPU and moved).  cfg.precision "auto" resolves for `device`.

    img1, img2: H×W×3 (or H×W) frames.  Returns two ceil(H/k)×ceil(W/k)×D fields (float32 or float16)."""
    dev = torch.device(device)
    if cfg.kind == "raw":
        da, db = raw_patch_descriptors(img1, cfg.stride), raw_patch_descriptors(img2, cfg.stride)
    elif cfg.kind == "daisy":
        da, db = daisy_descriptors(img1, cfg.stride), daisy_descriptors(img2, cfg.stride)
    else:
        net = model if model is not None else load_descriptor_model(cfg.model)
        prec = resolve_precision(cfg.precision, dev)
        da, db = (descriptors(img, net, stride=cfg.stride, precision=prec, device=dev) for img in (img1, img2))
        if cfg.kind == "combined":
            da, db = (combine(d, raw_patch_descriptors(img, cfg.stride).to(dev), cfg.raw_weight)
                      for d, img in ((da, img1), (db, img2)))
    da, db = da.to(dev), db.to(dev)
    if cfg.pca_dim is not None:
        da, db = pca_reduce(da, db, cfg.pca_dim, seed=seed)
    if cfg.half:
        da, db = da.half(), db.half()
    return da, db
