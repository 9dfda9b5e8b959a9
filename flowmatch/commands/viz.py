"""`flowmatch viz FLOW -o out.png [--max-radius R] [--img1 FRAME] [--gt GT]`.

Writes the Middlebury colour coding of a flow file (.flo, .png = KITTI, .pfm); invalid pixels are
black.  With --img1 (and optionally --gt) it writes a panel: frame, flow, ground truth, error."""
from __future__ import annotations

import argparse

from ..errors import InputError


def run(args: argparse.Namespace) -> int:
    from .. import io, viz
    from .._outputs import check_outputs

    check_outputs({"-o": args.out}, {"FLOW": args.flow, "--img1": args.img1, "--gt": args.gt})
    if args.max_radius is not None and not args.max_radius > 0:
        raise InputError(f"--max-radius must be a positive number of pixels, got {args.max_radius}")
    flow, valid = io.read_flow(args.flow)
    if args.img1 is None:
        if args.gt is not None:
            raise InputError("--gt needs --img1 (the panel shows frame, flow, ground truth and error)")
        io.write_image(args.out, viz.flow_to_color(flow, args.max_radius, valid))
    else:
        img1 = io.read_image(args.img1)
        gt = gt_valid = None
        if args.gt is not None:
            gt, gt_valid = io.read_flow(args.gt)
            if gt.shape != flow.shape:
                raise InputError(f"--gt {args.gt!r} is {gt.shape[1]}×{gt.shape[0]} but FLOW is "
                                 f"{flow.shape[1]}×{flow.shape[0]}")
        viz.save_panel(args.out, img1, flow, gt, gt_valid, max_radius=args.max_radius)
    print(args.out)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("viz", help="colour-code a flow file as an image",
                       description="Write the Middlebury colour coding of FLOW (invalid pixels black).")
    p.add_argument("flow", help="flow file (.flo, .png = KITTI 16-bit, .pfm)")
    p.add_argument("-o", "--out", required=True, help="output image (.png, .jpg, ...)")
    p.add_argument("--max-radius", type=float, default=None,
                   help="flow magnitude in pixels shown at full saturation (default: the largest in the file)")
    p.add_argument("--img1", help="first frame: write a panel (frame | flow [| ground truth | error])")
    p.add_argument("--gt", help="ground-truth flow file for the panel")
    p.set_defaults(func=run)
