"""Flow error metrics and the benchmark protocols of Sintel and KITTI 2012/2015.

Conventions
- flow, gt: H×W×2 float arrays (numpy, or torch tensors that are moved to the CPU), pixels, x (u) first.
- valid: optional H×W bool mask; only valid pixels are scored.  Ground-truth pixels that are not
  finite are treated as invalid as well (readers in flowmatch.io already set valid False for them).
- A predicted flow containing NaN or inf anywhere raises InputError: such a field is a bug upstream,
  and silently dropping its pixels would flatter the method.
- Outlier rates are returned in percent (0-100), as the benchmarks publish them.
- A mean over zero pixels is NaN (and such images are left out of per-image averages, see below).

Averaging: per-image vs pooled
- Per image, then over images (KITTI 2012 devkit): every image counts equally, whatever its
  number of valid pixels.
- Pooled (KITTI 2015 devkit Fl, Sintel EPE): error sums and pixel counts are added over all images
  first, then divided once; images with many valid pixels weigh more.
Each accumulator says which one it uses.  All accumulators keep their state as plain Python
numbers and lists (`state()`), so states from several torchrun ranks can be gathered (e.g. with
torch.distributed.all_gather_object) and combined with `merge(states)`.
"""
from __future__ import annotations

import math
from typing import Any, Iterable

import numpy as np

from ..errors import InputError
from ..image import as_flow, as_mask, to_numpy

__all__ = ["KITTI2012_THRESHOLDS", "SINTEL_SPEED_BINS", "SINTEL_DISTANCE_BINS", "epe_map", "epe", "angular_error",
           "outlier_rate", "boundary_distance", "SintelMetrics", "Kitti2012Metrics", "Kitti2015Metrics", "summary"]

KITTI2012_THRESHOLDS = (2, 3, 4, 5)
SINTEL_SPEED_BINS = (("s0-10", 0.0, 10.0), ("s10-40", 10.0, 40.0), ("s40+", 40.0, math.inf))
SINTEL_DISTANCE_BINS = (("d0-10", 0.0, 10.0), ("d10-60", 10.0, 60.0), ("d60-140", 60.0, 140.0))


# ----------------------------------------------------------------------------- input checks

def _prepare(flow: Any, gt: Any, valid: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """float64 flow and gt, and the mask of scored pixels (valid & finite gt)."""
    flow, gt = (as_flow(x, name, np.float64, nonempty=False) for x, name in ((flow, "flow"), (gt, "gt")))
    if flow.shape != gt.shape:
        raise InputError(f"flow and gt differ in size: {tuple(flow.shape)} vs {tuple(gt.shape)}")
    if not np.isfinite(flow).all():
        raise InputError("flow contains NaN or infinite values; fix the method (metrics do not skip them)")
    mask = np.isfinite(gt).all(axis=2)
    v = as_mask(valid, flow.shape[:2], "valid")
    if v is not None:
        mask &= v
    gt = np.where(mask[..., None], gt, 0.0)
    return flow, gt, mask


def _epe(flow: np.ndarray, gt: np.ndarray) -> np.ndarray:
    d = flow - gt
    return np.sqrt(d[..., 0] ** 2 + d[..., 1] ** 2)


def _mean(x: np.ndarray) -> float:
    return float(x.mean()) if x.size else float("nan")


# ----------------------------------------------------------------------------- single-image metrics

def epe_map(flow: Any, gt: Any, valid: Any = None) -> np.ndarray:
    """End-point error per pixel: |flow - gt| (float32 H×W, pixels).

    flow, gt: H×W×2, pixels, x first.  NaN where gt is not finite or `valid` is False; NaN in flow
    raises InputError."""
    f, g, mask = _prepare(flow, gt, valid)
    out = _epe(f, g).astype(np.float32)
    out[~mask] = np.nan
    return out


def epe(flow: Any, gt: Any, valid: Any = None) -> float:
    """Mean end-point error in pixels over the valid pixels of one image (NaN if none is valid)."""
    f, g, mask = _prepare(flow, gt, valid)
    return _mean(_epe(f, g)[mask])


def _angular(f: np.ndarray, g: np.ndarray) -> np.ndarray:
    # Angle between the space-time vectors (u, v, 1) and (ug, vg, 1) (Barron et al.), radians.
    num = f[..., 0] * g[..., 0] + f[..., 1] * g[..., 1] + 1.0
    den = np.sqrt((f[..., 0] ** 2 + f[..., 1] ** 2 + 1.0) * (g[..., 0] ** 2 + g[..., 1] ** 2 + 1.0))
    return np.arccos(np.clip(num / den, -1.0, 1.0))


def angular_error(flow: Any, gt: Any, valid: Any = None) -> float:
    """Mean angular error in degrees between (u, v, 1) and (u_gt, v_gt, 1) over valid pixels."""
    f, g, mask = _prepare(flow, gt, valid)
    return float(np.degrees(_mean(_angular(f, g)[mask])))


def _outliers(err: np.ndarray, gt_mag: np.ndarray, threshold: float, relative: float | None) -> np.ndarray:
    out = err > threshold
    if relative is not None:
        out &= err > relative * gt_mag
    return out


def outlier_rate(flow: Any, gt: Any, valid: Any = None, threshold: float = 3.0,
                 relative: float | None = None) -> float:
    """Share of valid pixels, in percent, whose EPE exceeds `threshold` pixels (Out-k px).

    With `relative` (e.g. 0.05 for KITTI 2015 Fl) a pixel must also have EPE > relative * |gt|."""
    if not threshold >= 0:
        raise InputError(f"threshold must be >= 0 pixels, got {threshold}")
    f, g, mask = _prepare(flow, gt, valid)
    err = _epe(f, g)[mask]
    mag = np.hypot(g[..., 0], g[..., 1])[mask]
    return 100.0 * _mean(_outliers(err, mag, threshold, relative).astype(np.float64))


def boundary_distance(occlusion: Any) -> np.ndarray:
    """Distance in pixels (float32 H×W) from each pixel to the nearest occlusion boundary.

    A boundary pixel is one whose occlusion label differs from one of its 4 neighbours; its distance
    is 0.  Without any boundary every distance is +inf."""
    import cv2

    occ = to_numpy(occlusion, "occlusion").astype(bool)
    if occ.ndim != 2:
        raise InputError(f"occlusion must be H×W bool, got shape {tuple(occ.shape)}")
    edge = np.zeros_like(occ)
    dx = occ[:, 1:] != occ[:, :-1]
    dy = occ[1:, :] != occ[:-1, :]
    edge[:, 1:] |= dx
    edge[:, :-1] |= dx
    edge[1:, :] |= dy
    edge[:-1, :] |= dy
    if not edge.any():
        return np.full(occ.shape, np.inf, dtype=np.float32)
    # distanceTransform measures the distance to the nearest zero pixel.
    return cv2.distanceTransform((~edge).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)


# ----------------------------------------------------------------------------- accumulators

class _Accumulator:
    """Shared state plumbing: `_state` holds only plain numbers, lists and dicts of them."""

    def __init__(self) -> None:
        self._state: dict[str, Any] = self._empty()

    def _empty(self) -> dict[str, Any]:  # pragma: no cover - overridden
        raise NotImplementedError

    def state(self) -> dict[str, Any]:
        """A copy of the accumulated state: plain Python numbers and lists (picklable, JSON-able)."""
        import copy

        return copy.deepcopy(self._state)

    def merge(self, states: Iterable[dict[str, Any]]) -> "_Accumulator":
        """Add the states of other accumulators (e.g. gathered from other ranks) into this one."""
        for st in states:
            if set(st) != set(self._state):
                raise InputError(f"cannot merge a state with keys {sorted(st)} into {type(self).__name__} "
                                 f"(expected {sorted(self._state)})")
            for key, val in st.items():
                if isinstance(val, list):
                    self._state[key] = self._state[key] + list(val)
                elif isinstance(val, dict):
                    cur = self._state[key]
                    for k, v in val.items():
                        cur[k] = cur.get(k, 0) + v
                else:
                    self._state[key] += val
        return self

    @classmethod
    def from_states(cls, states: Iterable[dict[str, Any]]) -> "_Accumulator":
        """A fresh accumulator holding the sum of `states`."""
        return cls().merge(states)


def _add_region(state: dict[str, Any], name: str, err: np.ndarray, region: np.ndarray) -> None:
    state["sum"][name] = state["sum"].get(name, 0.0) + float(err[region].sum())
    state["count"][name] = state["count"].get(name, 0) + int(region.sum())


class SintelMetrics(_Accumulator):
    """Sintel protocol, POOLED over images: EPE sums and pixel counts add up over all pixels of all
    images, then one division (as the Sintel server evaluates a whole pass).

    Regions (each restricted to valid pixels): "all"; "matched" (not occluded) and "unmatched"
    (occluded) when an occlusion mask is given; speed bins s0-10, s10-40, s40+ by |gt| in pixels
    ([lo, hi)); distance bins d0-10, d10-60, d60-140 by the distance to the nearest occlusion boundary
    (see boundary_distance; over all valid pixels, matched or not; only with an occlusion mask).
    result() gives "EPE-<region>" in pixels and "n-<region>" pixel counts; a region without pixels
    gives NaN."""

    REGIONS = ("all", "matched", "unmatched") + tuple(b[0] for b in SINTEL_SPEED_BINS) \
        + tuple(b[0] for b in SINTEL_DISTANCE_BINS)

    def _empty(self) -> dict[str, Any]:
        return {"sum": {}, "count": {}, "images": 0}

    def add(self, flow: Any, gt: Any, valid: Any = None, occlusion: Any = None) -> dict[str, float]:
        """Score one image (flow, gt H×W×2 pixels; valid, occlusion H×W bool, True = occluded).
        Returns this image's EPE per region (pixels)."""
        f, g, mask = _prepare(flow, gt, valid)
        occ = as_mask(occlusion, mask.shape, "occlusion")
        err = _epe(f, g)
        mag = np.hypot(g[..., 0], g[..., 1])
        regions = {"all": mask}
        if occ is not None:
            regions["matched"] = mask & ~occ
            regions["unmatched"] = mask & occ
        for name, lo, hi in SINTEL_SPEED_BINS:
            regions[name] = mask & (mag >= lo) & (mag < hi)
        if occ is not None:
            dist = boundary_distance(occ)
            for name, lo, hi in SINTEL_DISTANCE_BINS:
                regions[name] = mask & (dist >= lo) & (dist < hi)
        for name, region in regions.items():
            _add_region(self._state, name, err, region)
        self._state["images"] += 1
        return {f"EPE-{k}": _mean(err[r]) for k, r in regions.items()}

    def result(self) -> dict[str, float]:
        s, c = self._state["sum"], self._state["count"]
        out: dict[str, float] = {"images": self._state["images"]}
        for name in self.REGIONS:
            if name in c:
                out[f"EPE-{name}"] = s[name] / c[name] if c[name] else float("nan")
                out[f"n-{name}"] = c[name]
        return out


class Kitti2012Metrics(_Accumulator):
    """KITTI 2012 protocol, PER IMAGE then averaged over images (as the devkit does).

    For each image: Out-<k> = percent of scored pixels with EPE > k px (k = 2, 3, 4, 5) and Avg = mean
    EPE (px), on the "All" mask (flow_occ ground truth) and, when given, the "Noc" mask (flow_noc).
    result() keys: "Out-Noc-3", "Out-All-3", ..., "Avg-Noc", "Avg-All" (the mean over images), and
    "images".  An image with no scored pixels in a mask is left out of that mask's average (the devkit
    would divide by zero)."""

    def _empty(self) -> dict[str, Any]:
        return {"all": [], "noc": [], "images": 0}

    @staticmethod
    def _per_image(err: np.ndarray, mask: np.ndarray) -> list[float] | None:
        e = err[mask]
        if not e.size:
            return None
        return [float(e.mean())] + [100.0 * float((e > k).mean()) for k in KITTI2012_THRESHOLDS]

    def add(self, flow: Any, gt: Any, valid: Any = None, noc_valid: Any = None) -> dict[str, float]:
        """Score one image.  gt: the flow_occ ground truth (H×W×2, pixels) with its mask `valid`;
        noc_valid: the flow_noc mask (its flow values equal flow_occ where both are valid).
        Returns this image's numbers."""
        f, g, mask = _prepare(flow, gt, valid)
        err = _epe(f, g)
        out: dict[str, float] = {}
        masks = {"all": mask}
        noc = as_mask(noc_valid, mask.shape, "noc_valid")
        if noc is not None:
            masks["noc"] = mask & noc
        for key, m in masks.items():
            row = self._per_image(err, m)
            if row is not None:
                self._state[key].append(row)
                out.update(self._row_dict(key, row))
        self._state["images"] += 1
        return out

    @staticmethod
    def _row_dict(key: str, row: list[float]) -> dict[str, float]:
        tag = "Noc" if key == "noc" else "All"
        d = {f"Avg-{tag}": row[0]}
        d.update({f"Out-{tag}-{k}": v for k, v in zip(KITTI2012_THRESHOLDS, row[1:])})
        return d

    def result(self) -> dict[str, float]:
        out: dict[str, float] = {"images": self._state["images"]}
        for key in ("noc", "all"):
            rows = self._state[key]
            if rows:
                mean = np.mean(np.asarray(rows, dtype=np.float64), axis=0).tolist()
                out.update(self._row_dict(key, mean))
        return out


class Kitti2015Metrics(_Accumulator):
    """KITTI 2015 protocol, POOLED over images (as the devkit does): outlier and pixel counts are
    summed over all images, then divided once.

    A pixel is an outlier when its EPE > 3 px AND EPE > 5 % of |gt|.  Fl-all = percent outliers
    among all scored pixels; Fl-bg / Fl-fg split them by obj_map (0 = background, > 0 = a moving
    object) when it is given; the "-noc" keys use the non-occluded mask when it is given.  EPE-all /
    EPE-noc (pixels) are pooled means too.  Regions with no pixels give NaN."""

    THRESHOLD = 3.0
    RELATIVE = 0.05

    def _empty(self) -> dict[str, Any]:
        return {"outliers": {}, "count": {}, "epe_sum": {}, "images": 0}

    def add(self, flow: Any, gt: Any, valid: Any = None, obj_map: Any = None,
            noc_valid: Any = None) -> dict[str, float]:
        """Score one image: flow, gt H×W×2 pixels; valid = flow_occ mask; obj_map H×W (nonzero =
        foreground); noc_valid = flow_noc mask.  Returns this image's Fl numbers (percent)."""
        f, g, mask = _prepare(flow, gt, valid)
        err = _epe(f, g)
        bad = _outliers(err, np.hypot(g[..., 0], g[..., 1]), self.THRESHOLD, self.RELATIVE)
        obj = None if obj_map is None else to_numpy(obj_map, "obj_map")
        if obj is not None and obj.shape != mask.shape:
            raise InputError(f"obj_map must be H×W = {mask.shape}, got shape {tuple(obj.shape)}")
        noc = as_mask(noc_valid, mask.shape, "noc_valid")
        bases = {"": mask} if noc is None else {"": mask, "-noc": mask & noc}
        out: dict[str, float] = {}
        st = self._state
        for suffix, base in bases.items():
            regions = {"all": base}
            if obj is not None:
                regions["bg"], regions["fg"] = base & (obj == 0), base & (obj != 0)
            for part, region in regions.items():
                key = f"{part}{suffix}"
                n, nb = int(region.sum()), int(bad[region].sum())
                st["outliers"][key] = st["outliers"].get(key, 0) + nb
                st["count"][key] = st["count"].get(key, 0) + n
                out[f"Fl-{key}"] = 100.0 * nb / n if n else float("nan")
            st["epe_sum"][suffix] = st["epe_sum"].get(suffix, 0.0) + float(err[base].sum())
        st["images"] += 1
        return out

    def result(self) -> dict[str, float]:
        st = self._state
        out: dict[str, float] = {"images": st["images"]}
        for key in sorted(st["count"]):
            n = st["count"][key]
            out[f"Fl-{key}"] = 100.0 * st["outliers"][key] / n if n else float("nan")
        for suffix, total in sorted(st["epe_sum"].items()):
            n = st["count"][f"all{suffix}"]
            out[f"EPE-{'noc' if suffix else 'all'}"] = total / n if n else float("nan")
        return out


def summary(flow: Any, gt: Any, valid: Any = None, occlusion: Any = None) -> dict[str, float]:
    """The usual numbers for one image (what `flowmatch compare` prints): EPE (px), AE (degrees),
    Out-1/3/5 (percent), Fl (KITTI 2015 rule, percent), the number of scored pixels, and with an
    occlusion mask EPE-matched / EPE-unmatched."""
    f, g, mask = _prepare(flow, gt, valid)
    err = _epe(f, g)[mask]
    mag = np.hypot(g[..., 0], g[..., 1])[mask]
    out = {
        "EPE": _mean(err),
        "AE": float(np.degrees(_mean(_angular(f, g)[mask]))),
        "Out-1": 100.0 * _mean((err > 1).astype(np.float64)),
        "Out-3": 100.0 * _mean((err > 3).astype(np.float64)),
        "Out-5": 100.0 * _mean((err > 5).astype(np.float64)),
        "Fl": 100.0 * _mean(_outliers(err, mag, 3.0, 0.05).astype(np.float64)),
        "n_valid": int(mask.sum()),
    }
    occ = as_mask(occlusion, mask.shape, "occlusion")
    if occ is not None:
        full = _epe(f, g)
        out["EPE-matched"] = _mean(full[mask & ~occ])
        out["EPE-unmatched"] = _mean(full[mask & occ])
    return out
