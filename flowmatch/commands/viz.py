"""`flowmatch viz FLOW -o out.png [--max-radius R] [--legend] [--quiver [STEP]] [--img1 FRAME] [--gt GT]`.

FLOW alone: the Middlebury colour coding, pixel for pixel flow_to_color (invalid pixels black).
--legend / --quiver: the same picture with a colour-wheel inset and/or arrows (flowmatch.viz.flow_figure).
--img1: frame | flow side by side, and | error (colour bar, EPE) with --gt (flowmatch.viz.side_by_side).
--gt without --img1: the error map with its colour bar and the EPE (flowmatch.viz.error_figure)."""
from __future__ import annotations

import argparse

from ..errors import InputError

DEFAULT_QUIVER_STEP = 16


def run(args: argparse.Namespace) -> int:
    from .. import io, viz
    from .._outputs import check_outputs

    check_outputs({"-o": args.out}, {"FLOW": args.flow, "--img1": args.img1, "--gt": args.gt})
    if args.max_radius is not None and not args.max_radius > 0:
        raise InputError(f"--max-radius must be a positive number of pixels, got {args.max_radius}")
    if args.quiver is not None and not 1 <= args.quiver <= 4096:
        raise InputError(f"--quiver STEP must be a number of pixels in [1, 4096], got {args.quiver}")
    flow, valid = io.read_flow(args.flow)
    gt = gt_valid = None
    if args.gt is not None:
        gt, gt_valid = io.read_flow(args.gt)
        if gt.shape != flow.shape:
            raise InputError(f"--gt {args.gt!r} is {gt.shape[1]}×{gt.shape[0]} but FLOW is "
                             f"{flow.shape[1]}×{flow.shape[0]}")
    if args.img1 is not None:
        img1 = io.read_image(args.img1)
        # the frame and the flow were produced together: FLOW's own invalid pixels stay black too
        picture = viz.side_by_side(img1, flow, gt, gt_valid if gt is not None else valid, args.max_radius,
                                   legend=args.legend, quiver=args.quiver)
    elif gt is not None:
        if args.legend or args.quiver is not None or args.max_radius is not None:
            raise InputError("--gt without --img1 writes the error map (fixed EPE bins): --legend, --quiver and "
                             "--max-radius apply to the flow picture; add --img1 for frame | flow | error")
        picture = viz.error_figure(flow, gt, gt_valid)
    elif args.legend or args.quiver is not None:
        picture = viz.flow_figure(flow, valid, args.max_radius, legend=args.legend, quiver=args.quiver)
    else:
        picture = viz.flow_to_color(flow, args.max_radius, valid)
    io.write_image(args.out, picture)
    print(args.out)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("viz", help="colour-code a flow file as an image (legend, arrows, error map, panels)",
                       description="Write a picture of FLOW: the Middlebury colour coding (invalid pixels black), "
                                   "optionally with a colour-wheel legend and arrows, or side by side with the "
                                   "frame and the error against ground truth.")
    p.add_argument("flow", help="flow file (.flo, .png = KITTI 16-bit, .pfm)")
    p.add_argument("-o", "--out", required=True, help="output picture (.png, .jpg, ...)")
    p.add_argument("--max-radius", type=float, default=None,
                   help="flow magnitude in pixels shown at full saturation (default: the largest in the file, "
                        "or in --gt)")
    p.add_argument("--legend", action="store_true",
                   help="draw the colour wheel (direction = hue, saturation up to --max-radius) in the top-right "
                        "corner")
    p.add_argument("--quiver", type=int, nargs="?", const=DEFAULT_QUIVER_STEP, default=None, metavar="STEP",
                   help=f"draw arrows on every STEP-th pixel (default step {DEFAULT_QUIVER_STEP}); the longest "
                        "arrow is STEP px long")
    p.add_argument("--img1", help="first frame: write frame | flow side by side (| error with --gt)")
    p.add_argument("--gt", help="ground-truth flow: the error map with a colour bar and the EPE (with --img1: "
                                "as the third tile)")
    p.set_defaults(func=run)
