"""`flowmatch video INPUT --out DIR [--method NAME] [--viz flow.mp4] [--every K] [--start S] [--end E] [--resume]`.

INPUT is a video file or a folder of frames; see flowmatch.video (under torchrun the pairs are split
across the ranks)."""
from __future__ import annotations

import argparse
import os
import sys

from .flow import add_method_arguments, parse_options

EXIT_TRUNCATED = 3
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143

EPILOG = f"""\
resume: DIR/video_settings.json records the method, its options, --every, --start, --format, the
device type, the frame size and the input's identity (size and a hash of its first and last bytes).
A folder computed with other settings is refused (with or without --resume), never mixed.

exit codes: 0 done; 1 error (bad input, refused output, a folder of other settings); 2 bad usage;
{EXIT_TRUNCATED} the input ended early (fewer frames than its header claims; the flows of the pairs it
had are written); {EXIT_INTERRUPTED} interrupted (Ctrl-C); {EXIT_TERMINATED} terminated (SIGTERM). After 130 or 143 every
flow file present is complete and no temporary is left: run again with --resume.

several processes or machines: torchrun --nproc_per_node N [--nnodes M ...] -m flowmatch video ...
(one output folder, visible to every rank)."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("video", help="flow for every frame pair of a video or frame folder",
                       description="Stream a video (or a folder of frames) and write one flow file per frame pair.",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", help="video file (mp4, ...) or folder of frames")
    p.add_argument("--out", required=True, help="folder for flow_XXXXXX.flo (or .png) files (not the frame folder)")
    p.add_argument("--viz", help="also write a video of frame | colour-coded flow side by side (.mp4)")
    p.add_argument("--every", type=int, default=1, help="use every K-th frame (flow between frames i and i+K)")
    p.add_argument("--start", type=int, default=0, help="first frame index (inclusive)")
    p.add_argument("--end", type=int, help="last frame index (exclusive)")
    p.add_argument("--format", dest="fmt", default="flo", choices=("flo", "png"), help="flow file format")
    p.add_argument("--resume", action="store_true",
                   help="skip pairs whose flow file already exists (the folder's settings must match)")
    p.add_argument("--viz-max", type=float, help="flow magnitude (px) shown at full colour (default: per frame)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--workers", type=int, help="pairs computed at once (default: the method's choice, 2 for "
                   "OpenCV's methods on a multi-core CPU, else 1); the files are the same for any value")
    add_method_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..video import Terminated, video_flow

    try:
        s = video_flow(args.input, args.out, args.method, viz=args.viz, every=args.every, start=args.start,
                       end=args.end, fmt=args.fmt, resume=args.resume, device=args.device,
                       options=parse_options(args.option), viz_max_radius=args.viz_max, progress=not args.quiet,
                       workers=args.workers)
    except Terminated:
        print("flowmatch video: terminated (SIGTERM); the finished flow files are kept, run again with --resume",
              file=sys.stderr)
        return EXIT_TERMINATED
    except KeyboardInterrupt:
        print("flowmatch video: interrupted; the finished flow files are kept, run again with --resume",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    if int(os.environ.get("RANK", "0")) != 0:  # torchrun: rank 0 speaks for the job (same summary everywhere)
        return EXIT_TRUNCATED if s.truncated else 0
    print(f"{s.pairs} pairs ({s.computed} computed, {s.skipped} already there) in {s.seconds:.1f} s "
          f"({s.fps:.2f} pairs/s) -> {args.out}" + (f", {s.viz}" if s.viz else ""), file=sys.stderr)
    return EXIT_TRUNCATED if s.truncated else 0  # the warning went to the "flowmatch.video" logger
