"""`flowmatch eval --dataset NAME --root PATH --method NAME [--split] [--pass] [--limit N] [--out DIR]`.

Runs flowmatch.evaluation.harness.evaluate; works under `torchrun --nproc_per_node N` (frames sharded)."""
from __future__ import annotations

import argparse
import os

from .flow import add_method_arguments, parse_options


def register(sub: argparse._SubParsersAction) -> None:
    from ..evaluation.datasets import DATASETS

    p = sub.add_parser("eval", help="evaluate a method on a benchmark's training set",
                       description="Evaluate a flow method on an official dataset layout with the official metrics.")
    p.add_argument("--dataset", required=True, choices=DATASETS)
    p.add_argument("--root", required=True, help="folder holding the dataset's official layout")
    p.add_argument("--split", default="training",
                   help="split with ground truth (default: training; for chairs: train or val)")
    p.add_argument("--pass", dest="pass_", default="clean", choices=("clean", "final"), help="Sintel pass")
    p.add_argument("--limit", type=int, help="evaluate only the first N frames")
    p.add_argument("--out", help="write results.json, results.md (and panels/) here")
    p.add_argument("--panels", action="store_true", help="write a colour/error panel per frame into OUT/panels")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_method_arguments(p, method_required=True)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .._outputs import check_outputs, folder
    from ..errors import InputError
    from ..evaluation.harness import evaluate
    from ..evaluation.report import flatten_metrics, format_value

    if args.panels and not args.out:
        raise InputError("--panels needs --out DIR (the panels go into DIR/panels)")
    check_outputs({"--out": folder(args.out)}, {"--root": folder(args.root)})
    report = evaluate(args.dataset, args.root, args.method, split=args.split, pass_=args.pass_,
                      limit=args.limit, out=args.out, panels=args.panels, device=args.device,
                      options=parse_options(args.option), progress=not args.quiet)
    if int(os.environ.get("RANK", "0")) == 0:
        metrics = ", ".join(f"{k} {format_value(v)}" for k, v in flatten_metrics(report["metrics"]).items())
        print(f"{args.method} on {args.dataset} ({report['frames_evaluated']} frames): {metrics}")
        if args.out:
            print(f"wrote {os.path.join(args.out, 'results.json')} and results.md")
    return 0
