"""Backward warp of a numpy frame: flowmatch.warp.backward_warp (torch grid_sample in float64) vs the
former pure-numpy corner gathers and vs cv2.remap (INTER_LINEAR, float32 maps), side by side.

Question: is the grid_sample path faster than numpy gathers, and how far from them are it and remap?

    .venv/bin/python benchmarks/bench_warp.py [--sizes 64x96,128x192,436x1024] [--runs 5] [--threads 1]
Prints medians of wall time (ms) and the largest difference to the numpy gathers (grey levels 0-255).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from flowmatch._threads import torch_threads  # noqa: E402
from flowmatch.warp import backward_warp  # noqa: E402


def numpy_gathers(image: np.ndarray, flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The former implementation: four corner gathers and bilinear weights in float64."""
    h, w = flow.shape[:2]
    xs = np.arange(w, dtype=np.float64)[None, :] + flow[..., 0]
    ys = np.arange(h, dtype=np.float64)[:, None] + flow[..., 1]
    inside = (xs >= 0) & (xs <= w - 1) & (ys >= 0) & (ys <= h - 1)
    xc, yc = np.clip(xs, 0, w - 1), np.clip(ys, 0, h - 1)
    x0 = np.minimum(np.floor(xc).astype(np.int64), max(w - 2, 0))
    y0 = np.minimum(np.floor(yc).astype(np.int64), max(h - 2, 0))
    x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
    fx, fy = (xc - x0)[..., None], (yc - y0)[..., None]
    img = image.astype(np.float64)
    out = (img[y0, x0] * (1 - fx) + img[y0, x1] * fx) * (1 - fy) + (img[y1, x0] * (1 - fx) + img[y1, x1] * fx) * fy
    out[~inside] = 0
    return out.astype(np.float32), inside


def remap(image: np.ndarray, flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    import cv2

    h, w = flow.shape[:2]
    xs = (np.arange(w, dtype=np.float32)[None, :] + flow[..., 0]).astype(np.float32)
    ys = (np.arange(h, dtype=np.float32)[:, None] + flow[..., 1]).astype(np.float32)
    inside = (xs >= 0) & (xs <= w - 1) & (ys >= 0) & (ys <= h - 1)
    out = cv2.remap(image, xs, ys, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    out[~inside] = 0
    return out, inside


def median_ms(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1e3 * statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="64x96,128x192,436x1024", help="HxW list")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (OpenCV gets the same)")
    args = ap.parse_args()
    import cv2

    cv2.setNumThreads(args.threads)
    rng = np.random.default_rng(0)
    print(f"{'size':>10} | {'numpy ms':>9} | {'grid_sample ms':>14} | {'speed-up':>8} | {'max |diff|':>10} | "
          f"{'remap ms':>8} | {'remap max |diff|':>16}")
    with torch_threads(args.threads):
        for size in args.sizes.split(","):
            h, w = (int(v) for v in size.split("x"))
            img = rng.uniform(0, 255, (h, w, 3)).astype(np.float32)
            flow = rng.uniform(-8, 8, (h, w, 2)).astype(np.float32)
            ref, inside = numpy_gathers(img, flow)
            ours, _ = backward_warp(img, flow)
            cv, _ = remap(img, flow)
            t_np = median_ms(lambda: numpy_gathers(img, flow), args.runs)
            t_gs = median_ms(lambda: backward_warp(img, flow), args.runs)
            t_cv = median_ms(lambda: remap(img, flow), args.runs)
            print(f"{size:>10} | {t_np:9.2f} | {t_gs:14.2f} | {t_np / t_gs:7.1f}x | {np.abs(ours - ref)[inside].max():10.1e} | "
                  f"{t_cv:8.2f} | {np.abs(cv - ref)[inside].max():16.1e}")


if __name__ == "__main__":
    main()
