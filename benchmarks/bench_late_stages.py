"""PatchBatch stages 3-5 (consistency check, interpolation, refinement) with variants, on PatchMatch results
computed once per pair, descriptor and seed, on the synthetic tuning set of bench_presets_synthetic.py.

Every variant sees exactly the same matches, so the differences between variants are not PatchMatch's seed
noise (which moves a whole-pipeline variant by ±3 % on this set), and a variant costs only the late stages.
A variant may change only options of stages 3-5 (config.OPTION_FIELDS); descriptor or matching options
belong in bench_presets_synthetic.py.  Each descriptor is scored on every variant, so a choice that helps raw
patches more than the learned descriptor shows as a change of the last column (issue 10's comparison).

    .venv/bin/python benchmarks/bench_late_stages.py [--preset accurate] [--pairs 8] [--seeds 0,1] \\
        [--descriptors raw,combined:flowmatch/weights/patchbatch_dense.safetensors] \\
        [--variant NAME=option=value,...] [--json PATH]

Prints mean EPE (px) over the pairs (clean and final-like), on all / occluded / visible pixels, per
descriptor and variant.  The late stages are the pipeline's own (pipeline.late_stages).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench_descriptor_pipeline import descriptor_options  # noqa: E402
from bench_pipeline import network_of, parse_variant  # noqa: E402
from bench_presets_synthetic import tuning_pairs  # noqa: E402

from flowmatch.errors import FlowmatchError, InputError  # noqa: E402
from flowmatch.evaluation.metrics import summary  # noqa: E402

LATE_STAGES = ("consistency", "interpolation", "refinement")


def label(desc: str) -> str:
    """A short column name: "combined:.../patchbatch_dense.safetensors" -> "combined:patchbatch_dense"."""
    kind, _, path = desc.partition(":")
    return f"{kind}:{os.path.splitext(os.path.basename(path))[0]}" if path else kind


def late_variant(spec: str, preset: str) -> tuple[str, dict]:
    """"NAME=k=v,k=v" -> (NAME, {k: v}), parsed as bench_pipeline's NAME=PRESET:k=v."""
    name, _, rest = spec.partition("=")
    try:
        if not rest:
            raise InputError("no options")
        name, _, opts = parse_variant(f"{name}={preset}:{rest}")
    except InputError:
        raise InputError(f"--variant must be NAME=option=value,..., got {spec!r}") from None
    return name, opts


def late_config(preset: str, desc_opts: dict, opts: dict):
    """The PipelineConfig of `preset` with the descriptor and variant options; InputError when the variant
    changes anything before stage 3."""
    from flowmatch.pipelines.patchbatch.presets import resolve_config
    base, cfg = resolve_config(preset, **desc_opts), resolve_config(preset, **desc_opts, **opts)
    early = [f.name for f in dataclasses.fields(cfg) if f.name not in LATE_STAGES
             and getattr(cfg, f.name) != getattr(base, f.name)]
    if early:
        raise InputError(f"variant options {sorted(opts)} change {', '.join(early)}: only stages 3-5 can be "
                         "varied on cached matches (use bench_presets_synthetic.py)")
    return cfg


def cache_run(img1: np.ndarray, img2: np.ndarray, preset: str, model, desc_opts: dict, seed: int) -> dict:
    """One pipeline call's output and stages, with the full-size frames its late stages read."""
    from flowmatch.image import as_image
    from flowmatch.pipelines.patchbatch import patchbatch_flow

    out, st = patchbatch_flow(img1, img2, preset=preset, model=model, seed=seed, return_stages=True, **desc_opts)
    return {**st, "out": out, "img1": as_image(img1, "img1"), "img2": as_image(img2, "img2")}


def rerun(run: dict, cfg) -> np.ndarray:
    """The refined flow of stages 3-5 under `cfg` on a cached run."""
    from flowmatch.pipelines.patchbatch.pipeline import late_stages
    return late_stages(run["flow_ab"], run["flow_ba"], run["cost_ab"], run["matching_frame"], run["img1"],
                       run["img2"], cfg, run["downscale"])[2]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="accurate")
    ap.add_argument("--pairs", type=int, default=8, help="pairs of each kind (clean, final-like)")
    ap.add_argument("--seeds", default="0,1", help="comma-separated pipeline seeds")
    ap.add_argument("--max-motion", type=float, default=80.0)
    ap.add_argument("--descriptors", default="raw,combined:flowmatch/weights/patchbatch_dense.safetensors",
                    help="comma-separated names as in bench_descriptor_pipeline.py")
    ap.add_argument("--variant", action="append", default=[], help="NAME=option=value,... (stages 3-5 only; repeatable)")
    ap.add_argument("--json", default=None, help="write every variant's numbers here")
    args = ap.parse_args()
    import torch
    torch.set_num_threads(2)
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
        descs = [d for d in args.descriptors.split(",") if d]
        variants = [("preset", {})] + [late_variant(v, args.preset) for v in args.variant]
        if not seeds or not descs:
            raise InputError("--seeds and --descriptors must not be empty")
        configs = {(d, n): late_config(args.preset, network_of(descriptor_options(d))[1], o)
                   for d in descs for n, o in variants}
        pairs = tuning_pairs(args.pairs, args.max_motion)
    except (FlowmatchError, ValueError) as exc:
        print(f"bench_late_stages: {exc}", file=sys.stderr)
        return 2
    print(f"{2 * args.pairs} flying-photos pairs, motions up to {args.max_motion:g} px, preset {args.preset}, "
          f"seeds {seeds}, load average {os.getloadavg()[0]:.1f}\n")
    results: dict = {}
    for d in descs:
        model, desc_opts = network_of(descriptor_options(d))
        runs = [(kind, p, cache_run(p.img1, p.img2, args.preset, model, desc_opts, s)) for kind, p in pairs for s in seeds]
        for name, _ in variants:
            rows: dict = {"clean": [], "final": []}
            for kind, p, r in runs:
                sc = summary(r["out"] if name == "preset" else rerun(r, configs[(d, name)]), p.flow, p.valid, p.occlusion)
                rows[kind].append((sc["EPE"], sc["EPE-unmatched"], sc["EPE-matched"]))
            allr = rows["clean"] + rows["final"]
            # nanmean: a pair without occluded pixels has no EPE-unmatched
            res = {"clean": float(np.mean([x[0] for x in rows["clean"]])), "final": float(np.mean([x[0] for x in rows["final"]])),
                   "all": float(np.mean([x[0] for x in allr])), "occluded": float(np.nanmean([x[1] for x in allr])),
                   "visible": float(np.mean([x[2] for x in allr])), "per_run": rows}
            results.setdefault(name, {})[d] = res
    first = descs[0]
    head = " | ".join(f"{label(d)} all / occ / vis" for d in descs)
    cols = [head] + [f"{label(d)} vs {label(first)}" for d in descs[1:]]
    print("| variant | " + " | ".join(cols) + " |")
    print("|---|" + "---|" * (2 * len(descs) - 1))
    for name, per in results.items():
        cells = [f"{per[d]['all']:.3f} / {per[d]['occluded']:.2f} / {per[d]['visible']:.3f}" for d in descs]
        gaps = [f"{100 * (per[d]['all'] / per[first]['all'] - 1):+.1f} %" for d in descs[1:]]
        print(f"| {name} | " + " | ".join(cells + gaps) + " |")
    if args.json:
        from flowmatch._atomic import atomic_open
        with atomic_open(args.json, "w") as fh:
            json.dump({"preset": args.preset, "pairs": args.pairs, "seeds": seeds, "max_motion": args.max_motion,
                       "variants": {n: o for n, o in variants}, "results": results}, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
