"""`flowmatch submit --dataset sintel|kitti2012|kitti2015 --root PATH --method NAME --out DIR [--zip]`."""
from __future__ import annotations

import argparse
import os

from .flow import add_method_arguments, parse_options


def register(sub: argparse._SubParsersAction) -> None:
    from ..evaluation.submit import SUBMIT_DATASETS

    p = sub.add_parser("submit", help="write test-set results in a benchmark's upload format",
                       description="Run a method on a benchmark's test split and write the upload structure "
                                   "(Sintel: clean/ final/ <scene>/frame_XXXX.flo; KITTI: flow/XXXXXX_10.png).")
    p.add_argument("--dataset", required=True, choices=SUBMIT_DATASETS)
    p.add_argument("--root", required=True, help="folder holding the dataset's official layout")
    p.add_argument("--out", required=True, help="output folder (the upload structure goes inside)")
    p.add_argument("--pass", dest="passes", action="append", choices=("clean", "final"),
                   help="Sintel pass (repeatable; default both)")
    p.add_argument("--split", default="test", help="split to run on (default: test)")
    p.add_argument("--limit", type=int, help="only the first N frames (per pass)")
    p.add_argument("--zip", action="store_true", help="also pack the folder into OUT.zip")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_method_arguments(p, method_required=True)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .._outputs import check_outputs, folder
    from ..evaluation.submit import submit

    check_outputs({"--out": folder(args.out), "--zip": args.out.rstrip("/") + ".zip" if args.zip else None},
                  {"--root": folder(args.root)})
    written = submit(args.dataset, args.root, args.method, args.out, passes=args.passes or ("clean", "final"),
                     split=args.split, zip_=args.zip, device=args.device, options=parse_options(args.option),
                     limit=args.limit, progress=not args.quiet)
    if int(os.environ.get("RANK", "0")) == 0:
        flows = [w for w in written if not w.endswith(".zip")]
        print(f"wrote {len(flows)} flow files under {args.out}"
              + (f" and {written[-1]}" if args.zip and written and written[-1].endswith(".zip") else ""))
    return 0
