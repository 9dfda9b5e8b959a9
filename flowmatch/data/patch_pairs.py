"""Training patches for descriptor learning, cut from frame pairs with ground-truth flow.

For an anchor pixel p of img1 (valid, not occluded, with p + flow(p) inside img2) a triplet is
  * anchor:   the P×P patch of img1 centred on p,
  * positive: the P×P patch of img2 centred on p + flow(p) (bilinear, sub-pixel),
  * negative: the patch of img2 centred on p + flow(p) + δ with |δ| uniform in [neg_min, neg_max] px
              (1-8 px by default, a random direction), or, for a `far_negatives` share of the
              triplets, at a random position of img2 more than neg_max px from the true match;
              or, for a `boundary_negatives` share, a motion-boundary negative: the anchor is a pixel
              whose patch context holds another motion (a pixel q whose flow differs from p's by more
              than neg_max px), and the negative is p + flow(q), where that other motion would carry p.
              A descriptor that reads its context rather than its centre confuses exactly these.
Patches come from the grayscale frame normalised by its own mean/std (then locally, input_norm
"local") with reflect-101 borders, exactly as the dense descriptor pass sees the image; photometric
augmentation (gamma, contrast, brightness, noise) is optional.  For an even patch size P the centre
is pixel P//2 - 1 from the top left (rows p-30 .. p+31 for P = 62), matching flowmatch.descriptors_dense.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import InputError
from ..image import INPUT_NORMS, local_normalize, normalize_gray, to_gray


def patch_offsets(patch_size: int) -> tuple[int, int]:
    """(before, after): pixels of context above/left and below/right of the centre pixel."""
    before = (patch_size - 1) // 2
    return before, patch_size - 1 - before


def check_negative_shares(far: Any, boundary: Any, names: tuple[str, str] = ("far_negatives", "boundary_negatives")
                          ) -> None:
    """InputError unless the far and boundary negative shares are numbers in [0, 1] with a sum of at most 1
    (`names`: how the caller's user spells them, e.g. the command line's flags)."""
    for value, name in zip((far, boundary), names):
        if not (isinstance(value, (int, float)) and 0.0 <= value <= 1.0):
            raise InputError(f"{name} must be a share in [0, 1], got {value!r}")
    if far + boundary > 1.0:
        raise InputError(f"{names[0]} + {names[1]} must be at most 1, got {far} + {boundary}")


@dataclass
class PatchTriplets:
    """A batch of N triplets; patches are N×1×P×P float32 tensors (normalised grayscale).

    frame: N frame indices; xy1: N×2 anchor pixel (x, y) in img1; xy2: N×2 true match in img2;
    xyn: N×2 negative centre in img2 (all float32 pixels, x first)."""
    anchor: torch.Tensor
    positive: torch.Tensor
    negative: torch.Tensor
    frame: np.ndarray
    xy1: np.ndarray
    xy2: np.ndarray
    xyn: np.ndarray

    def __len__(self) -> int:
        return self.anchor.shape[0]


@dataclass
class _Frame:
    name: str
    raw1: torch.Tensor  # 1×1×Hp×Wp padded grayscale in [0, 1]
    raw2: torch.Tensor
    stats1: tuple[float, float]  # mean, std of the unpadded image
    stats2: tuple[float, float]
    flow: np.ndarray
    cand: np.ndarray   # K flat indices of usable anchor pixels
    boundary: np.ndarray | None  # the usable anchors with another motion in their context (None = not computed)
    shape: tuple[int, int]
    pad: int
    gray1: np.ndarray = field(repr=False, default=None)  # unpadded [0, 1] grayscale (for baselines)
    gray2: np.ndarray = field(repr=False, default=None)


def _field(obj: Any, name: str) -> Any:
    if isinstance(obj, dict):
        return obj.get(name)
    if isinstance(obj, (tuple, list)):
        order = ("img1", "img2", "flow", "valid", "occlusion")
        i = order.index(name) if name in order else len(obj)
        return obj[i] if i < len(obj) else None
    return getattr(obj, name, None)


class PatchPairSampler:
    """Sample (anchor, positive, negative) patch triplets from frames with ground-truth flow.

    Args:
        frames: a sequence of samples with img1, img2 (H×W[×3]), flow (H×W×2 float32 pixels, x first),
            valid (H×W bool, optional) and occlusion (H×W bool, True = occluded, optional) — e.g.
            flowmatch.data.datasets.FlowSample, flowmatch.data.synthetic.SyntheticPair, dicts or tuples.
        patch_size: P (51 for the paper network, 62 for the dense variant).
        neg_min, neg_max: distance range (pixels) of the near negatives from the true match.
        far_negatives: share of triplets whose negative is anywhere in img2 farther than neg_max.
        boundary_negatives: share of triplets with a motion-boundary negative (module docstring);
            frames without motion boundaries give ordinary near negatives instead.
        augment: photometric augmentation (per-patch gamma, contrast, brightness, noise).
        seed: seed of the sampler's own random generator.
        weights: optional relative sampling weight of each frame (default: frames drawn uniformly).
        input_norm: the network's input normalisation (PatchBatchNet.input_norm): "global" (the
            frame's mean/std) or "local" (then flowmatch.image.local_normalize, computed on the whole
            frame as the dense pass does; per-patch gamma is then left out, since it needs intensities).
    Raises InputError for frames of mismatched shapes or without any usable (valid, unoccluded,
    in-frame) pixel.
    """

    def __init__(self, frames: Sequence[Any], patch_size: int = 51, neg_min: float = 1.0, neg_max: float = 8.0,
                 far_negatives: float = 0.0, augment: bool = True, seed: int = 0,
                 weights: Sequence[float] | None = None, input_norm: str = "global",
                 boundary_negatives: float = 0.0):
        if input_norm not in INPUT_NORMS:
            raise InputError(f"input_norm must be one of {INPUT_NORMS}, got {input_norm!r}")
        self.input_norm = input_norm
        if patch_size < 3:
            raise InputError(f"patch_size must be at least 3, got {patch_size}")
        if not (0 < neg_min <= neg_max):
            raise InputError(f"need 0 < neg_min <= neg_max, got {neg_min}, {neg_max}")
        check_negative_shares(far_negatives, boundary_negatives)
        self.boundary_negatives = float(boundary_negatives)
        if len(frames) == 0:
            raise InputError("frames is empty: give at least one (img1, img2, flow) sample")
        self.patch_size, self.neg_min, self.neg_max = int(patch_size), float(neg_min), float(neg_max)
        self.far_negatives, self.augment = float(far_negatives), bool(augment)
        self.rng = np.random.default_rng(seed)
        self.frames = [self._prepare(f, i) for i, f in enumerate(frames)]
        self.weights = None
        if weights is not None:
            wts = np.asarray(weights, np.float64)
            if wts.shape != (len(self.frames),) or not np.isfinite(wts).all() or (wts < 0).any() or wts.sum() <= 0:
                raise InputError(f"weights must be {len(self.frames)} non-negative numbers with a positive sum")
            self.weights = wts / wts.sum()

    def _prepare(self, sample: Any, index: int) -> _Frame:
        name = str(_field(sample, "name") or f"frame {index}")
        img1, img2, flow = _field(sample, "img1"), _field(sample, "img2"), _field(sample, "flow")
        if img1 is None or img2 is None or flow is None:
            raise InputError(f"{name}: a sample needs img1, img2 and flow")
        g1, g2 = to_gray(img1, f"{name} img1"), to_gray(img2, f"{name} img2")
        flow = np.asarray(flow, np.float32)
        h, w = g1.shape
        if g2.shape != (h, w) or flow.shape != (h, w, 2):
            raise InputError(f"{name}: img1 {g1.shape}, img2 {g2.shape} and flow {flow.shape} must share H×W "
                             "(flow H×W×2)")
        ok = np.isfinite(flow).all(2)
        valid = _field(sample, "valid")
        if valid is not None:
            valid = np.asarray(valid, bool)
            if valid.shape != (h, w):
                raise InputError(f"{name}: valid mask has shape {valid.shape}, expected {(h, w)}")
            ok &= valid
        occ = _field(sample, "occlusion")
        if occ is not None:
            occ = np.asarray(occ, bool)
            if occ.shape != (h, w):
                raise InputError(f"{name}: occlusion mask has shape {occ.shape}, expected {(h, w)}")
            ok &= ~occ
        ys, xs = np.mgrid[0:h, 0:w]
        with np.errstate(invalid="ignore"):
            tx, ty = xs + flow[..., 0], ys + flow[..., 1]
            ok &= (tx >= 0) & (tx <= w - 1) & (ty >= 0) & (ty <= h - 1)
        cand = np.flatnonzero(ok)
        if cand.size == 0:
            raise InputError(f"{name}: the flow has no valid, unoccluded pixel whose match lies inside img2; "
                             "check the valid/occlusion masks (True in valid = usable)")
        pad = self.patch_size // 2 + int(math.ceil(self.neg_max)) + 2
        if pad >= min(h, w):
            # np.pad's reflect mode (= reflect-101) cannot pad more than the image size minus one.
            raise InputError(f"{name}: image {w}×{h} is too small for {self.patch_size}-px patches "
                             f"(needs more than {pad} px per side)")

        def padded(g: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.pad(g, pad, mode="reflect"))[None, None].contiguous()

        boundary = self._boundary_anchors(flow, cand) if self.boundary_negatives > 0 else None
        if self.input_norm == "local":
            # normalised on the whole frame (as the dense pass does); the patches need no further scaling
            n1, n2 = (local_normalize(normalize_gray(g)) for g in (g1, g2))
            return _Frame(name, padded(n1), padded(n2), (0.0, 1.0), (0.0, 1.0), flow, cand, boundary, (h, w), pad,
                          g1, g2)
        return _Frame(name, padded(g1), padded(g2), (float(g1.mean()), float(g1.std())),
                      (float(g2.mean()), float(g2.std())), flow, cand, boundary, (h, w), pad, g1, g2)

    def _context(self) -> int:
        """Radius (px) of the patch context searched for another motion."""
        return patch_offsets(self.patch_size)[0]

    def _boundary_anchors(self, flow: np.ndarray, cand: np.ndarray) -> np.ndarray:
        """The usable anchors whose context square holds a flow component spread above neg_max: a
        cheap superset of "some q differs by more than neg_max" (the negative's search checks it)."""
        from scipy.ndimage import maximum_filter, minimum_filter

        size = 2 * self._context() + 1
        spread = np.zeros(flow.shape[:2], np.float32)
        for c in range(2):
            f = np.nan_to_num(flow[..., c], nan=0.0, posinf=0.0, neginf=0.0)
            spread = np.maximum(spread, maximum_filter(f, size, mode="nearest")
                                - minimum_filter(f, size, mode="nearest"))
        return cand[spread.reshape(-1)[cand] > self.neg_max]

    def _boundary_negatives(self, fr: _Frame, xy1: np.ndarray, rng: np.random.Generator,
                            tries: int = 48) -> tuple[np.ndarray, np.ndarray]:
        """For K anchors (K×2 integer px): p + flow(q) for a random context pixel q (in frame, finite
        flow) whose flow differs from p's by more than neg_max px and carries p into img2
        -> (K×2 negatives, K found)."""
        h, w = fr.shape
        r = self._context()
        k = len(xy1)
        x, y = xy1[:, 0].astype(np.int64), xy1[:, 1].astype(np.int64)
        qx = x[:, None] + rng.integers(-r, r + 1, (k, tries))
        qy = y[:, None] + rng.integers(-r, r + 1, (k, tries))
        inside = (qx >= 0) & (qx < w) & (qy >= 0) & (qy < h)
        fq = fr.flow[np.clip(qy, 0, h - 1), np.clip(qx, 0, w - 1)]             # K×T×2
        cand = xy1[:, None].astype(np.float32) + fq                            # K×T×2 in img2
        with np.errstate(invalid="ignore"):
            ok = inside & np.isfinite(fq).all(2) & (np.linalg.norm(fq - fr.flow[y, x][:, None], axis=2) > self.neg_max)
            ok &= (cand[..., 0] >= 0) & (cand[..., 0] <= w - 1) & (cand[..., 1] >= 0) & (cand[..., 1] <= h - 1)
        found = ok.any(1)
        neg = cand[np.arange(k), np.argmax(ok, 1)]
        return neg.astype(np.float32), found

    def _cut(self, fr: _Frame, img: torch.Tensor, xy: np.ndarray) -> torch.Tensor:
        """Bilinear P×P patches centred at pixel positions xy (K×2) of the padded image -> K×1×P×P."""
        p = self.patch_size
        before, _ = patch_offsets(p)
        hp, wp = img.shape[-2:]
        off = torch.arange(p, dtype=torch.float64) - before
        cx = torch.from_numpy(xy[:, 0].astype(np.float64))[:, None] + fr.pad + off[None]   # K×P
        cy = torch.from_numpy(xy[:, 1].astype(np.float64))[:, None] + fr.pad + off[None]
        gx = (2 * cx / (wp - 1) - 1)[:, None, :].expand(-1, p, -1)
        gy = (2 * cy / (hp - 1) - 1)[:, :, None].expand(-1, -1, p)
        grid = torch.stack([gx, gy], -1).float().reshape(1, -1, p, 2)  # 1×(K·P)×P×2
        out = F.grid_sample(img, grid, mode="bilinear", padding_mode="border", align_corners=True)
        return out.reshape(-1, 1, p, p)

    def _draw(self, k: int, strength: float, rng: np.random.Generator) -> dict[str, torch.Tensor] | None:
        """Random photometric parameters for k patches (None when augmentation is off)."""
        if not self.augment or strength <= 0:
            return None
        t = lambda a: torch.from_numpy(np.asarray(a, np.float32))[:, None, None, None]  # noqa: E731
        return {"gamma": t(np.exp(rng.uniform(-0.3, 0.3, k) * strength)),
                "contrast": t(np.exp(rng.uniform(-0.25, 0.25, k) * strength)),
                "bright": t(rng.normal(0, 0.2 * strength, k)),
                "sigma": t(rng.uniform(0, 0.05 * strength, k))}

    @staticmethod
    def _photometric(patches: torch.Tensor, stats: tuple[float, float], params: dict[str, torch.Tensor] | None,
                     rng: np.random.Generator, local: bool = False) -> torch.Tensor:
        """Gamma on [0, 1] intensities (not for `local`, already normalised patches), then the image's
        normalisation, contrast, brightness, noise."""
        mean, std = stats
        std = std if std > 1e-6 else 1.0
        if params is None:
            return (patches - mean) / std
        x = (patches - mean) / std if local else (patches.clamp_min(0) ** params["gamma"] - mean) / std
        x = x * params["contrast"] + params["bright"]
        noise = torch.from_numpy(rng.standard_normal(x.shape).astype(np.float32))
        return x + noise * params["sigma"]

    def sample(self, n: int, rng: np.random.Generator | None = None) -> PatchTriplets:
        """N random triplets: frames drawn by `weights` (default uniformly), then anchor pixels
        uniformly among a frame's usable pixels."""
        if n < 1:
            raise InputError(f"n must be positive, got {n}")
        rng = rng or self.rng
        which = rng.choice(len(self.frames), size=n, p=self.weights)
        parts = []
        for fi in np.unique(which):
            parts.append(self._sample_frame(int(fi), int((which == fi).sum()), rng))
        cat = lambda i: torch.cat([p[i] for p in parts])  # noqa: E731
        cnp = lambda i: np.concatenate([p[i] for p in parts])  # noqa: E731
        return PatchTriplets(cat(0), cat(1), cat(2), cnp(3), cnp(4), cnp(5), cnp(6))

    def _sample_frame(self, fi: int, k: int, rng: np.random.Generator):
        fr = self.frames[fi]
        h, w = fr.shape
        idx = fr.cand[rng.integers(0, fr.cand.size, k)]
        ang = rng.uniform(0, 2 * np.pi, k)
        rad = rng.uniform(self.neg_min, self.neg_max, k)
        # one draw per triplet picks its kind: boundary [0, b), far [b, b + f), near otherwise
        u = rng.random(k)
        b = self.boundary_negatives
        bnd = u < b
        far = (u >= b) & (u < b + self.far_negatives)
        if bnd.any() and fr.boundary is not None and fr.boundary.size:
            idx[bnd] = fr.boundary[rng.integers(0, fr.boundary.size, int(bnd.sum()))]
        else:
            bnd[:] = False  # no motion boundary in this frame: ordinary near negatives
        y, x = np.divmod(idx, w)
        xy1 = np.stack([x, y], 1).astype(np.float32)
        xy2 = xy1 + fr.flow[y, x]
        xyn = xy2 + np.stack([np.cos(ang), np.sin(ang)], 1) * rad[:, None]
        if bnd.any():
            sel = np.flatnonzero(bnd)
            neg, found = self._boundary_negatives(fr, xy1[sel], rng)
            xyn[sel[found]] = neg[found]  # where no other motion was found: an ordinary near negative
        for i in np.flatnonzero(far):
            for _ in range(100):  # rejection sampling; images are far larger than neg_max
                q = rng.uniform([0, 0], [w - 1, h - 1])
                if np.hypot(*(q - xy2[i])) > self.neg_max:
                    xyn[i] = q
                    break
        xyn = np.clip(xyn, [0, 0], [w - 1, h - 1]).astype(np.float32)  # near-border negatives stay in frame
        local = self.input_norm == "local"
        a = self._photometric(self._cut(fr, fr.raw1, xy1), fr.stats1, self._draw(k, 0.5, rng), rng, local)
        both = self._cut(fr, fr.raw2, np.concatenate([xy2, xyn]))
        # One photometric draw per triplet for its positive and negative (both come from img2).
        params = self._draw(k, 1.0, rng)
        p = self._photometric(both[:k], fr.stats2, params, rng, local)
        nneg = self._photometric(both[k:], fr.stats2, params, rng, local)
        return a, p, nneg, np.full(k, fi), xy1, xy2.astype(np.float32), xyn

    def patches_at(self, frame: int, xy: np.ndarray, image: int = 1) -> torch.Tensor:
        """Normalised P×P patches (no augmentation) of frame `frame`'s img1 or img2 (image=1|2)
        centred at the K×2 pixel positions xy (x first, sub-pixel allowed) -> K×1×P×P."""
        fr = self.frames[frame]
        xy = np.asarray(xy, np.float32).reshape(-1, 2)
        raw, stats = (fr.raw1, fr.stats1) if image == 1 else (fr.raw2, fr.stats2)
        return self._photometric(self._cut(fr, raw, xy), stats, None, self.rng)

    def batches(self, batch_size: int) -> Iterator[PatchTriplets]:
        """An endless stream of batches of `batch_size` triplets."""
        while True:
            yield self.sample(batch_size)
