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

import os
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from ..distributed import DistInfo, collective_backend, distributed, gather_objects, shard, shared_failure
from ..errors import DatasetLayoutError, InputError, MethodUnavailableError
from ..methods.registry import flow as run_flow
from ..methods.registry import get_method
from . import metrics as M
from .accumulators import accumulate, merge_states, new_accumulator
from .datasets import open_dataset
from .report import jsonable, write_report

__all__ = ["evaluate", "check_method", "MethodRun"]


@dataclass(frozen=True)
class MethodRun:
    """How to run the method on every frame: its name, the device and its options."""
    method: str
    device: str = "cpu"
    options: dict[str, Any] = field(default_factory=dict)

    def flow(self, img1: Any, img2: Any) -> np.ndarray:
        """H×W×2 float32 flow (pixels, x first) from img1 to img2."""
        return run_flow(img1, img2, method=self.method, device=self.device, **self.options)


def check_method(method: str) -> None:
    """Fail early (before any data is read) on an unknown method or one that cannot run here."""
    reason = get_method(method).unavailable_reason()
    if reason is not None:
        raise MethodUnavailableError(f"method {method!r} cannot run here: {reason}")


def progress_bar(total: int, enabled: bool, desc: str) -> Any:
    """A tqdm bar (None when not enabled)."""
    if not enabled:
        return None
    from tqdm import tqdm
    return tqdm(total=total, desc=desc, unit="frame", dynamic_ncols=True)


def _frame_name(sample: Any, index: int) -> str:
    name = getattr(sample, "name", "") or f"{index:06d}"
    return str(name).replace(os.sep, "_")


def _frame_record(index: int, name: str, flow: np.ndarray, sample: Any, seconds: float) -> dict:
    rec: dict[str, Any] = {"index": index, "name": name, "seconds": round(seconds, 4)}
    if sample.flow is not None:
        valid = sample.valid
        rec["epe"] = float(M.epe(flow, sample.flow, valid))
        rec["outliers_3px"] = float(M.outlier_rate(flow, sample.flow, valid, threshold=3.0))
        rec["valid_pixels"] = int(np.count_nonzero(valid)) if valid is not None else int(flow.shape[0] * flow.shape[1])
    return rec


def _score_frames(data: Sequence[Any], n: int, dataset: str, split: str, run: MethodRun, panels_dir: str | None,
                  bar: Any, dist: DistInfo) -> tuple[dict[int, dict], list[dict]]:
    """This rank's share of the first n frames: (metric state per frame index, per-frame records);
    a panel PNG per frame into panels_dir unless it is None."""
    states: dict[int, dict] = {}
    records: list[dict] = []
    for i in shard(range(n), dist):
        sample = data[i]
        name = _frame_name(sample, i)
        if sample.flow is None:
            raise DatasetLayoutError(f"frame {name!r} of {dataset} ({split}) has no ground truth; "
                                     f"evaluate the training split (use `flowmatch submit` for test)")
        t0 = time.perf_counter()
        flow = run.flow(sample.img1, sample.img2)
        seconds = time.perf_counter() - t0
        acc = new_accumulator(dataset)
        accumulate(dataset, acc, sample, flow)
        states[i] = acc.state()
        records.append(_frame_record(i, name, flow, sample, seconds))
        if panels_dir is not None:
            from ..viz import save_panel
            save_panel(os.path.join(panels_dir, f"{name}.png"), sample.img1, flow, gt=sample.flow, valid=sample.valid)
        if bar is not None:
            bar.set_postfix(epe=f"{np.mean([r['epe'] for r in records]):.3f}")
            bar.update(1)
    if bar is not None:
        bar.close()
    return states, records


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
    check_method(method)
    if limit is not None and limit < 1:
        raise InputError(f"--limit must be at least 1, got {limit}")
    data = samples if samples is not None else open_dataset(dataset, root, split=split, pass_=pass_)
    n = len(data) if limit is None else min(limit, len(data))
    if n == 0:
        raise DatasetLayoutError(f"no frames found for {dataset} ({split}) under {root!r}")
    with distributed(backend=collective_backend()) as dist:
        with shared_failure(dist):
            bar = progress_bar(len(shard(range(n), dist)), progress and dist.is_main, f"{dataset}:{method}")
            run = MethodRun(method, device, dict(options or {}))
            panels_dir = os.path.join(out, "panels") if out and panels else None
            mine = _score_frames(data, n, dataset, split, run, panels_dir, bar, dist)
        gathered = gather_objects(mine, dist)
    all_states: dict[int, dict] = {}
    all_records: list[dict] = []
    for st, rec in gathered:
        all_states.update(st)
        all_records += rec
    all_records.sort(key=lambda r: r["index"])
    acc = merge_states(dataset, [all_states[i] for i in sorted(all_states)])
    report = {
        "dataset": dataset, "root": os.path.abspath(root) if root else None, "split": split,
        "pass": pass_ if dataset == "sintel" else None, "method": method, "options": options or {},
        "device": device, "frames_evaluated": len(all_records), "world_size": dist.world_size,
        "metrics": jsonable(acc.result()),
        "mean_seconds_per_frame": float(np.mean([r["seconds"] for r in all_records])),
        "frames": jsonable(all_records),
    }
    if out and dist.is_main:
        write_report(report, out)
    return report
