"""Sparse-to-dense interpolation inside the PatchBatch pipeline: ours ("epic", flowmatch.ops) vs OpenCV's
ximgproc EdgeAwareInterpolator ("opencv-epic") and RICInterpolator ("opencv-ric"), side by side.

Question: where does each interpolator win, in accuracy and in speed, on the real pairs with ground truth?

Same pipeline, same matches: per pair the preset (default patchbatch-accurate, the former "fast" design; descriptor "raw": no network,
so the comparison does not depend on a training run) runs once up to its sparse matches; each interpolator
then densifies exactly those matches, and the preset's refinement (DIS + variational) runs on each result.
Per group (Sintel clean, Sintel final, Chairs, KITTI 2012) it prints the mean EPE after interpolation and
after refinement, and the interpolation time per pair (median of --runs); zero flow is printed for scale.
Writes <out>.json (every pair) and <out>.md (the table).

    .venv/bin/python benchmarks/bench_interpolators.py                     # all pairs, 2 threads
    .venv/bin/python benchmarks/bench_interpolators.py --limit 1 --pairs crop50 --out /tmp/interp
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from flowmatch._atomic import atomic_open  # noqa: E402
from flowmatch._threads import torch_threads  # noqa: E402
from flowmatch.data.datasets import read_sample_case, sample_case_dirs  # noqa: E402
from flowmatch.data.sample_cases import REPORT_GROUPS, report_group  # noqa: E402
from flowmatch.errors import DatasetLayoutError  # noqa: E402
from flowmatch.image import as_image  # noqa: E402
from flowmatch.metrics import epe  # noqa: E402
from flowmatch.pipelines.patchbatch import patchbatch_flow  # noqa: E402
from flowmatch.pipelines.patchbatch.config import INTERPOLATORS  # noqa: E402
from flowmatch.pipelines.patchbatch.interpolation import densify  # noqa: E402
from flowmatch.pipelines.patchbatch.presets import resolve_config  # noqa: E402
from flowmatch.pipelines.patchbatch.refinement import refine  # noqa: E402

GROUPS = REPORT_GROUPS
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "interpolators")



def one_pair(sample, preset: str, descriptor: str, runs: int) -> dict:
    """Matches once, then every interpolator on them: EPE after interpolation and after refinement, times."""
    from dataclasses import replace

    cfg = resolve_config(preset, descriptor=descriptor)
    a, b = as_image(sample.img1, "img1"), as_image(sample.img2, "img2")
    t0 = time.perf_counter()
    _, st = patchbatch_flow(a, b, preset=cfg, refine=False, return_stages=True, value_range=255.0)
    row = {"size": [int(a.shape[1]), int(a.shape[0])], "matches": len(st["matches"]),
           "s_matching": time.perf_counter() - t0,
           "zero": float(epe(np.zeros_like(sample.flow), sample.flow, sample.valid)), "interpolators": {}}
    for kind in INTERPOLATORS:
        icfg = replace(cfg.interpolation, interpolator=kind)
        times = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for _ in range(runs):
                t = time.perf_counter()
                dense = densify(st["matches"], a, icfg, image2=b)
                times.append(time.perf_counter() - t)
            t = time.perf_counter()
            refined = refine(dense, a, b, cfg.refinement) if cfg.refinement.enabled else dense
            t_refine = time.perf_counter() - t
        row["interpolators"][kind] = {
            "epe_interpolated": float(epe(dense, sample.flow, sample.valid)),
            "epe_refined": float(epe(refined, sample.flow, sample.valid)),
            "s_interpolate": statistics.median(times), "s_refine": t_refine}
    return row


def summarise(pairs: dict) -> dict:
    """Group means (and their mean) per interpolator and quantity."""
    out: dict = {}
    for kind in ("zero", *INTERPOLATORS):
        for key in (("epe",) if kind == "zero" else ("epe_interpolated", "epe_refined", "s_interpolate")):
            groups: dict[str, list[float]] = {}
            for name, r in pairs.items():
                v = r["zero"] if kind == "zero" else r["interpolators"][kind][key]
                groups.setdefault(report_group(name), []).append(v)
            means = {g: float(np.mean(v)) for g, v in groups.items()}
            out.setdefault(kind, {})[key] = {"groups": means, "mean_of_groups": float(np.mean(list(means.values())))}
    return out


def table(summary: dict, n_pairs: int) -> str:
    labels = [g for g, _, _ in GROUPS if g in summary["zero"]["epe"]["groups"]]
    head = ("| interpolator | " + " | ".join(f"{g} EPE" for g in labels)
            + " | mean of groups (refined) | mean of groups (interpolated only) | interpolation s/pair |")
    lines = [f"EPE in pixels after the pipeline's refinement (group means over {n_pairs} pairs); same matches "
             "for every interpolator.", "", head, "|" + "---|" * (len(labels) + 4)]
    z = summary["zero"]["epe"]
    lines.append("| zero flow | " + " | ".join(f"{z['groups'][g]:.2f}" for g in labels)
                 + f" | {z['mean_of_groups']:.2f} | | |")
    for kind in INTERPOLATORS:
        r, i, s = (summary[kind][k] for k in ("epe_refined", "epe_interpolated", "s_interpolate"))
        lines.append(f"| {kind} | " + " | ".join(f"{r['groups'][g]:.2f}" for g in labels)
                     + f" | {r['mean_of_groups']:.2f} | {i['mean_of_groups']:.2f} | {s['mean_of_groups']:.3f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="accurate", help="PatchBatch preset (accurate, fast, thorough)")
    ap.add_argument("--descriptor", default="raw", help="descriptor kind of the matches (raw: no network)")
    ap.add_argument("--pairs", default="", help="only pairs whose <group>/<case> name contains this")
    ap.add_argument("--limit", type=int, default=None, help="at most this many pairs (a quick check)")
    ap.add_argument("--runs", type=int, default=1, help="timed interpolation runs per pair (median)")
    ap.add_argument("--threads", type=int, default=2, help="torch and OpenCV threads")
    ap.add_argument("--root", default=None, help="real pairs folder (default ../shared/data/real)")
    ap.add_argument("--out", default=OUT, help="write <out>.json and <out>.md")
    args = ap.parse_args(argv)
    try:
        dirs = [d for d in sample_case_dirs(args.root) if args.pairs in "/".join(d.split(os.sep)[-2:])]
    except DatasetLayoutError as exc:
        print(f"no real pairs: {exc}")
        return 0
    dirs = dirs[: args.limit] if args.limit else dirs
    if not dirs:
        print("no real pair matches --pairs; nothing to compare")
        return 0
    import cv2

    cv2.setNumThreads(args.threads)
    pairs: dict = {}
    with torch_threads(args.threads):
        for d in dirs:
            sample = read_sample_case(d)
            t = time.perf_counter()
            pairs[sample.name] = r = one_pair(sample, args.preset, args.descriptor, args.runs)
            cells = "  ".join(f"{k} {v['epe_refined']:.2f} ({v['s_interpolate']:.2f} s)" for k, v in r["interpolators"].items())
            print(f"{sample.name} {r['size'][0]}×{r['size'][1]}, {r['matches']} matches: {cells}  "
                  f"[{time.perf_counter() - t:.0f} s]", flush=True)
    summary = summarise(pairs)
    md = table(summary, len(pairs))
    print(md)
    meta = {"preset": args.preset, "descriptor": args.descriptor, "threads": args.threads, "runs": args.runs,
            "opencv": cv2.__version__, "cpu": platform.processor() or platform.machine(), "pairs": pairs,
            "summary": summary}
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with atomic_open(args.out + ".json", "w") as fh:
        json.dump(meta, fh, indent=1)
    with atomic_open(args.out + ".md", "w") as fh:
        fh.write(f"# Interpolators inside patchbatch-{args.preset} (descriptor {args.descriptor})\n\n"
                 f"`python benchmarks/bench_interpolators.py` ({args.threads} threads, OpenCV {cv2.__version__})."
                 f"\n\n{md}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
