"""Speed of the edge-aware interpolation op (flowmatch.ops.edge_aware_interpolate) on real matches, per setting.

Question: how long does the op take on the patchbatch-fast preset's own matches (1024×436 Sintel frames,
~7 000-24 000 matches), and how does that move with the number of matches and neighbours?

Per pair, the "fast" preset runs once up to its sparse matches; the op then densifies them with each setting
(the preset's nn=64/pref_nn=50, then nn 32 and 100, Nadaraya-Watson, no prefilter, and the matches
thinned to ~8 000), timed back to back, min of --runs.  With --baseline LIB:NS it also times another build
of the op (a shared library registering NS::edge_aware_interpolate, e.g. an older revision built under its
own namespace) on the same inputs and prints the time ratio and the largest flow difference.  Skips cleanly
without the real pairs.

    .venv/bin/python benchmarks/bench_interpolation_op.py
    .venv/bin/python benchmarks/bench_interpolation_op.py --runs 5 --baseline /tmp/old/fmi_old.so:fmi_old
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from flowmatch._threads import torch_threads  # noqa: E402
from flowmatch.data.datasets import read_sample_case, sample_case_dirs  # noqa: E402
from flowmatch.errors import DatasetLayoutError  # noqa: E402
from flowmatch.image import as_image  # noqa: E402
from flowmatch.ops.interpolation import edge_aware_interpolate, edge_cost_map  # noqa: E402
from flowmatch.pipelines.patchbatch import patchbatch_flow  # noqa: E402

PAIRS = ("sintel/alley_1_clean_0002", "sintel/market_5_final_0009")  # many matches; large motions
# name: (keep every k-th match, nn, affine, pref_nn)
SETTINGS = {"preset (nn 64, pref 50)": (1, 64, True, 50), "nn 32": (1, 32, True, 50),
            "nn 100": (1, 100, True, 50), "Nadaraya-Watson": (1, 64, False, 50), "no prefilter": (1, 64, True, 0),
            "1/3 of the matches": (3, 64, True, 50)}


def real_case(folder: str) -> dict:
    """The fast preset's matches on one pair and frame 1's edge cost map."""
    s = read_sample_case(folder)
    a, b = as_image(s.img1, "img1"), as_image(s.img2, "img2")
    _, st = patchbatch_flow(a, b, "fast", refine=False, return_stages=True, value_range=255.0)
    cfg = st["config"].interpolation
    return {"points": st["matches"].points.double().numpy(), "flows": st["matches"].flows.float().numpy(),
            "cost": edge_cost_map(a, scale=cfg.edge_scale), "coef_kernel": cfg.coef_kernel, "pref_th": cfg.pref_th}


def _raw_inputs(case: dict, step: int) -> tuple:
    xy = torch.from_numpy(np.rint(case["points"][::step])).to(torch.int32).contiguous()
    return xy, torch.from_numpy(np.ascontiguousarray(case["flows"][::step])), torch.from_numpy(case["cost"])


def time_setting(case: dict, setting: tuple, runs: int, baseline: str | None) -> dict:
    step, nn, affine, pref_nn = setting
    pts, flows = case["points"][::step], case["flows"][::step]
    kw = dict(nn=nn, coef_kernel=case["coef_kernel"], affine=affine, pref_nn=pref_nn, pref_th=case["pref_th"])
    row: dict = {"matches": len(pts), "s": [], "s_baseline": []}
    other = getattr(torch.ops, baseline).edge_aware_interpolate if baseline else None
    raw = _raw_inputs(case, step)
    for _ in range(runs):  # interleaved, so load changes hit both alike
        t = time.perf_counter()
        flow = edge_aware_interpolate(pts, flows, case["cost"], **kw)
        row["s"].append(time.perf_counter() - t)
        if other is not None:
            t = time.perf_counter()
            ref, _ = other(*raw, min(nn, len(pts)), float(kw["coef_kernel"]), affine, min(pref_nn, len(pts)),
                           float(kw["pref_th"]))
            row["s_baseline"].append(time.perf_counter() - t)
            row["max_diff"] = float(np.abs(flow - ref.numpy()).max())
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3, help="timed runs per setting (min is printed)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads")
    ap.add_argument("--root", default=None, help="real pairs folder (default ../shared/data/real)")
    ap.add_argument("--baseline", default=None, metavar="LIB:NS",
                    help="also time NS::edge_aware_interpolate from shared library LIB")
    args = ap.parse_args(argv)
    try:
        dirs = {"/".join(d.split(os.sep)[-2:]): d for d in sample_case_dirs(args.root)}
    except DatasetLayoutError as exc:
        print(f"no real pairs: {exc}")
        return 0
    names = [n for n in PAIRS if n in dirs]
    if not names:
        print(f"none of {PAIRS} among the real pairs; nothing to time")
        return 0
    ns = None
    if args.baseline:
        lib, ns = args.baseline.rsplit(":", 1)
        torch.ops.load_library(lib)
    with torch_threads(args.threads):
        for name in names:
            case = real_case(dirs[name])
            h, w = case["cost"].shape
            print(f"\n{name}: {w}×{h}, {len(case['points'])} matches, {args.threads} threads, min of {args.runs}")
            print(f"| setting | matches | op s |" + (" baseline s | baseline / op | max |Δflow| px |" if ns else ""))
            print("|---|---|---|" + ("---|---|---|" if ns else ""))
            for label, setting in SETTINGS.items():
                r = time_setting(case, setting, args.runs, ns)
                line = f"| {label} | {r['matches']} | {min(r['s']):.3f} |"
                if ns:
                    line += (f" {min(r['s_baseline']):.3f} | {min(r['s_baseline']) / min(r['s']):.2f} |"
                             f" {r['max_diff']:.2e} |")
                print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
