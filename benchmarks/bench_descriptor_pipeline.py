"""Which descriptor makes the PatchBatch pipeline match best, judged on held-out real pairs.

The same pipeline (a preset of flowmatch.pipelines.patchbatch; default patchbatch-accurate, which until
issue 16 was the "fast" preset) runs with each descriptor; per group of held-out real pairs (flowmatch.data.sources.HELD_OUT_REAL: no training run
ever reads them) it prints the mean EPE, and for each descriptor field FPR95 and the top-1
(hardest-negative) share on fixed triplets of the same pairs, measured on the dense descriptor fields
themselves (so raw patches, DAISY and the networks are scored the same way).  Zero flow is printed for
scale.  Each pair's EPE is the mean over ``--seeds`` (default six): PatchMatch starts at random, and a
single seed moves the Sintel final group by up to ~1 px (market_5 alone ranges 17-28 px over seeds),
enough to flip a verdict.  For the pairs with an occlusion mask (Sintel) it also prints Sintel's EPE
matched / unmatched (pixels visible in both frames / occluded), averaged over those pairs.  With
``--boundary-triplets N`` it also prints, per descriptor, how often a motion-boundary negative (the
anchor has another motion in its context; the negative is where that motion would carry it:
PatchPairSampler's boundary_negatives) is nearer than the true match.  The last
lines print the issue's bar for each descriptor against raw patches (lower on every group, mean of
groups at least 15 % lower).

    python benchmarks/bench_descriptor_pipeline.py                         # raw, daisy, shipped nets
    python benchmarks/bench_descriptor_pipeline.py --weights runs/pb/snapshots/step_*.safetensors \\
        --skip-baselines --json curve.json                                 # learning curve of a run
    python benchmarks/bench_descriptor_pipeline.py --preset patchbatch-accurate --pairs sintel

Descriptor names: ``raw`` (normalised 9×9 patches), ``daisy`` (scikit-image DAISY), ``dense`` /
``paper`` (the shipped networks), a weights path (a network), ``combined:PATH`` (network and raw
patches concatenated, see the pipeline's DescriptorConfig).
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from flowmatch.commands.flow import parse_options  # noqa: E402
from flowmatch.errors import FlowmatchError  # noqa: E402
from flowmatch.data.sample_cases import REPORT_GROUPS, report_group  # noqa: E402
import flowmatch  # noqa: E402
from flowmatch.data.patch_pairs import PatchPairSampler, PatchTriplets  # noqa: E402
from flowmatch.train.descriptor_scores import descriptor_scores  # noqa: E402
from flowmatch.train.patchbatch_data import heldout_real_frames  # noqa: E402

GROUPS = REPORT_GROUPS



def descriptor_options(desc: str) -> dict:
    """flowmatch.flow options selecting descriptor `desc` (see the module docstring)."""
    if desc in ("raw", "daisy"):
        return {"descriptor": desc}
    if desc.startswith("combined:"):
        return {"descriptor": "combined", "descriptor_model": desc.split(":", 1)[1]}
    return {"descriptor": "patchbatch", "descriptor_model": None if desc == "dense" else desc}


def dense_field(desc: str, img: np.ndarray) -> torch.Tensor:
    """H×W×D descriptor field of `img` for descriptor `desc` (stride 1, no PCA)."""
    from flowmatch.pipelines.patchbatch.config import DescriptorConfig
    from flowmatch.pipelines.patchbatch.descriptors import compute_descriptors

    opts = descriptor_options(desc)
    cfg = DescriptorConfig(kind=opts["descriptor"], model=opts.get("descriptor_model"))
    return compute_descriptors(img, img, cfg)[0].float()


def sample_field(field: torch.Tensor, xy: np.ndarray) -> torch.Tensor:
    """Bilinear samples of an H×W×D field at K×2 pixel positions (x first) -> K×D."""
    h, w = field.shape[:2]
    g = torch.from_numpy(xy.astype(np.float32)).clone()
    g[:, 0] = 2 * g[:, 0] / (w - 1) - 1
    g[:, 1] = 2 * g[:, 1] / (h - 1) - 1
    out = torch.nn.functional.grid_sample(field.permute(2, 0, 1)[None], g[None, None], align_corners=True)
    return out[0, :, 0].T


def fields_of(desc: str, frames: list) -> list:
    """(img1, img2) dense descriptor fields of every frame for descriptor `desc`."""
    return [(dense_field(desc, f.img1), dense_field(desc, f.img2)) for f in frames]


def _sampled(fields: list, positions) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    da, dp, dn = [], [], []
    for i, (f1, f2) in enumerate(fields):
        m = positions.frame == i
        da.append(sample_field(f1, positions.xy1[m]))
        dp.append(sample_field(f2, positions.xy2[m]))
        dn.append(sample_field(f2, positions.xyn[m]))
    return torch.cat(da), torch.cat(dp), torch.cat(dn)


def triplet_scores(fields: list, positions) -> dict:
    return descriptor_scores(*_sampled(fields, positions))


def boundary_triplets(frames: list, n: int, neg_max: float = 8.0):
    """Up to n triplets whose anchor has another motion in its context and whose negative is where that
    motion would carry it (PatchPairSampler's motion-boundary negatives, 21-px context)."""
    t = PatchPairSampler(frames, 21, augment=False, seed=6, neg_max=neg_max, boundary_negatives=1.0).sample(n)
    keep = np.linalg.norm(t.xyn - t.xy2, axis=1) > neg_max  # not the near-negative fallbacks
    return PatchTriplets(t.anchor[torch.from_numpy(keep)], t.positive[torch.from_numpy(keep)],
                         t.negative[torch.from_numpy(keep)], t.frame[keep], t.xy1[keep], t.xy2[keep], t.xyn[keep])


def boundary_confusion(fields: list, positions) -> float:
    """Share of boundary triplets whose other-motion negative is nearer than the true match."""
    da, dp, dn = _sampled(fields, positions)
    return float(((da - dn).norm(dim=1) < (da - dp).norm(dim=1)).float().mean())


def run(descs: list[str], preset: str, frames: list, with_zero: bool, triplets: int,
        seeds: tuple[int, ...] = (0,), options: dict | None = None, boundary: int = 0) -> dict:
    """Per descriptor: each pair's EPE averaged over `seeds` (PatchMatch's random initialisation and the
    PCA samples: one seed alone moves a group mean by up to ~1 px on Sintel final), group means, their
    mean, seconds per pipeline call, (with `triplets`) FPR95 / top-1 and (with `boundary`) the share of
    motion-boundary triplets whose other-motion negative wins."""
    from flowmatch.evaluation.metrics import summary

    rows = {}
    positions = PatchPairSampler(frames, 21, augment=False, seed=5).sample(triplets) if triplets else None
    bpositions = boundary_triplets(frames, boundary) if boundary else None
    for desc in (["zero"] if with_zero else []) + descs:
        per_pair, per_seed, by_part, t0 = {}, {}, {}, time.perf_counter()
        for f in frames:
            preds = ([np.zeros_like(f.flow)] if desc == "zero" else
                     [flowmatch.flow(f.img1, f.img2, method=preset, seed=s, **(options or {}), **descriptor_options(desc))
                      for s in seeds])
            scores = [summary(pred, f.flow, f.valid, f.occlusion) for pred in preds]
            if desc != "zero":
                per_seed[f.name] = [float(sc["EPE"]) for sc in scores]
            per_pair[f.name] = float(np.mean([sc["EPE"] for sc in scores]))
            if f.occlusion is not None:  # Sintel's EPE matched / unmatched (visible in both frames / occluded)
                for part in ("matched", "unmatched"):
                    v = [sc[f"EPE-{part}"] for sc in scores if np.isfinite(sc[f"EPE-{part}"])]
                    if v:
                        by_part.setdefault(part, {})[f.name] = float(np.mean(v))
        secs = (time.perf_counter() - t0) / len(frames) / (1 if desc == "zero" else len(seeds))
        groups: dict[str, list[float]] = {}
        for name, v in per_pair.items():
            groups.setdefault(report_group(name), []).append(v)
        means = {g: float(np.mean(v)) for g, v in groups.items()}
        row = {"per_pair": per_pair, "groups": means, "mean_of_groups": float(np.mean(list(means.values()))),
               "s_per_pair": secs}
        if per_seed:  # each pair's EPE per seed, in the order of `seeds` (its spread says what a difference means)
            row["per_seed"] = per_seed
        for part, pairs in by_part.items():  # pairs with an occlusion mask (the Sintel ones)
            row[f"per_pair_{part}"] = pairs
            row[part] = float(np.mean(list(pairs.values())))
        if (positions is not None or bpositions is not None) and desc != "zero":
            fields = fields_of(desc, frames)
            if positions is not None:
                row.update(triplet_scores(fields, positions))
            if bpositions is not None:
                row["boundary_confusion"] = boundary_confusion(fields, bpositions)
                row["boundary_triplets"] = int(len(bpositions.frame))
        rows[desc] = row
        print(f"  {desc}: mean of groups {row['mean_of_groups']:.3f} ({secs:.2f} s/pair)", flush=True)
    return rows


def table(rows: dict) -> str:
    labels = [g for g, _, _ in GROUPS if any(g in r["groups"] for r in rows.values())]
    head = "| descriptor | " + " | ".join(labels) + " | mean of groups | FPR95 | top-1 | s/pair |"
    lines = [head, "|" + "---|" * (len(labels) + 5)]
    for d, r in rows.items():
        cells = [f"{r['groups'][g]:.3f}" if g in r["groups"] else "" for g in labels]
        fpr = f"{r['fpr95']:.3f}" if "fpr95" in r else ""
        top = f"{r['top1']:.3f}" if "top1" in r else ""
        lines.append(f"| {d} | " + " | ".join(cells) + f" | {r['mean_of_groups']:.3f} | {fpr} | {top} | "
                     f"{r['s_per_pair']:.2f} |")
    return "\n".join(lines)


def verdict(rows: dict, baseline: str = "raw") -> list[str]:
    """The issue's bar, per descriptor against `baseline`: lower mean EPE on every group, and the
    change of the mean of groups (the bar is at least -15 %)."""
    if baseline not in rows:
        return []
    base = rows[baseline]
    out = []
    for d, r in rows.items():
        if d in (baseline, "zero"):
            continue
        worse = [g for g, v in r["groups"].items() if not v < base["groups"].get(g, float("inf"))]
        change = 100.0 * (r["mean_of_groups"] / base["mean_of_groups"] - 1.0)
        ok = not worse and change <= -15.0
        out.append(f"{d} vs {baseline}: mean of groups {change:+.1f} %, "
                   f"{'lower on every group' if not worse else 'not lower on ' + ', '.join(worse)}"
                   f" -> bar {'met' if ok else 'not met'}")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="patchbatch-accurate")
    ap.add_argument("--descriptors", default="raw,daisy,dense", help="comma-separated descriptor names")
    ap.add_argument("--weights", nargs="*", default=[], help="extra network weights (globs) to score")
    ap.add_argument("--skip-baselines", action="store_true", help="only the --weights (learning curves)")
    ap.add_argument("--pairs", default="", help="only pairs whose name contains this")
    ap.add_argument("--triplets", type=int, default=4096, help="held-out triplets for FPR95/top-1 (0 = skip)")
    ap.add_argument("--boundary-triplets", type=int, default=0,
                    help="also score this many motion-boundary triplets (other-motion negative; 0 = skip)")
    ap.add_argument("--seeds", default="0,1,2,3,4,5", help="average each pair's EPE over these pipeline seeds")
    ap.add_argument("--option", action="append", default=[], metavar="K=V",
                    help="extra pipeline option for every descriptor (repeatable), e.g. raw_weight=0.6")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--json", default=None, help="write all numbers here")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    frames = [f for f in heldout_real_frames(min_size=64) if args.pairs in f.name]
    if not frames:
        print("no held-out real pairs found (../shared/data/real): nothing to judge")
        return 0
    descs = [] if args.skip_baselines else [d for d in args.descriptors.split(",") if d]
    for pattern in args.weights:
        descs += sorted(glob.glob(pattern)) or [pattern]
    print(f"{len(frames)} held-out real pairs, preset {args.preset}, {torch.get_num_threads()} threads")
    seeds = tuple(int(s) for s in args.seeds.split(",") if s.strip())
    try:
        options = parse_options(args.option)
    except FlowmatchError as exc:
        raise SystemExit(str(exc)) from None
    if "seed" in options:  # each pipeline call gets its seed from --seeds
        raise SystemExit("pass pipeline seeds with --seeds, not --option seed=...")
    rows = run(descs, args.preset, frames, not args.skip_baselines, args.triplets, seeds, options,
               args.boundary_triplets)
    print(table(rows))
    for d, r in rows.items():
        if "boundary_confusion" in r:
            print(f"{d}: other-motion negative nearer than the match on {100 * r['boundary_confusion']:.1f} % "
                  f"of {r['boundary_triplets']} motion-boundary triplets")
    occ_rows = {d: r for d, r in rows.items() if "matched" in r}
    if occ_rows:
        n = len(next(iter(occ_rows.values()))["per_pair_matched"])
        print(f"\nEPE on the {n} pairs with an occlusion mask (Sintel): matched = visible in both frames, "
              "unmatched = occluded in frame 2 (no descriptor can match these; the interpolation fills them)")
        print("| descriptor | all | matched | unmatched |\n|---|---|---|---|")
        for d, r in occ_rows.items():
            all_ = np.mean([r["per_pair"][k] for k in r["per_pair_matched"]])
            print(f"| {d} | {all_:.3f} | {r['matched']:.3f} | {r.get('unmatched', float('nan')):.3f} |")
    lines = verdict(rows)
    print("\n".join(lines))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"preset": args.preset, "seeds": list(seeds), "options": options, "rows": rows,
                       "verdict": lines}, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
