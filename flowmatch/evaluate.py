"""Dataset evaluation: run a registered flow method over an official benchmark layout and score it.

    from flowmatch.evaluate import evaluate
    report = evaluate("sintel", "/data/Sintel", method="dis-medium", pass_="final", out="runs/sintel")

Metrics follow the official devkits by default (flowmatch.metrics):
- Sintel: EPE over all valid pixels, matched / unmatched, speed bins s0-10 / s10-40 / s40+ (pooled).
- KITTI 2012: Out-Noc / Out-All (> 3 px) and Avg-Noc / Avg-All, per image then averaged over images.
- KITTI 2015: Fl-all pooled over all images (outlier: > 3 px and > 5 % of |gt|); Fl-bg / Fl-fg when
  the layout has obj_map.
- Chairs, Middlebury: average end-point error and angular error per image, averaged over images.

Per-frame results (EPE, >3 px outliers, time) and the aggregate are written as JSON and as a
Markdown table under `out`.  Under `torchrun --nproc_per_node N` frames are sharded across ranks
(frame i on rank i mod N) and the metric states are gathered to rank 0 and merged in frame order,
so the result is identical to a one-process run.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import time
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import numpy as np

from ._atomic import atomic_open
from .errors import DatasetLayoutError, FlowmatchError, InputError
from .methods.registry import get_method

DATASETS = ("sintel", "kitti2012", "kitti2015", "middlebury", "chairs")


# --- datasets -------------------------------------------------------------------------------------

def open_dataset(dataset: str, root: str, split: str = "training", pass_: str = "clean") -> Sequence[Any]:
    """The dataset `dataset` under `root` as a sequence of FlowSample (flowmatch.data.datasets).

    KITTI samples hold the all-pixels ("occ") ground truth, with the non-occluded mask in
    meta["noc_valid"], since the official tables report both."""
    if dataset not in DATASETS:
        raise InputError(f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}")
    if not root or not os.path.isdir(root):
        raise DatasetLayoutError(f"dataset root {root!r} is not a folder; pass --root PATH to the "
                                 f"{dataset} dataset (the folder holding its official layout)")
    from .data import datasets as ds

    if dataset == "sintel":
        if pass_ not in ("clean", "final"):
            raise InputError(f"--pass must be clean or final, got {pass_!r}")
        return ds.Sintel(root, split=split, pass_=pass_)
    if dataset in ("kitti2012", "kitti2015"):
        # sample.flow/valid = flow_occ (all pixels); meta["noc_valid"] = the flow_noc mask
        return ds.Kitti(root, year=int(dataset[-4:]), split=split, gt="occ")
    if dataset == "chairs":
        return ds.FlyingChairs(root, split={"training": "train", "validation": "val"}.get(split, split))
    return ds.Middlebury(root, split=split)


# --- metrics --------------------------------------------------------------------------------------

class ImageMeanMetrics:
    """Per-image mean EPE, angular error and >3 px outlier share, averaged over images
    (Middlebury's and Chairs' convention).  Same state()/merge() protocol as flowmatch.metrics."""

    def __init__(self) -> None:
        self.epe: list[float] = []
        self.ae: list[float] = []
        self.out3: list[float] = []

    def add(self, flow: np.ndarray, gt: np.ndarray, valid: np.ndarray | None = None) -> None:
        from . import metrics as M
        self.epe.append(float(M.epe(flow, gt, valid)))
        self.ae.append(float(M.angular_error(flow, gt, valid)))
        self.out3.append(float(M.outlier_rate(flow, gt, valid, threshold=3.0)))

    def state(self) -> dict:
        return {"epe": list(self.epe), "ae": list(self.ae), "out3": list(self.out3)}

    def merge(self, states: Sequence[dict]) -> "ImageMeanMetrics":
        for st in states:
            self.epe += st["epe"]
            self.ae += st["ae"]
            self.out3 += st["out3"]
        return self

    def result(self) -> dict:
        mean = lambda xs: float(np.mean(xs)) if xs else float("nan")  # noqa: E731
        return {"epe": mean(self.epe), "angular_error": mean(self.ae), "outliers_3px": mean(self.out3),
                "images": len(self.epe)}


def _new_accumulator(dataset: str) -> Any:
    from . import metrics as M
    if dataset == "sintel":
        return M.SintelMetrics()
    if dataset == "kitti2012":
        return M.Kitti2012Metrics()
    if dataset == "kitti2015":
        return M.Kitti2015Metrics()
    return ImageMeanMetrics()


def _accumulate(dataset: str, acc: Any, sample: Any, flow: np.ndarray) -> None:
    """Feed one frame to the dataset's official accumulator."""
    meta = sample.meta or {}
    if dataset == "sintel":
        acc.add(flow, sample.flow, valid=sample.valid, occlusion=sample.occlusion)
    elif dataset == "kitti2012":
        acc.add(flow, sample.flow, sample.valid, noc_valid=meta.get("noc_valid"))
    elif dataset == "kitti2015":
        acc.add(flow, sample.flow, sample.valid, obj_map=meta.get("obj_map"), noc_valid=meta.get("noc_valid"))
    else:
        acc.add(flow, sample.flow, sample.valid)


def _merge(dataset: str, states: Sequence[dict]) -> Any:
    """A fresh accumulator holding `states` merged in the given order."""
    acc = _new_accumulator(dataset)
    merged = acc.merge(list(states))
    return merged if merged is not None else acc


# --- distributed ----------------------------------------------------------------------------------

@dataclass
class _Dist:
    rank: int = 0
    world: int = 1
    owns_group: bool = False


def _init_dist() -> _Dist:
    """Join the torchrun process group when launched by torchrun (gloo works for CPU-only ranks)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return _Dist()
    import torch.distributed as dist
    owns = False
    if not dist.is_initialized():
        import torch
        backend = "nccl" if torch.cuda.is_available() and os.environ.get("FLOWMATCH_DIST_BACKEND") != "gloo" else "gloo"
        dist.init_process_group(backend=backend)
        owns = True
    return _Dist(dist.get_rank(), dist.get_world_size(), owns)


def _gather(obj: Any, d: _Dist) -> list[Any]:
    if d.world == 1:
        return [obj]
    import torch.distributed as dist
    out: list[Any] = [None] * d.world
    dist.all_gather_object(out, obj)
    return out


@contextlib.contextmanager
def _shared_failure(d: _Dist) -> Iterator[None]:
    """Run a rank's share of the work; then tell every rank whether any rank failed.

    Without this, one rank raising (bad frame, method error) would leave the others waiting in the
    next collective until the gloo timeout.  The failing rank re-raises its own exception; the
    others raise FlowmatchError naming it."""
    error: BaseException | None = None
    try:
        yield
    except Exception as exc:  # noqa: BLE001 - re-raised below, after the other ranks know
        error = exc
    if d.world > 1:
        reports = _gather(None if error is None else f"{type(error).__name__}: {error}", d)
        if error is None:
            failed = [(r, msg) for r, msg in enumerate(reports) if msg is not None]
            if failed:
                raise FlowmatchError(f"rank {failed[0][0]} failed: {failed[0][1]}")
    if error is not None:
        raise error


def _leave_dist(d: _Dist) -> None:
    if d.owns_group:
        import torch.distributed as dist
        dist.destroy_process_group()


# --- the harness ----------------------------------------------------------------------------------

def _frame_name(sample: Any, index: int) -> str:
    name = getattr(sample, "name", "") or f"{index:06d}"
    return str(name).replace(os.sep, "_")


def _frame_record(index: int, name: str, flow: np.ndarray, sample: Any, seconds: float) -> dict:
    from . import metrics as M
    rec: dict[str, Any] = {"index": index, "name": name, "seconds": round(seconds, 4)}
    if sample.flow is not None:
        valid = sample.valid
        rec["epe"] = float(M.epe(flow, sample.flow, valid))
        rec["outliers_3px"] = float(M.outlier_rate(flow, sample.flow, valid, threshold=3.0))
        rec["valid_pixels"] = int(np.count_nonzero(valid)) if valid is not None else int(flow.shape[0] * flow.shape[1])
    return rec


def evaluate(dataset: str, root: str, method: str, *, split: str = "training", pass_: str = "clean",
             limit: int | None = None, out: str | None = None, panels: bool = False, device: str = "cpu",
             options: dict[str, Any] | None = None, progress: bool = True,
             samples: Sequence[Any] | None = None) -> dict:
    """Evaluate `method` on a dataset; returns {"dataset", "method", ..., "metrics", "frames"}.

    Args:
        dataset: one of DATASETS; root: the folder with the official layout.
        method: a registered method name (flowmatch.methods()).
        split: "training" (has ground truth) or another split the dataset reader knows.
        pass_: Sintel pass, "clean" or "final".
        limit: evaluate only the first `limit` frames.
        out: folder for results.json, results.md and (with panels) panels/<frame>.png.
        options: method options (see the method's `defaults`).
        samples: evaluate these FlowSample objects instead of opening `root` (tests, custom data).
    Under torchrun every rank must call this; all ranks return the same report; rank 0 writes files.
    """
    from .methods.registry import flow as run_flow

    m = get_method(method)  # unknown names fail before any data is read
    reason = m.unavailable_reason()
    if reason is not None:
        from .errors import MethodUnavailableError
        raise MethodUnavailableError(f"method {method!r} cannot run here: {reason}")
    if limit is not None and limit < 1:
        raise InputError(f"--limit must be at least 1, got {limit}")
    data = samples if samples is not None else open_dataset(dataset, root, split=split, pass_=pass_)
    n = len(data) if limit is None else min(limit, len(data))
    if n == 0:
        raise DatasetLayoutError(f"no frames found for {dataset} ({split}) under {root!r}")
    d = _init_dist()
    states: dict[int, dict] = {}
    records: list[dict] = []
    try:
        with _shared_failure(d):
            mine = list(range(d.rank, n, d.world))
            bar = _progress(len(mine), enabled=progress and d.rank == 0, desc=f"{dataset}:{method}")
            epes: list[float] = []
            for i in mine:
                sample = data[i]
                name = _frame_name(sample, i)
                if sample.flow is None:
                    raise DatasetLayoutError(f"frame {name!r} of {dataset} ({split}) has no ground truth; "
                                             f"evaluate the training split (use `flowmatch submit` for test)")
                t0 = time.perf_counter()
                flow = run_flow(sample.img1, sample.img2, method=method, device=device, **(options or {}))
                seconds = time.perf_counter() - t0
                acc = _new_accumulator(dataset)
                _accumulate(dataset, acc, sample, flow)
                states[i] = acc.state()
                rec = _frame_record(i, name, flow, sample, seconds)
                records.append(rec)
                if out and panels:
                    from .viz import save_panel
                    save_panel(os.path.join(out, "panels", f"{name}.png"), sample.img1, flow,
                               gt=sample.flow, valid=sample.valid)
                epes.append(rec["epe"])
                if bar is not None:
                    bar.set_postfix(epe=f"{np.mean(epes):.3f}")
                    bar.update(1)
            if bar is not None:
                bar.close()
        gathered = _gather((states, records), d)
    finally:
        _leave_dist(d)
    all_states: dict[int, dict] = {}
    all_records: list[dict] = []
    for st, rec in gathered:
        all_states.update(st)
        all_records += rec
    all_records.sort(key=lambda r: r["index"])
    acc = _merge(dataset, [all_states[i] for i in sorted(all_states)])
    report = {
        "dataset": dataset, "root": os.path.abspath(root) if root else None, "split": split,
        "pass": pass_ if dataset == "sintel" else None, "method": method, "options": options or {},
        "device": device, "frames_evaluated": len(all_records), "world_size": d.world,
        "metrics": _jsonable(acc.result()),
        "mean_seconds_per_frame": float(np.mean([r["seconds"] for r in all_records])),
        "frames": _jsonable(all_records),
    }
    if out and d.rank == 0:
        write_report(report, out)
    return report


def _progress(total: int, enabled: bool, desc: str) -> Any:
    if not enabled:
        return None
    from tqdm import tqdm
    return tqdm(total=total, desc=desc, unit="frame", dynamic_ncols=True)


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.floating, float)):
        return None if not math.isfinite(float(x)) else float(x)
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    return x


def markdown_report(report: dict) -> str:
    """The report as Markdown: the aggregate metrics, then one row per frame."""
    lines = [f"# {report['method']} on {report['dataset']} ({report['split']}"
             + (f", {report['pass']} pass" if report.get("pass") else "") + ")", "",
             "| metric | value |", "|---|---|"]
    for k, v in _flatten(report["metrics"]).items():
        lines.append(f"| {k} | {_fmt(v)} |")
    lines.append(f"| seconds per frame | {_fmt(report['mean_seconds_per_frame'])} |")
    lines += ["", "| frame | EPE | >3 px | seconds |", "|---|---|---|---|"]
    for r in report["frames"]:
        lines.append(f"| {r['name']} | {_fmt(r.get('epe'))} | {_fmt(r.get('outliers_3px'))} | {_fmt(r['seconds'])} |")
    return "\n".join(lines) + "\n"


def _flatten(d: dict, prefix: str = "") -> dict:
    flat: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            flat.update(_flatten(v, key + "/"))
        elif not isinstance(v, list):
            flat[key] = v
    return flat


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4f}"
    return str(v)


def write_report(report: dict, out: str) -> None:
    """Write results.json and results.md into `out` (each atomically)."""
    os.makedirs(out, exist_ok=True)
    with atomic_open(os.path.join(out, "results.json"), "w") as fh:
        json.dump(report, fh, indent=2)
    with atomic_open(os.path.join(out, "results.md"), "w") as fh:
        fh.write(markdown_report(report))


__all__ = ["DATASETS", "ImageMeanMetrics", "evaluate", "markdown_report", "open_dataset", "write_report"]

