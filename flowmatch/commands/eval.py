"""`flowmatch eval --dataset NAME --root PATH --method NAME [--split] [--pass] [--limit N] [--out DIR]
[--resume] [--save-flows] [--panels]`.

Runs flowmatch.evaluation.harness.evaluate; works under `torchrun --nproc_per_node N` (frames sharded).
Prints the aggregate as an aligned table (names with units); with --out writes results.json,
results.md and the per-frame cache that --resume reuses.  SIGINT / SIGTERM stop after the current
frame with exit status 130 / 143; the finished frames stay cached."""
from __future__ import annotations

import argparse
import os
import sys

from .flow import add_method_arguments, parse_options


def register(sub: argparse._SubParsersAction) -> None:
    from ..evaluation.datasets import DATASETS

    p = sub.add_parser("eval", help="evaluate a method on a benchmark's training set",
                       description="Evaluate a flow method on an official dataset layout with the official metrics. "
                                   "With --out, every finished frame is cached there: after an interruption "
                                   "(Ctrl-C, SIGTERM, an error) run the same command with --resume to finish.")
    p.add_argument("--dataset", required=True, choices=DATASETS)
    p.add_argument("--root", required=True, help="folder holding the dataset's official layout")
    p.add_argument("--split", default="training",
                   help="split with ground truth (default: training; for chairs: train or val)")
    p.add_argument("--pass", dest="pass_", default="clean", choices=("clean", "final"), help="Sintel pass")
    p.add_argument("--limit", type=int, help="evaluate only the first N frames")
    p.add_argument("--out", help="write results.json, results.md, the per-frame cache (eval_settings.json, "
                                 "frames-*/) and with --panels / --save-flows panels/ and flows/ here")
    p.add_argument("--resume", action="store_true",
                   help="reuse the frames cached in --out by an earlier run of the same settings (dataset, root, "
                        "split, pass, method, options, device, version, weights; not --limit) and compute the rest; "
                        "other settings are refused. Without --resume a run starts afresh and replaces the cache")
    p.add_argument("--save-flows", action="store_true",
                   help="write each predicted flow to OUT/flows/<frame>.flo (pixels, x then y)")
    p.add_argument("--panels", action="store_true", help="write a colour/error panel per frame into OUT/panels")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_method_arguments(p, method_required=True)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .._outputs import check_outputs, folder
    from .._signals import Interrupted
    from ..errors import InputError
    from ..evaluation.harness import evaluate
    from ..evaluation.report import text_report

    for flag, given in (("--panels", args.panels), ("--save-flows", args.save_flows), ("--resume", args.resume)):
        if given and not args.out:
            raise InputError(f"{flag} needs --out DIR (its files go into DIR)")
    check_outputs({"--out": folder(args.out)}, {"--root": folder(args.root)})
    main_rank = int(os.environ.get("RANK", "0")) == 0
    try:
        report = evaluate(args.dataset, args.root, args.method, split=args.split, pass_=args.pass_,
                          limit=args.limit, out=args.out, panels=args.panels, device=args.device,
                          options=parse_options(args.option), progress=not args.quiet, resume=args.resume,
                          save_flows=args.save_flows)
    except Interrupted as stop:
        if main_rank:
            print(f"flowmatch eval: {stop}", file=sys.stderr)
        return stop.exit_code
    if main_rank:
        print(text_report(report))
        if report.get("frames_reused"):
            print(f"({report['frames_reused']} of {report['frames_evaluated']} frames reused from the cache)")
        if args.out:
            print(f"wrote {os.path.join(args.out, 'results.json')} and results.md")
    return 0
