"""Whole PatchBatch pipeline at 1024×436: time per preset and per stage, next to OpenCV baselines.

Targets (2-core CPU): patchbatch-accurate under 15 s, patchbatch-fast under 3 s per frame pair.
Baselines run side by side in the same process: OpenCV DIS (medium preset) and DeepFlow (contrib).
The EPE column scores each method against the pair's ground truth (a sanity check; the accuracy
table over every real case is benchmarks/bench_accuracy.py).

    .venv/bin/python benchmarks/bench_pipeline.py [--runs 3] [--case alley_1_clean]
Medians of wall time and of process CPU time (the machine is shared: CPU time is the steadier;
with 2 threads an idle machine's wall time is roughly CPU time / 1.6-2).
"""
from __future__ import annotations

import argparse
import glob
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import flowmatch  # noqa: E402
from flowmatch._paths import real_data_dir  # noqa: E402
from flowmatch.pipelines.patchbatch import patchbatch_flow  # noqa: E402


def load_case(name: str):
    root = real_data_dir()
    cases = sorted(glob.glob(os.path.join(root, "sintel", f"{name}*"))) if root else []
    if not cases:
        from flowmatch.data.synthetic import generate_pair
        p = generate_pair(436, 1024, seed=0)
        return p.img1, p.img2, p.flow, p.valid, "synthetic 1024×436"
    c = cases[0]
    gt, valid = flowmatch.io.read_flow(os.path.join(c, "flow.flo"))
    return (flowmatch.io.read_image(os.path.join(c, "img1.png")), flowmatch.io.read_image(os.path.join(c, "img2.png")),
            gt, valid, os.path.basename(c))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--case", default="alley_1_clean")
    ap.add_argument("--descriptor", default="patchbatch", choices=("patchbatch", "raw"))
    ap.add_argument("--presets", default="fast,accurate", help="comma-separated presets to run")
    args = ap.parse_args()
    img1, img2, gt, valid, name = load_case(args.case)
    import torch
    print(f"bench_pipeline: {name} {img1.shape[1]}×{img1.shape[0]}, torch threads {torch.get_num_threads()}, "
          f"runs {args.runs}, descriptor {args.descriptor}")

    import cv2
    g1, g2 = cv2.cvtColor(img1, cv2.COLOR_RGB2GRAY), cv2.cvtColor(img2, cv2.COLOR_RGB2GRAY)
    runners = {
        "dis-medium (OpenCV)": lambda: (cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM).calc(g1, g2, None), {}),
    }
    if hasattr(cv2, "optflow"):
        runners["deepflow (OpenCV contrib)"] = lambda: (cv2.optflow.createOptFlow_DeepFlow().calc(g1, g2, None), {})
    model = None
    if args.descriptor == "patchbatch":
        from flowmatch.pipelines.patchbatch import load_descriptor_model
        model = load_descriptor_model()
    for preset in args.presets.split(","):
        def run(preset=preset):
            flow, st = patchbatch_flow(img1, img2, preset=preset, model=model, descriptor=args.descriptor,
                                       return_stages=True)
            return flow, {k: (st["timings"][k], st["cpu_timings"][k]) for k in st["timings"]}
        runners[f"patchbatch-{preset}"] = run

    rows = []
    for label, fn in runners.items():
        walls, cpus, stages = [], [], []
        for _ in range(args.runs):
            w, c = time.perf_counter(), time.process_time()
            flow, st = fn()
            walls.append(time.perf_counter() - w)
            cpus.append(time.process_time() - c)
            stages.append(st)
        epe = float(np.linalg.norm(flow - gt, axis=2)[valid].mean())
        stage_txt = "  ".join(f"{k} {statistics.median(s[k][0] for s in stages):.2f}/"
                              f"{statistics.median(s[k][1] for s in stages):.2f}" for k in stages[0])
        rows.append((label, statistics.median(walls), statistics.median(cpus), epe, stage_txt))
    base_w, base_c = rows[0][1], rows[0][2]
    print(f"{'method':<26s} {'wall s':>7s} {'cpu s':>7s} {'x DIS wall':>10s} {'x DIS cpu':>9s} {'EPE':>7s}  stages (wall/cpu s)")
    for label, w, c, epe, st in rows:
        print(f"{label:<26s} {w:7.2f} {c:7.2f} {w / base_w:10.1f} {c / base_c:9.1f} {epe:7.3f}  {st}")


if __name__ == "__main__":
    main()
