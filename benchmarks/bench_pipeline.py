"""Whole PatchBatch pipeline: time per preset and per stage next to OpenCV baselines, and the accuracy
of each preset on every real pair, side by side in one run.

Targets (issue 16, 2-core CPU, 1024×436): patchbatch-accurate <= 3 s and patchbatch-fast <= 0.6 s per
pair, with held-out real-pair EPE no worse than the presets they replaced.

    .venv/bin/python benchmarks/bench_pipeline.py [--runs 3] [--case alley_1_clean]
    .venv/bin/python benchmarks/bench_pipeline.py --all-pairs            # + mean EPE over all real pairs
    .venv/bin/python benchmarks/bench_pipeline.py --variant old-fast=fast:descriptor_stride=2,pca_dim=32
    .venv/bin/python benchmarks/bench_pipeline.py --previous           # + the earlier presets, side by side

Part 1 (speed): medians over --runs runs (after one warm-up run each) of wall time and of process CPU
time on one 1024×436 pair; OpenCV DIS (medium) and DeepFlow (contrib) run in the same process.  The
machine is shared: CPU time is the steadier number; with 2 threads an idle machine's wall time is
roughly CPU time / 1.6-2.  Part 2 (--all-pairs): every case of ../shared/data/real, EPE per pair, the
mean EPE, and the median wall/CPU seconds over the 1024×436 pairs, for each preset and variant.
A variant is NAME=PRESET:option=value,option=value (flat pipeline options, config.OPTION_FIELDS).
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
from flowmatch.errors import InputError  # noqa: E402
from flowmatch.pipelines.patchbatch import patchbatch_flow  # noqa: E402

# Earlier presets are still reachable as variants: the first "accurate" is today's "thorough"; PREVIOUS
# has the first "fast", stop 20's two, stop 23's two, stop 31's accurate and stop 32's fast (README
# "Presets: speed and accuracy").  Stop 23 moved fast to PCA 48 (stop 20's fast had 32), stop 24 both
# presets to a full-size DIS (fast also to 3 PatchMatch passes), stop 32 accurate to 8 PatchMatch passes
# after 12 coarse ones (was 4 after 6, which every earlier accurate-based variant keeps), stop 33 fast to
# interpolation edges smoothed by 2 px (was 1, which every earlier fast-based variant keeps).
_OLD_COARSE = "coarse_factor=4,coarse_window=24,coarse_radius=16"
_STOP23_DIS = "dis_finest_scale=1,dis_patch_stride=3,dis_iterations=25"  # OpenCV's medium preset
_STOP23_FAST = f"iterations=4,{_STOP23_DIS}"
_STOP31_PASSES = "iterations=4,coarse_iterations=6"
_STOP32_EDGES = "edge_sigma=1"
PREVIOUS = {"first-fast": f"accurate:iterations=3,coarse_iterations=6,{_OLD_COARSE},{_STOP23_DIS}",
            "stop20-accurate": f"accurate:{_STOP31_PASSES},{_OLD_COARSE},{_STOP23_DIS}",
            "stop20-fast": f"fast:downscale=1,pca_dim=32,{_STOP23_FAST},{_STOP32_EDGES}",
            "stop23-fast": f"fast:{_STOP23_FAST},{_STOP32_EDGES}", "stop23-accurate": f"accurate:{_STOP31_PASSES},{_STOP23_DIS}",
            "stop31-accurate": f"accurate:{_STOP31_PASSES}", "stop32-fast": f"fast:{_STOP32_EDGES}"}


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


def _value(text: str):
    for conv in (int, float):
        try:
            return conv(text)
        except ValueError:
            pass
    return {"true": True, "false": False, "none": None}.get(text.lower(), text)


def parse_variant(spec: str) -> tuple[str, str, dict]:
    """"NAME=PRESET:k=v,k=v" -> (NAME, PRESET, {k: v}) with ints, floats, booleans and None parsed."""
    name, _, rest = spec.partition("=")
    preset, _, opts = rest.partition(":")
    items = [kv.split("=", 1) for kv in opts.split(",") if kv]
    if not name or any(len(kv) != 2 or not kv[0] for kv in items):
        raise InputError(f"a variant is NAME=PRESET:option=value,..., got {spec!r}")
    return name, preset or "fast", {k: _value(v) for k, v in items}


_NETWORKS: dict = {}


def network_of(opts: dict) -> tuple:
    """(the descriptor network a run's descriptor_model option names, the shipped one by default, loaded once
    per name; opts without that option) for patchbatch_flow(model=...), which refuses the two together."""
    from flowmatch.pipelines.patchbatch import load_descriptor_model

    opts = dict(opts)
    name = opts.pop("descriptor_model", None)
    if name not in _NETWORKS:
        _NETWORKS[name] = load_descriptor_model(name)
    return _NETWORKS[name], opts


def pipelines(args) -> dict:
    """label -> (preset, options) for every preset of --presets and every --variant."""
    out = {f"patchbatch-{p}": (p, {}) for p in args.presets.split(",") if p}
    specs = [f"{k}={v}" for k, v in PREVIOUS.items()] if args.previous else []
    for spec in specs + args.variant:
        name, preset, opts = parse_variant(spec)
        out[name] = (preset, opts)
    if args.descriptor:
        out = {k: (p, {"descriptor": args.descriptor, **o}) for k, (p, o) in out.items()}
    return out


def timed(fn):
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c


def speed(args, img1, img2, gt, valid, runs: dict) -> None:
    import cv2
    g1, g2 = cv2.cvtColor(img1, cv2.COLOR_RGB2GRAY), cv2.cvtColor(img2, cv2.COLOR_RGB2GRAY)
    runners = {"dis-medium (OpenCV)": lambda: (cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
                                               .calc(g1, g2, None), {})}
    if hasattr(cv2, "optflow"):
        runners["deepflow (OpenCV contrib)"] = lambda: (cv2.optflow.createOptFlow_DeepFlow().calc(g1, g2, None), {})
    for label, (preset, opts) in runs.items():
        def run(preset=preset, opts=opts):
            model, opts = network_of(opts)
            flow, st = patchbatch_flow(img1, img2, preset=preset, model=model, return_stages=True, **opts)
            return flow, {k: (st["timings"][k], st["cpu_timings"][k]) for k in st["timings"]}
        runners[label] = run
    rows = []
    for label, fn in runners.items():
        fn()  # warm-up: oneDNN primitive creation, thread pool start
        walls, cpus, stages = [], [], []
        for _ in range(args.runs):
            (flow, st), w, c = timed(fn)
            walls.append(w)
            cpus.append(c)
            stages.append(st)
        epe = float(np.linalg.norm(flow - gt, axis=2)[valid].mean())
        stage_txt = "  ".join(f"{k} {statistics.median(s[k][0] for s in stages):.2f}/"
                              f"{statistics.median(s[k][1] for s in stages):.2f}" for k in stages[0])
        rows.append((label, statistics.median(walls), statistics.median(cpus), epe, stage_txt))
    base_w, base_c = rows[0][1], rows[0][2]
    print(f"\n## Speed, median of {args.runs} runs after a warm-up\n")
    print(f"{'method':<26s} {'wall s':>7s} {'cpu s':>7s} {'x DIS wall':>10s} {'x DIS cpu':>9s} {'EPE':>7s}  "
          "stages (wall/cpu s)")
    for label, w, c, epe, st in rows:
        print(f"{label:<26s} {w:7.2f} {c:7.2f} {w / base_w:10.1f} {c / base_c:9.1f} {epe:7.3f}  {st}")


def all_pairs(runs: dict, seeds: list[int]) -> None:
    """Mean EPE per report group and the mean of the groups over the held-out real pairs (each pair's
    EPE averaged over `seeds`: PatchMatch's random start moves single pairs by up to ~10 %), with
    median wall/CPU seconds per 1024×436 pair."""
    from flowmatch import metrics
    from flowmatch.data.sample_cases import REPORT_GROUPS, report_group
    from flowmatch.train.patchbatch_data import heldout_real_frames

    cases = heldout_real_frames(min_size=64)
    if not cases:
        print("\n(../shared/data/real is absent: --all-pairs skipped)")
        return
    table = {}
    for label, (preset, opts) in runs.items():
        model, opts = network_of(opts)
        epes, walls, cpus = {}, [], []
        for s in cases:
            per_seed = []
            for seed in seeds:
                flow, w, c = timed(lambda: patchbatch_flow(s.img1, s.img2, preset=preset, model=model,
                                                           **{"seed": seed, **opts}))
                per_seed.append(metrics.epe(flow, s.flow, s.valid))
                if s.img1.shape[:2] == (436, 1024):
                    walls.append(w)
                    cpus.append(c)
            epes[s.name] = float(np.mean(per_seed))
        groups: dict[str, list[float]] = {}
        for name, e in epes.items():
            groups.setdefault(report_group(name), []).append(e)
        gm = {g: float(np.mean(v)) for g, v in groups.items()}
        table[label] = (epes, gm, float(np.mean(list(gm.values()))), statistics.median(walls) if walls else float("nan"),
                        statistics.median(cpus) if cpus else float("nan"))
        print(f"  {label}: mean of groups {table[label][2]:.3f}", file=sys.stderr, flush=True)
    labels = list(table)
    print(f"\n## Held-out real pairs ({len(cases)}): EPE px, each pair averaged over seeds {seeds}\n")
    print("| pair | " + " | ".join(labels) + " |")
    print("|---|" + "---|" * len(labels))
    for s in cases:
        print(f"| {s.name} | " + " | ".join(f"{table[k][0][s.name]:.2f}" for k in labels) + " |")
    present = [g for g, _, _ in REPORT_GROUPS if g in table[labels[0]][1]]
    print("\n| pipeline | " + " | ".join(f"{g} ({sum(report_group(c.name) == g for c in cases)})" for g in present)
          + " | mean of groups | wall s / pair | cpu s / pair |")
    print("|---|" + "---|" * (len(present) + 3))
    for k in labels:
        _, gm, mean, w, c = table[k]
        print(f"| {k} | " + " | ".join(f"{gm[g]:.2f}" for g in present) + f" | **{mean:.3f}** | {w:.2f} | {c:.2f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--case", default="alley_1_clean")
    ap.add_argument("--descriptor", default=None, choices=("patchbatch", "raw", "daisy", "combined"),
                    help="override every pipeline's descriptor kind")
    ap.add_argument("--presets", default="fast,accurate", help="comma-separated presets to run")
    ap.add_argument("--variant", action="append", default=[], help="NAME=PRESET:option=value,... (repeatable)")
    ap.add_argument("--previous", action="store_true", help="also run the earlier presets (PREVIOUS) as variants")
    ap.add_argument("--all-pairs", action="store_true", help="also score every held-out real pair")
    ap.add_argument("--seeds", default="0,1,2", help="--all-pairs: average each pair's EPE over these seeds")
    ap.add_argument("--skip-speed", action="store_true")
    args = ap.parse_args()
    import torch

    img1, img2, gt, valid, name = load_case(args.case)
    print(f"bench_pipeline: {name} {img1.shape[1]}×{img1.shape[0]}, torch threads {torch.get_num_threads()}, "
          f"runs {args.runs}, load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    try:
        runs = pipelines(args)
    except InputError as exc:
        sys.exit(f"bench_pipeline: {exc}")
    if not args.skip_speed:
        speed(args, img1, img2, gt, valid, runs)
    if args.all_pairs:
        all_pairs(runs, [int(v) for v in args.seeds.split(",")])


if __name__ == "__main__":
    main()
