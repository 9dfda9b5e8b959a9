"""`flowmatch video INPUT --out DIR [--method NAME] [--viz flow.mp4] [--every K] [--start S] [--end E] [--resume]`.

INPUT is a video file or a folder of frames; see flowmatch.video.video_flow."""
from __future__ import annotations

import argparse
import sys

from .flow import add_method_arguments, parse_options


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("video", help="flow for every frame pair of a video or frame folder",
                       description="Stream a video (or a folder of frames) and write one flow file per frame pair.")
    p.add_argument("input", help="video file (mp4, ...) or folder of frames")
    p.add_argument("--out", required=True, help="folder for flow_XXXXXX.flo (or .png) files")
    p.add_argument("--viz", help="also write a video of frame | colour-coded flow side by side (.mp4)")
    p.add_argument("--every", type=int, default=1, help="use every K-th frame (flow between frames i and i+K)")
    p.add_argument("--start", type=int, default=0, help="first frame index (inclusive)")
    p.add_argument("--end", type=int, help="last frame index (exclusive)")
    p.add_argument("--format", dest="fmt", default="flo", choices=("flo", "png"), help="flow file format")
    p.add_argument("--resume", action="store_true", help="skip pairs whose flow file already exists")
    p.add_argument("--viz-max", type=float, help="flow magnitude (px) shown at full colour (default: per frame)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_method_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..video import video_flow

    s = video_flow(args.input, args.out, args.method, viz=args.viz, every=args.every, start=args.start,
                   end=args.end, fmt=args.fmt, resume=args.resume, device=args.device,
                   options=parse_options(args.option), viz_max_radius=args.viz_max, progress=not args.quiet)
    print(f"{s.pairs} pairs ({s.computed} computed, {s.skipped} already there) in {s.seconds:.1f} s "
          f"({s.fps:.2f} pairs/s) -> {args.out}" + (f", {s.viz}" if s.viz else ""), file=sys.stderr)
    return 0
