"""PatchBatch presets and variants on a synthetic tuning set: flying-photos pairs (photos of
../shared/data/photos, 1024×436, layer motions up to 80 px), clean and Sintel-final-like, with exact flow.

Preset choices are checked here as well as on the held-out real pairs (bench_pipeline.py --all-pairs),
so that a setting is not picked on the ten real pairs alone.  These pairs are made from the training photos
(fixed seeds), so this is a tuning set, not held-out data; it never contains a real evaluation pair.

    .venv/bin/python benchmarks/bench_presets_synthetic.py [--pairs 5] [--presets accurate,fast] \\
        [--previous] [--variant NAME=PRESET:k=v,...] [--seeds 0,1,2]

Prints mean EPE (px, all pixels) per kind and the mean of the two, with process CPU s per pipeline call
(the machine may be shared: compare columns of one run).  With several --seeds each pair's EPE is the mean
over those pipeline seeds (PatchMatch starts at random: one seed moves a variant by several per cent).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench_pipeline import PREVIOUS, network_of, parse_variant  # noqa: E402

from flowmatch import metrics  # noqa: E402
from flowmatch.errors import FlowmatchError, InputError  # noqa: E402


def tuning_pairs(n: int, max_motion: float = 80.0) -> list:
    """n clean and n final-like flying-photos pairs with fixed seeds (90000+, 91000+), layer motions up
    to max_motion px (80 = the tuning set every earlier choice was made on)."""
    from flowmatch.data.flying_photos import flying_photos_pair
    from flowmatch.data.photos import PhotoLibrary
    lib = PhotoLibrary()
    m = float(max_motion)
    out = [("clean", flying_photos_pair(lib, seed=90000 + i, height=436, width=1024, max_motion=m)) for i in range(n)]
    out += [("final", flying_photos_pair(lib, seed=91000 + i, height=436, width=1024, max_motion=m, final=True))
            for i in range(n)]
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=5, help="pairs of each kind")
    ap.add_argument("--presets", default="accurate,fast,thorough")
    ap.add_argument("--previous", action="store_true", help="also the earlier presets (bench_pipeline.PREVIOUS)")
    ap.add_argument("--variant", action="append", default=[], help="NAME=PRESET:option=value,... (repeatable)")
    ap.add_argument("--json", default=None, help="write each variant's per-pair EPE here")
    ap.add_argument("--max-motion", type=float, default=80.0,
                    help="largest layer motion of the pairs, px (Sintel final's hardest pairs reach ~150)")
    ap.add_argument("--seeds", default="0", help="comma-separated pipeline seeds; each pair's EPE is their mean")
    args = ap.parse_args()
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        ap.error(f"--seeds must be comma-separated integers, got {args.seeds!r}")
    if not seeds:
        ap.error("--seeds is empty")
    import torch

    from flowmatch.pipelines.patchbatch import patchbatch_flow
    torch.set_num_threads(2)
    try:
        if not 0 < args.max_motion <= 400:
            raise InputError(f"--max-motion must be in (0, 400] px, got {args.max_motion}")
        pairs = tuning_pairs(args.pairs, args.max_motion)
    except FlowmatchError as exc:
        print(f"bench_presets_synthetic: {exc}", file=sys.stderr)
        return 1
    specs = [f"patchbatch-{p}={p}" for p in args.presets.split(",") if p]
    specs += [f"{k}={v}" for k, v in PREVIOUS.items()] if args.previous else []
    print(f"{2 * args.pairs} flying-photos pairs 1024×436, motions up to {args.max_motion:g} px, seeds {seeds}, "
          f"load average {os.getloadavg()[0]:.1f}\n")
    print("| pipeline | clean | final-like | mean | cpu s / pair |\n|---|---|---|---|---|")
    try:
        parsed = [parse_variant(spec) for spec in specs + args.variant]
    except InputError as exc:
        print(f"bench_presets_synthetic: {exc}", file=sys.stderr)
        return 2
    for name, _, opts in parsed:
        if "seed" in opts:
            print(f"bench_presets_synthetic: {name}: give seeds with --seeds, not as an option", file=sys.stderr)
            return 2
    results: dict[str, dict] = {}
    for name, preset, opts in parsed:
        epe: dict[str, list[float]] = {}
        model, run_opts = network_of(opts)  # descriptor_model=PATH selects the network
        c0 = time.process_time()
        for kind, p in pairs:
            e = [metrics.epe(patchbatch_flow(p.img1, p.img2, preset=preset, model=model, seed=s, **run_opts), p.flow, p.valid)
                 for s in seeds]
            epe.setdefault(kind, []).append(float(np.mean(e)))
        g = {k: float(np.mean(v)) for k, v in epe.items()}
        results[name] = {"preset": preset, "options": opts, "per_pair": epe, "kinds": g,
                         "mean": float(np.mean(list(g.values())))}
        if args.json:  # after every variant: an interrupted run keeps what it measured
            from flowmatch._atomic import atomic_open
            with atomic_open(args.json, "w") as fh:
                json.dump({"pairs": args.pairs, "max_motion": args.max_motion, "seeds": seeds, "variants": results},
                          fh, indent=1)
        print(f"| {name} | {g['clean']:.3f} | {g['final']:.3f} | **{np.mean(list(g.values())):.3f}** | "
              f"{(time.process_time() - c0) / len(pairs) / len(seeds):.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
