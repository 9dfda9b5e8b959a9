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
descriptor and variant.  The baseline's late stages are checked to reproduce the pipeline's own output
bit for bit before any variant runs.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench_descriptor_pipeline import descriptor_options  # noqa: E402
from bench_pipeline import _value, network_of  # noqa: E402
from bench_presets_synthetic import tuning_pairs  # noqa: E402

from flowmatch.errors import FlowmatchError, InputError  # noqa: E402

LATE_STAGES = ("consistency", "interpolation", "refinement")


@dataclasses.dataclass
class Run:
    """One pipeline call's PatchMatch results and what stages 3-5 need (frames as the pipeline sees them)."""
    a: np.ndarray
    b: np.ndarray
    ma: np.ndarray
    k: int
    flow_ab: object
    flow_ba: object
    cost_ab: object
    out: np.ndarray


def label(desc: str) -> str:
    """A short column name: "combined:.../patchbatch_dense.safetensors" -> "combined:patchbatch_dense"."""
    kind, _, path = desc.partition(":")
    return f"{kind}:{os.path.splitext(os.path.basename(path))[0]}" if path else kind


def parse_variant(spec: str) -> tuple[str, dict]:
    """"NAME=k=v,k=v" -> (NAME, {k: v}) with ints, floats, booleans and None parsed."""
    name, _, rest = spec.partition("=")
    items = [kv.split("=", 1) for kv in rest.split(",") if kv]
    if not name or not items or any(len(kv) != 2 or not kv[0] for kv in items):
        raise InputError(f"--variant must be NAME=option=value,..., got {spec!r}")
    return name, {k: _value(v) for k, v in items}


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


def cache_run(img1: np.ndarray, img2: np.ndarray, preset: str, model, desc_opts: dict, seed: int) -> Run:
    """One pipeline call, kept with what its late stages read."""
    from flowmatch.image import as_image
    from flowmatch.pipelines.patchbatch import patchbatch_flow
    from flowmatch.pipelines.patchbatch.pipeline import _resize_frame, match_size

    out, st = patchbatch_flow(img1, img2, preset=preset, model=model, seed=seed, return_stages=True, **desc_opts)
    a, b = as_image(img1, "img1"), as_image(img2, "img2")
    cfg, k = st["config"], st["downscale"]
    ma = a
    if k > 1:  # the frame the matching stages saw (consistency's saliency and the edges are taken from it)
        mh, mw, _ = match_size(a.shape[0], a.shape[1], cfg.downscale, cfg.downscale_min_side)
        ma = _resize_frame(a, mh, mw)
    return Run(a, b, ma, k, st["flow_ab"], st["flow_ba"], st["cost_ab"], out)


def late_stages(run: Run, cfg) -> np.ndarray:
    """Stages 3-5 as pipeline.patchbatch_flow runs them (checked against its output on the baseline)."""
    from flowmatch.ops.interpolation import NoMatchesWarning
    from flowmatch.pipelines.patchbatch.consistency import drop_flat, sparse_matches
    from flowmatch.pipelines.patchbatch.interpolation import densify
    from flowmatch.pipelines.patchbatch.pipeline import _upsample_flow, refinement_at
    from flowmatch.pipelines.patchbatch.refinement import refine

    c = cfg.consistency
    m = sparse_matches(run.flow_ab, run.flow_ba, run.cost_ab, threshold=c.threshold, cost_quantile=c.cost_quantile,
                       step=c.seed_step, scale=float(cfg.descriptors.stride))
    m = drop_flat(m, run.ma, c.saliency_th)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NoMatchesWarning)
        dense = densify(m, run.ma, cfg.interpolation)
    if run.k > 1:
        dense = _upsample_flow(dense, run.a.shape[0], run.a.shape[1])
    return refine(dense, run.a, run.b, refinement_at(cfg.refinement, run.k)) if cfg.refinement.enabled else dense


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
        variants = [("preset", {})] + [parse_variant(v) for v in args.variant]
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
        for kind, p, r in runs:
            if not np.array_equal(late_stages(r, configs[(d, "preset")]), r.out):
                raise RuntimeError("late_stages no longer reproduces the pipeline's output: update it to match "
                                   "pipeline.patchbatch_flow")
        for name, _ in variants:
            rows: dict = {"clean": [], "final": []}
            for kind, p, r in runs:
                f = r.out if name == "preset" else late_stages(r, configs[(d, name)])
                e = np.linalg.norm(f - p.flow, axis=-1)
                occ = p.occlusion.astype(bool)
                rows[kind].append((float(e.mean()), float(e[occ].mean()) if occ.any() else 0.0, float(e[~occ].mean())))
            allr = rows["clean"] + rows["final"]
            res = {"clean": float(np.mean([x[0] for x in rows["clean"]])), "final": float(np.mean([x[0] for x in rows["final"]])),
                   "all": float(np.mean([x[0] for x in allr])), "occluded": float(np.mean([x[1] for x in allr])),
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
