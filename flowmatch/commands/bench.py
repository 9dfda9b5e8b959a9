"""`flowmatch bench [--size WxH] [--methods a,b] [--runs N] [--device cpu|cuda|cuda:N]`: time the methods.

For each method: one warm-up call, then `runs` timed calls on a synthetic pair
(flowmatch.data.synthetic); reports the median and min wall time and the peak memory of one more
untimed call (CPU: the larger of tracemalloc's peak and the resident-memory growth sampled every
2 ms; CUDA: torch's allocator peak).  Methods that run in a child process (dualtvl1) show only
their parent-side memory.  bench_method() is also what benchmarks/bench_methods.py uses."""
from __future__ import annotations

import argparse
import gc
import os
import statistics
import threading
import time
import tracemalloc
from typing import Any

import numpy as np

from ..errors import InputError
from .flow import parse_options

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * _PAGE
    except OSError:  # not Linux: no sampling
        return 0


class PeakMemory:
    """Context manager: peak resident memory above the starting level, in bytes (`.peak`)."""

    def __init__(self, interval: float = 0.002) -> None:
        self.interval, self.peak, self._stop = interval, 0, threading.Event()

    def __enter__(self) -> "PeakMemory":
        self._base = self._max = _rss_bytes()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.is_set():
            self._max = max(self._max, _rss_bytes())
            self._stop.wait(self.interval)

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self._max = max(self._max, _rss_bytes())
        self.peak = max(0, self._max - self._base)


def parse_size(text: str) -> tuple[int, int]:
    """"WxH" -> (height, width)."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise InputError(f"--size must look like 512x384 (width x height), got {text!r}") from None
    if w < 8 or h < 8:
        raise InputError(f"--size {text!r}: width and height must be at least 8")
    return h, w


def bench_pair(height: int, width: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A synthetic pair (uint8 H×W×3 frames) to time on."""
    from ..data.synthetic import generate_pair
    p = generate_pair(height, width, seed, max_motion=min(20.0, max(2.0, min(height, width) / 16)))
    return p.img1, p.img2


def bench_method(name: str, img1: np.ndarray, img2: np.ndarray, runs: int = 5, device: str = "cpu",
                 options: dict[str, Any] | None = None, warmup: bool = True) -> dict[str, Any]:
    """Time one method: {"method", "median_s", "min_s", "runs", "peak_mb", "device"}.

    img1, img2: frames H×W×3.  Times are wall seconds per call after one warm-up call (skip it with
    warmup=False when the caller already made one); peak_mb is from one more untimed call."""
    from ..methods.registry import flow
    if runs < 1:
        raise InputError(f"--runs must be at least 1, got {runs}")
    opts = options or {}
    if warmup:
        flow(img1, img2, method=name, device=device, **opts)  # lazy loading, caches, JIT
    cuda = str(device).startswith("cuda")  # "cuda" or "cuda:N"
    if cuda:
        import torch
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        flow(img1, img2, method=name, device=device, **opts)
        if cuda:
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - t0)
    if cuda:
        peak = torch.cuda.max_memory_allocated(device)
    else:
        # One extra, untimed run for memory: tracemalloc sees numpy/OpenCV-to-numpy allocations even
        # when freed memory is reused; the RSS sampler sees native (torch, OpenCV) growth.
        gc.collect()
        tracemalloc.start()
        try:
            with PeakMemory() as mem:
                flow(img1, img2, method=name, device=device, **opts)
            peak = max(mem.peak, tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
    return {"method": name, "median_s": statistics.median(times), "min_s": min(times), "runs": runs,
            "peak_mb": peak / 2**20, "device": device}


def format_table(rows: list[dict[str, Any]], baseline: str | None = None) -> str:
    """Markdown table of bench_method rows, with each median's ratio to the baseline's."""
    base = next((r for r in rows if r["method"] == baseline and "median_s" in r), None)
    lines = ["| method | median s | min s | peak MiB | vs " + (baseline or "-") + " |", "|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['method']} | - | - | - | {r['error']} |")
            continue
        ratio = f"{r['median_s'] / base['median_s']:.2f}x" if base else "-"
        lines.append(f"| {r['method']} | {r['median_s']:.4f} | {r['min_s']:.4f} | {r['peak_mb']:.1f} | {ratio} |")
    return "\n".join(lines)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="time the flow methods at a given resolution",
                       description="Time every available method (or --methods) on a synthetic pair.")
    p.add_argument("--size", default="512x384", help="frame size WIDTHxHEIGHT (default 512x384)")
    p.add_argument("--methods", help="comma-separated method names (default: every available method)")
    p.add_argument("--runs", type=int, default=5,
                   help="timed runs per method (median reported; at most 3 for methods over 1 s, 1 over 10 s)")
    p.add_argument("--device", default="cpu", metavar="DEVICE",
                   help="cpu (default), cuda or cuda:N; a GPU that is not there is an error (exit 4)")
    p.add_argument("--baseline", default="dis-medium", help="method the ratios refer to")
    p.add_argument("--option", action="append", metavar="KEY=VALUE", help="option passed to every method")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..errors import FlowmatchError
    from ..methods.registry import flow, get_method, methods

    h, w = parse_size(args.size)
    if args.methods:
        names = [n.strip() for n in args.methods.split(",") if n.strip()]
        for n in names:
            get_method(n)  # unknown names: InputError listing the known ones
    else:
        names = [m.name for m in methods(available_only=True) if not (m.needs_gpu and not args.device.startswith("cuda"))]
    img1, img2 = bench_pair(h, w)
    opts = parse_options(args.option)
    rows = []
    for n in names:
        try:
            t0 = time.perf_counter()
            flow(img1, img2, method=n, device=args.device, **opts)  # warm-up, and how slow is it?
            first = time.perf_counter() - t0
            runs = args.runs if first < 1 else min(args.runs, 3 if first < 10 else 1)
            rows.append(bench_method(n, img1, img2, runs=runs, device=args.device, options=opts, warmup=False))
        except FlowmatchError as exc:  # one unavailable method must not hide the others
            rows.append({"method": n, "error": str(exc).splitlines()[0][:80]})
    print(f"{w}x{h}, {args.device}, median of up to {args.runs} runs, {os.cpu_count()} CPUs "
          f"(timings are noisy on a shared machine)")
    print(format_table(rows, args.baseline))
    return 0
