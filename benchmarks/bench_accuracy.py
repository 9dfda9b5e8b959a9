"""Accuracy of every available flow method on the real sample pairs and a few held-out synthetic pairs.

    python benchmarks/bench_accuracy.py [--methods a,b] [--synthetic 3] [--out benchmarks/results/accuracy.md]

Cases: every folder of ../shared/data/real (Sintel clean/final, Flying Chairs, KITTI 2012; each with
img1, img2 and ground truth) plus `--synthetic` flying-shapes pairs 512x384 from seeds 9000001...
(integer seeds; the training code draws its pairs from seed-sequence streams, so these are not
training pairs).  Per method: EPE (px) per group, the mean EPE and >3 px outlier share (percent)
over all pairs, and the mean wall time per pair (2 shared cores: noisy).  Sintel pixels marked
invalid are not scored; KITTI is scored on its sparse valid pixels.  Rows are sorted by the mean
EPE over all pairs; the table goes to stdout and to --out, the per-pair numbers to the .json beside
it (--reuse takes a slow method's rows from there).  A method that fails on a pair is shown with
that pair left out (n in the table)."""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from collections import defaultdict

import numpy as np

from flowmatch import io, metrics
from flowmatch._atomic import atomic_open
from flowmatch._paths import REPO_DIR, real_data_dir
from flowmatch.data.datasets import SampleCases
from flowmatch.errors import FlowmatchError
from flowmatch.methods.registry import flow, get_method, methods

SYNTHETIC_SEED = 9_000_001


def real_cases(root: str) -> list[dict]:
    """[{name, group, img1, img2, flow, valid}] for every case folder under `root`."""
    cases = []
    for s in SampleCases(root):
        group, case = s.meta["group"], s.meta["case"]
        label = group
        if group == "sintel":
            label = "sintel-" + ("final" if "_final_" in case else "clean")
        cases.append({"name": s.name, "group": label, "img1": s.img1, "img2": s.img2, "flow": s.flow,
                      "valid": s.valid})
    return cases


def synthetic_cases(n: int) -> list[dict]:
    from flowmatch.data.synthetic import generate_pair
    out = []
    for k in range(n):
        p = generate_pair(384, 512, SYNTHETIC_SEED + k)
        out.append({"name": f"synthetic/{SYNTHETIC_SEED + k}", "group": "synthetic", "img1": p.img1,
                    "img2": p.img2, "flow": p.flow, "valid": p.valid})
    return out


def digest(case: dict) -> str:
    """Fingerprint of a case's frames and ground truth (a changed generator changes it)."""
    h = hashlib.sha1()
    for key in ("img1", "img2", "flow", "valid"):
        h.update(np.ascontiguousarray(case[key]).tobytes())
    return h.hexdigest()[:16]


def evaluate_method(name: str, cases: list[dict], cached: dict | None = None) -> dict:
    """{case name: {"epe", "out3", "seconds", "digest"} or {"error"}}; rows in `cached` whose digest
    still matches are reused."""
    rows = {}
    for c in cases:
        old = (cached or {}).get(c["name"])
        if old is not None and old.get("digest") == c["digest"]:
            rows[c["name"]] = old
            continue
        try:
            t0 = time.perf_counter()
            f = flow(c["img1"], c["img2"], method=name)
            sec = time.perf_counter() - t0
        except FlowmatchError as exc:
            rows[c["name"]] = {"error": str(exc).splitlines()[0][:100]}
            continue
        rows[c["name"]] = {"epe": metrics.epe(f, c["flow"], c["valid"]), "digest": c["digest"],
                           "out3": metrics.outlier_rate(f, c["flow"], c["valid"], threshold=3.0), "seconds": sec}
        print(f"  {name} {c['name']}: EPE {rows[c['name']]['epe']:.3f} ({sec:.2f} s)", file=sys.stderr, flush=True)
    return rows


def summary_table(results: dict[str, dict], cases: list[dict]) -> tuple[str, list[str]]:
    """The Markdown summary (one row per method, best first) and the method order."""
    groups = list(dict.fromkeys(c["group"] for c in cases))
    summ = {}
    for m, rows in results.items():
        ok = [r for r in rows.values() if "epe" in r]
        by_group = defaultdict(list)
        for c in cases:
            r = rows[c["name"]]
            if "epe" in r:
                by_group[c["group"]].append(r["epe"])
        summ[m] = {"n": len(ok), "epe": np.mean([r["epe"] for r in ok]) if ok else np.inf,
                   "out3": np.mean([r["out3"] for r in ok]) if ok else np.nan,
                   "sec": np.mean([r["seconds"] for r in ok]) if ok else np.nan,
                   "groups": {g: np.mean(v) for g, v in by_group.items()}}
    order = sorted(results, key=lambda m: (summ[m]["n"] < len(cases), summ[m]["epe"]))
    counts = {g: sum(c["group"] == g for c in cases) for g in groups}
    head = ["method"] + [f"{g} EPE ({counts[g]})" for g in groups] + ["mean EPE", "mean >3 px %", "s/pair", "n"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for m in order:
        s = summ[m]
        cells = [m] + [f"{s['groups'][g]:.2f}" if g in s["groups"] else "-" for g in groups]
        cells += [f"{s['epe']:.2f}", f"{s['out3']:.1f}", f"{s['sec']:.2f}", f"{s['n']}/{len(cases)}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines), order


def detail_table(results: dict[str, dict], cases: list[dict], order: list[str]) -> str:
    lines = ["| case | " + " | ".join(order) + " |", "|---|" + "---|" * len(order)]
    for c in cases:
        cells = []
        for m in order:
            r = results[m][c["name"]]
            cells.append(f"{r['epe']:.2f} / {r['out3']:.0f}%" if "epe" in r else "err")
        lines.append(f"| {c['name']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--methods", help="comma-separated names (default: every available CPU method)")
    ap.add_argument("--synthetic", type=int, default=3, help="number of held-out synthetic pairs")
    ap.add_argument("--out", default=os.path.join(REPO_DIR, "benchmarks", "results", "accuracy.md"))
    ap.add_argument("--reuse", default="",
                    help="comma-separated methods whose per-pair rows are taken from the JSON beside --out "
                         "(an earlier run) where the pair is unchanged (same digest), instead of recomputed")
    args = ap.parse_args(argv)
    names = ([n.strip() for n in args.methods.split(",")] if args.methods
             else [m.name for m in methods(available_only=True) if not m.needs_gpu])
    for n in names:
        get_method(n)
    real = real_data_dir()
    cases = (real_cases(real) if real else []) + synthetic_cases(args.synthetic)
    if not cases:
        print("no cases: ../shared/data/real is absent and --synthetic 0", file=sys.stderr)
        return 1
    cache_path = os.path.splitext(args.out)[0] + ".json"
    cache = {}
    if os.path.isfile(cache_path):
        with open(cache_path) as fh:
            cache = json.load(fh)
    reuse = {n.strip() for n in args.reuse.split(",") if n.strip()}
    for c in cases:
        c["digest"] = digest(c)
    results = {n: evaluate_method(n, cases, cache.get(n) if n in reuse else None) for n in names}
    with atomic_open(cache_path, "w") as fh:
        json.dump({**cache, **results}, fh, indent=1)
    table, order = summary_table(results, cases)
    text = (f"## Accuracy on {len(cases)} pairs ({'real samples + ' if real else ''}{args.synthetic} held-out "
            f"synthetic), CPU, 2 shared cores (times noisy)\n\nEPE in pixels (lower is better); "
            f">3 px = share of pixels with EPE above 3 px.\n\n{table}\n\n"
            f"### Per pair: EPE / >3 px\n\n{detail_table(results, cases, order)}\n")
    print(text)
    with atomic_open(args.out, "w") as fh:
        fh.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
