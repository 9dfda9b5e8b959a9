"""RAFT-style correlation lookup: flowmatch.ops.local_correlation vs RAFT's all-pairs CorrBlock.

Shape: RAFT at 1/8 of a 1024×436 frame (padded to 1024×440 as RAFT's InputPadder does: 128×55
features), C = 256, 4 pyramid levels, radius 4, float32, N = 1; coords = pixel grid + a random flow
of up to ±20 px.  Side by side, in one run (interleaved, so load hits both alike):
  - all-pairs: RAFT's CorrBlock in PyTorch (matmul volume / √C, avg-pooled pyramid, grid_sample
    lookups), the baseline;
  - lookup op: feature_pyramid(f2) + flowmatch.ops.local_correlation (no volume).
Rows: "build" (volume + pooling vs feature pyramid), one "lookup" on the built pyramid (RAFT does one
per refinement iteration, 12-32 per frame pair), build + lookup forward, and forward + backward of
build + lookup (gradients of both feature maps).  Median of --reps runs with min-max, and the peak
extra tensor memory (torch.profiler, allocated bytes above the start level) of forward and of
forward + backward.

    python benchmarks/bench_local_correlation.py [--reps 5] [--threads N]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import tempfile
import time

import torch
import torch.nn.functional as F

from flowmatch.ops import feature_pyramid, local_correlation

H, W, C, LEVELS, RADIUS = 55, 128, 256, 4, 4


def allpairs_build(f1: torch.Tensor, f2: torch.Tensor, levels: int) -> list[torch.Tensor]:
    n, c, h, w = f1.shape
    vol = torch.matmul(f1.view(n, c, h * w).transpose(1, 2), f2.view(n, c, h * w)) / math.sqrt(c)
    pyramid = [vol.reshape(n * h * w, 1, h, w)]
    for _ in range(levels - 1):
        pyramid.append(F.avg_pool2d(pyramid[-1], 2, stride=2))
    return pyramid


def allpairs_lookup(pyramid: list[torch.Tensor], coords: torch.Tensor, r: int) -> torch.Tensor:
    n, _, h, w = coords.shape
    d = torch.linspace(-r, r, 2 * r + 1)
    delta = torch.stack(torch.meshgrid(d, d, indexing="ij"), dim=-1).view(1, 2 * r + 1, 2 * r + 1, 2)
    centre = coords.permute(0, 2, 3, 1).reshape(n * h * w, 1, 1, 2)
    outs = []
    for i, vol in enumerate(pyramid):
        hh, ww = vol.shape[-2:]
        pos = centre / 2 ** i + delta
        grid = torch.cat([2 * pos[..., :1] / (ww - 1) - 1, 2 * pos[..., 1:] / (hh - 1) - 1], dim=-1)
        outs.append(F.grid_sample(vol, grid, align_corners=True).view(n, h, w, -1))
    return torch.cat(outs, dim=-1).permute(0, 3, 1, 2).contiguous()


def inputs(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    f1, f2 = torch.randn(1, C, H, W, generator=g), torch.randn(1, C, H, W, generator=g)
    ys, xs = torch.meshgrid(torch.arange(H, dtype=torch.float32), torch.arange(W, dtype=torch.float32), indexing="ij")
    coords = torch.stack((xs, ys))[None] + (torch.rand(1, 2, H, W, generator=g) * 2 - 1) * 20
    return f1, f2, coords


def cases(f1, f2, coords):
    """{row: (all-pairs callable, lookup-op callable)}."""
    ap_pyr = allpairs_build(f1, f2, LEVELS)
    op_pyr = feature_pyramid(f2, LEVELS)
    g1, g2 = f1.clone().requires_grad_(), f2.clone().requires_grad_()

    def ap_train():
        allpairs_lookup(allpairs_build(g1, g2, LEVELS), coords, RADIUS).sum().backward()

    def op_train():
        local_correlation(g1, feature_pyramid(g2, LEVELS), coords, RADIUS).sum().backward()

    return {
        "build": (lambda: allpairs_build(f1, f2, LEVELS), lambda: feature_pyramid(f2, LEVELS)),
        "lookup": (lambda: allpairs_lookup(ap_pyr, coords, RADIUS), lambda: local_correlation(f1, op_pyr, coords, RADIUS)),
        "build + lookup": (lambda: allpairs_lookup(allpairs_build(f1, f2, LEVELS), coords, RADIUS),
                           lambda: local_correlation(f1, feature_pyramid(f2, LEVELS), coords, RADIUS)),
        "forward + backward": (ap_train, op_train),
    }


def peak_extra_bytes(fn) -> int:
    """Peak allocated CPU tensor bytes during fn() above the level at its start (torch.profiler)."""
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    fd, path = tempfile.mkstemp(suffix=".json")
    os.close(fd)
    try:
        prof.export_chrome_trace(path)
        with open(path) as fh:
            events = [e for e in json.load(fh)["traceEvents"] if e.get("name") == "[memory]"]
    finally:
        os.remove(path)
    if not events:
        return 0
    events.sort(key=lambda e: e["ts"])
    base = events[0]["args"]["Total Allocated"] - events[0]["args"]["Bytes"]
    return max(e["args"]["Total Allocated"] for e in events) - base


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    f1, f2, coords = inputs()
    with torch.no_grad():
        diff = (allpairs_lookup(allpairs_build(f1, f2, LEVELS), coords, RADIUS)
                - local_correlation(f1, feature_pyramid(f2, LEVELS), coords, RADIUS)).abs().max().item()
    rows = cases(f1, f2, coords)
    times = {name: ([], []) for name in rows}
    for name, fns in rows.items():  # warm-up
        for fn in fns:
            fn()
    for _ in range(args.reps):
        for name, fns in rows.items():
            for slot, fn in zip(times[name], fns):
                t0 = time.perf_counter()
                fn()
                slot.append((time.perf_counter() - t0) * 1e3)
    load = os.getloadavg()[0]
    print(f"local correlation lookup, N=1, {W}×{H} features (1/8 of 1024×436, padded to 440), C={C}, "
          f"{LEVELS} levels, r={RADIUS}, float32, {torch.get_num_threads()} threads, load average {load:.1f} "
          f"(shared machine: absolute times are noisy, ratios less so); max |diff| {diff:.1e}")
    print(f"{'':22s}{'all-pairs (ms)':>22s}{'lookup op (ms)':>22s}{'speed-up':>10s}")
    for name, (a, b) in times.items():
        ma, mb = statistics.median(a), statistics.median(b)
        print(f"{name:22s}{ma:10.1f} ({min(a):.0f}-{max(a):.0f}){mb:12.1f} ({min(b):.0f}-{max(b):.0f})"
              f"{ma / mb:9.1f}x")
    fwd = rows["build + lookup"]
    train = rows["forward + backward"]
    mem = [[peak_extra_bytes(lambda: fn() if i else torch.no_grad()(fn)()) for fn in pair]
           for i, pair in enumerate((fwd, train))]
    volume = H * W * H * W * 4 * sum(4.0 ** -i for i in range(LEVELS))
    out = LEVELS * (2 * RADIUS + 1) ** 2 * H * W * 4
    print(f"{'peak memory (MiB)':22s}{'all-pairs':>14s}{'lookup op':>14s}{'ratio':>10s}")
    for name, (a, b) in zip(("forward", "forward + backward"), mem):
        print(f"{name:22s}{a / 2**20:14.1f}{b / 2**20:14.1f}{a / max(b, 1):9.1f}x")
    print(f"sizes: all-pairs pyramid {volume / 2**20:.1f} MiB, lookup output {out / 2**20:.1f} MiB, one f2 "
          f"{C * H * W * 4 / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
