"""Speed and peak memory of every available flow method, side by side with a baseline (dis-medium).

    python benchmarks/bench_methods.py [--sizes 512x384,1024x436] [--methods a,b] [--max-runs 5]

For each size: one warm-up call per method, then a number of timed calls (5 for methods under
1 s per call, 3 under 10 s, else 1), median and min wall time, peak memory of one more call, and
the ratio of each median to the baseline's median measured in the same process.  The machine is
shared (2 cores): expect noise of tens of percent."""
from __future__ import annotations

import argparse
import os
import sys
import time

from flowmatch.commands.bench import bench_method, bench_pair, format_table, parse_size
from flowmatch.errors import FlowmatchError
from flowmatch.methods.registry import flow, get_method, methods


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="512x384,1024x436", help="comma-separated WIDTHxHEIGHT")
    ap.add_argument("--methods", help="comma-separated names (default: every available method)")
    ap.add_argument("--baseline", default="dis-medium")
    ap.add_argument("--max-runs", type=int, default=5)
    args = ap.parse_args(argv)
    names = ([n.strip() for n in args.methods.split(",")] if args.methods
             else [m.name for m in methods(available_only=True) if not m.needs_gpu])
    for n in names:
        get_method(n)
    if args.baseline in names:  # baseline first, so every later row is compared with a fresh number
        names.remove(args.baseline)
        names.insert(0, args.baseline)
    for size in args.sizes.split(","):
        h, w = parse_size(size)
        img1, img2 = bench_pair(h, w, seed=1)
        rows = []
        for n in names:
            try:
                t0 = time.perf_counter()
                flow(img1, img2, method=n)  # warm-up, also decides how many runs we can afford
                first = time.perf_counter() - t0
                runs = args.max_runs if first < 1 else (3 if first < 10 else 1)
                rows.append(bench_method(n, img1, img2, runs=min(runs, args.max_runs), warmup=False))
            except FlowmatchError as exc:
                rows.append({"method": n, "error": str(exc).splitlines()[0][:80]})
            print(f"  {size} {n}: done", file=sys.stderr, flush=True)
        print(f"\n### {w}x{h}, CPU, {os.cpu_count()} cores shared (noisy); median of up to {args.max_runs} runs\n")
        print(format_table(rows, args.baseline))
    return 0


if __name__ == "__main__":
    sys.exit(main())
