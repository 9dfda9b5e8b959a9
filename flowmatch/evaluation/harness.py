"""Dataset evaluation: run a registered flow method over an official benchmark layout and score it.

    from flowmatch.evaluate import evaluate
    report = evaluate("sintel", "/data/Sintel", method="dis-medium", pass_="final", out="runs/sintel")

Metrics follow the official devkits by default (flowmatch.metrics):
- Sintel: EPE over all valid pixels, matched / unmatched, speed bins s0-10 / s10-40 / s40+ (pooled).
- KITTI 2012: Out-Noc / Out-All (> 3 px) and Avg-Noc / Avg-All, per image then averaged over images.
- KITTI 2015: Fl-all pooled over all images (outlier: > 3 px and > 5 % of |gt|); Fl-bg / Fl-fg when
  the layout has obj_map.
- Chairs, Middlebury: average end-point error and angular error per image, averaged over images.
Names and units of every key: flowmatch.evaluation.names (outlier shares are percent).

Per-frame results (EPE, >3 px outliers, the dataset's own per-frame numbers, time) and the aggregate
are written as JSON and as a Markdown table under `out`, with a per-frame results cache
(flowmatch.evaluation.cache) that `resume=True` reuses: an interrupted run (error, Ctrl-C, SIGTERM)
keeps every finished frame, and the resumed result is identical to one uninterrupted run.  Under
`torchrun --nproc_per_node N` frames are sharded across ranks (frame i on rank i mod N), each rank
caches its own frames, and the metric states are gathered to every rank and merged in frame order,
so the result is identical to a one-process run.
"""
from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field, replace
from typing import Any, Sequence

import numpy as np

from .._atomic import clean_stale_temps
from .._signals import GracefulStop, Interrupted
from ..distributed import (DistInfo, collective_backend, distributed, gather_objects, rank_device, shard,
                           shared_check, shared_failure)
from ..errors import DatasetLayoutError, InputError, MethodUnavailableError
from ..methods.registry import flow as run_flow
from ..methods.registry import get_method
from . import cache as C
from . import metrics as M
from .accumulators import accumulate, merge_states, new_accumulator
from .datasets import open_dataset
from .report import jsonable, write_report

__all__ = ["evaluate", "check_method", "MethodRun"]
log = logging.getLogger(__name__)


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


def _names(data: Sequence[Any], n: int) -> list[str] | None:
    """Frame names without loading any frame (dataset readers list their pairs), else None."""
    pairs = getattr(data, "frame_pairs", None)
    if pairs is None:
        return None
    return [_frame_name(p, i) for i, p in enumerate(pairs[:n])]


def _frame_record(index: int, name: str, flow: np.ndarray, sample: Any, seconds: float,
                  own: dict[str, float] | None) -> dict:
    rec: dict[str, Any] = {"index": index, "name": name, "seconds": round(seconds, 4)}
    valid = sample.valid
    rec["epe"] = float(M.epe(flow, sample.flow, valid))
    rec["outliers_3px"] = float(M.outlier_rate(flow, sample.flow, valid, threshold=3.0))
    rec["valid_pixels"] = int(np.count_nonzero(valid)) if valid is not None else int(flow.shape[0] * flow.shape[1])
    if own:
        rec["metrics"] = dict(own)
    return rec


@dataclass(frozen=True)
class _Outputs:
    """Where the per-frame files go (None: not written)."""
    cache: C.FrameCache | None = None
    panels: str | None = None
    flows: str | None = None
    run: str = ""                 # this run's token (rank "done" markers for the progress bar)

    def missing(self, name: str) -> bool:
        """Whether a cached frame lacks an output this run asked for (then it is recomputed)."""
        return any(d is not None and not os.path.exists(os.path.join(d, f"{name}{ext}"))
                   for d, ext in ((self.flows, ".flo"), (self.panels, ".png")))


class _Progress:
    """Rank 0's bar over every rank's frames: in a single process it counts its own frames; under
    torchrun with a cache folder it counts the folder's frame files (all ranks write there) and, after
    its own share, waits for every rank's done marker while it keeps counting."""

    def __init__(self, n: int, enabled: bool, desc: str, out: _Outputs, dist: DistInfo) -> None:
        self.n, self.out, self.dist = n, out, dist
        self.shared = dist.distributed and out.cache is not None
        total = n if (self.shared or not dist.distributed) else len(shard(range(n), dist))
        self.bar = progress_bar(total, enabled and dist.is_main,
                                desc + ("" if self.shared or not dist.distributed else " (rank 0's share)"))
        self.epes: list[float] = []

    def frame(self, rec: dict) -> None:
        if self.bar is None:
            return
        self.epes.append(float("nan") if rec.get("epe") is None else rec["epe"])  # None: no valid pixel
        finite = [e for e in self.epes if np.isfinite(e)]
        self.bar.set_postfix(epe=f"{np.mean(finite):.3f}" if finite else "-")
        if self.shared:
            self.bar.n = self.out.cache.count(self.n)
            self.bar.refresh()
        else:
            self.bar.update(1)

    def finish(self, stop: GracefulStop) -> None:
        """This rank's share is done: mark it; rank 0 shows the others' progress until they finish."""
        if self.shared:
            self.out.cache.mark_done(self.out.run, self.dist.rank)
            while self.dist.is_main and not stop.requested and not self.out.cache.all_done(self.out.run,
                                                                                            self.dist.world_size):
                if self.bar is not None:
                    self.bar.n = self.out.cache.count(self.n)
                    self.bar.refresh()
                time.sleep(0.5)
        if self.bar is not None:
            if self.shared:
                self.bar.n = self.out.cache.count(self.n)
            self.bar.close()


def _score_frames(data: Sequence[Any], n: int, dataset: str, split: str, run: MethodRun, out: _Outputs,
                  resume: bool, progress: _Progress, dist: DistInfo, stop: GracefulStop) -> dict[str, Any]:
    """This rank's share of the first n frames: {"states": {index: metric state}, "records": [...],
    "reused": cached frames used, "signal": the signal that stopped it early or None}."""
    states: dict[int, dict] = {}
    records: list[dict] = []
    reused = 0
    names = _names(data, n)
    try:
        for i in shard(range(n), dist):
            if stop.requested:
                break
            sample = None
            name = names[i] if names is not None else None
            if resume and out.cache is not None:
                if name is None:
                    sample = data[i]
                    name = _frame_name(sample, i)
                cached = out.cache.load(i, name)
                if cached is not None and not out.missing(name):
                    states[i], rec = cached["state"], cached["record"]
                    records.append(rec)
                    reused += 1
                    progress.frame(rec)
                    continue
            if sample is None:
                sample = data[i]
                name = _frame_name(sample, i)
            rec, states[i] = _score_one(sample, i, name, dataset, split, run, out)
            records.append(rec)
            progress.frame(rec)
    finally:
        progress.finish(stop)
    return {"states": states, "records": records, "reused": reused, "signal": stop.signal}


def _score_one(sample: Any, i: int, name: str, dataset: str, split: str, run: MethodRun,
               out: _Outputs) -> tuple[dict, dict]:
    """Compute, score and write one frame: (its record, its metric state)."""
    if sample.flow is None:
        raise DatasetLayoutError(f"frame {name!r} of {dataset} ({split}) has no ground truth; "
                                 f"evaluate the training split (use `flowmatch submit` for test)")
    t0 = time.perf_counter()
    flow = run.flow(sample.img1, sample.img2)
    seconds = time.perf_counter() - t0
    acc = new_accumulator(dataset)
    own = accumulate(dataset, acc, sample, flow)
    state = acc.state()
    rec = jsonable(_frame_record(i, name, flow, sample, seconds, own))
    # outputs first, the cache entry last: a cached frame has every output it was asked for
    if out.flows is not None:
        from ..io import write_flow
        write_flow(os.path.join(out.flows, f"{name}.flo"), flow)  # atomic (flowmatch.io)
    if out.panels is not None:
        from ..viz import save_panel
        save_panel(os.path.join(out.panels, f"{name}.png"), sample.img1, flow, gt=sample.flow, valid=sample.valid)
    if out.cache is not None:
        out.cache.store(i, name, state, rec)
    return rec, state


def _claim(out: str | None, current: dict, resume: bool, dist: DistInfo) -> C.Claim | None:
    """Rank 0 checks or writes OUT's settings record; every rank gets its answer (or its error)."""
    claimed = None
    with shared_failure(dist):
        if out and dist.is_main:
            os.makedirs(out, exist_ok=True)
            claimed = C.claim(out, current, resume)
            if claimed.discarded:
                log.warning("starting afresh in %r: %d cached frame(s) of the previous run there are discarded "
                            "(pass --resume to reuse them)", out, claimed.discarded)
    return gather_objects(claimed, dist)[0]


def evaluate(dataset: str, root: str, method: str, *, split: str = "training", pass_: str = "clean",
             limit: int | None = None, out: str | None = None, panels: bool = False, device: str = "cpu",
             options: dict[str, Any] | None = None, progress: bool = True,
             samples: Sequence[Any] | None = None, resume: bool = False, save_flows: bool = False) -> dict:
    """Evaluate `method` on a dataset; returns {"dataset", "method", ..., "metrics", "frames"}.

    Args:
        dataset: one of DATASETS; root: the folder with the official layout.
        method: a registered method name (flowmatch.methods()).
        split: "training" (has ground truth) or another split the dataset reader knows.
        pass_: Sintel pass, "clean" or "final".
        limit: evaluate only the first `limit` frames.
        out: folder for results.json, results.md, the per-frame cache (eval_settings.json,
            frames-*/), with panels panels/<frame>.png and with save_flows flows/<frame>.flo.
        options: method options (see the method's `defaults`).
        samples: evaluate these FlowSample objects instead of opening `root` (tests, custom data).
        resume: reuse the frames cached in `out` by an earlier run of the same settings (InputError
            naming the differences when its settings differ); without it a run starts afresh.
        save_flows: write every predicted flow to out/flows/<frame>.flo (pixels, x then y).
    Raises flowmatch._signals.Interrupted (a KeyboardInterrupt; exit_code 130 / 143) when SIGINT or
    SIGTERM stopped the run: the frames finished before it stay cached in `out`.
    Under torchrun every rank must call this; all ranks return the same report; rank 0 writes the report.
    """
    check_method(method)
    if limit is not None and limit < 1:
        raise InputError(f"--limit must be at least 1, got {limit}")
    if (resume or save_flows) and not out:
        raise InputError(f"{'--resume' if resume else '--save-flows'} needs --out DIR (the folder of the cache and flows)")
    data = samples if samples is not None else open_dataset(dataset, root, split=split, pass_=pass_)
    n = len(data) if limit is None else min(limit, len(data))
    if n == 0:
        raise DatasetLayoutError(f"no frames found for {dataset} ({split}) under {root!r}")
    run = MethodRun(method, device, dict(options or {}))
    current = C.settings(dataset, root if samples is None else None, split, pass_, method, run.options, device,
                         custom_samples=samples is not None) if out else None
    with GracefulStop() as stop, distributed(backend=collective_backend()) as dist:
        with shared_check(dist):  # under torchrun a bare "cuda" is this rank's GPU (the cache keeps "cuda")
            run = replace(run, device=rank_device(device, dist))
        claimed = _claim(out, current, resume, dist)
        outputs = _outputs(out, claimed, panels, save_flows, dist)
        bar = _Progress(n, progress, f"{dataset}:{method}", outputs, dist)
        with shared_failure(dist):
            mine = _score_frames(data, n, dataset, split, run, outputs, resume, bar, dist, stop)
        gathered = gather_objects(mine, dist)
        if outputs.cache is not None and dist.is_main:
            outputs.cache.clear_marks(outputs.run)
    stopped = [g["signal"] for g in gathered if g["signal"] is not None]
    done = sum(len(g["records"]) for g in gathered)
    if stopped:
        where = f"; they are cached in {out!r} (run again with --resume to finish)" if out else ""
        raise Interrupted(stopped[0], f"evaluation interrupted after {done} of {n} frames{where}")
    return _report(dataset, root, split, pass_, method, options, device, dist, gathered, out)


def _outputs(out: str | None, claimed: C.Claim | None, panels: bool, save_flows: bool, dist: DistInfo) -> _Outputs:
    if not out or claimed is None:
        return _Outputs()
    # every rank makes the folders it writes into (exist_ok: they race harmlessly)
    dirs = {"panels": os.path.join(out, "panels") if panels else None,
            "flows": os.path.join(out, "flows") if save_flows else None}
    for d in dirs.values():
        if d is not None:
            os.makedirs(d, exist_ok=True)
    if dist.is_main:  # temporaries of killed writers (this host, dead pids only; flowmatch._atomic)
        for d in (out, *(d for d in dirs.values() if d is not None)):
            clean_stale_temps(d)
    run_token = gather_objects(os.urandom(4).hex() if dist.is_main else None, dist)[0]
    return _Outputs(C.FrameCache(os.path.join(out, claimed.cache)), dirs["panels"], dirs["flows"], run_token)


def _report(dataset: str, root: str, split: str, pass_: str, method: str, options: dict | None, device: str,
            dist: DistInfo, gathered: list[dict], out: str | None) -> dict:
    all_states: dict[int, dict] = {}
    all_records: list[dict] = []
    for g in gathered:
        all_states.update({int(k): v for k, v in g["states"].items()})
        all_records += g["records"]
    all_records.sort(key=lambda r: r["index"])
    acc = merge_states(dataset, [all_states[i] for i in sorted(all_states)])
    metrics = jsonable(acc.result())
    from .names import units

    report = {
        "dataset": dataset, "root": os.path.abspath(root) if root else None, "split": split,
        "pass": pass_ if dataset == "sintel" else None, "method": method, "options": options or {},
        "device": device, "frames_evaluated": len(all_records), "world_size": dist.world_size,
        "frames_reused": sum(g["reused"] for g in gathered),
        "metrics": metrics,
        "units": units(list(metrics) + ["epe", "outliers_3px", "seconds", "mean_seconds_per_frame"]),
        "mean_seconds_per_frame": float(np.mean([r["seconds"] for r in all_records])),
        "frames": jsonable(all_records),
    }
    if out and dist.is_main:
        write_report(report, out)
    return report
