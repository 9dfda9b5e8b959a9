"""`flowmatch flow`: optical flow of one pair of images, or of every pair of a folder.

    flowmatch flow IMG1 IMG2 -o flow.flo [--viz flow_colour.png]
    flowmatch flow DIR --out OUTDIR [--pairs FILE] [--format flo|kitti.png|pfm] [--overwrite]

A flow file is written by extension: .flo (Middlebury), .pfm, or .kitti.png / .png = KITTI's 16-bit
flow PNG, which is data, not a picture; --viz writes the colour-coded picture.  The folder form is
in flow_pairs.py."""
from __future__ import annotations

import argparse
import ast
import logging
import os
import time
from typing import Any

from .._outputs import check_outputs
from ..errors import InputError

log = logging.getLogger(__name__)

FLOW_EXTENSIONS = (".flo", ".kitti.png", ".png", ".pfm")
KITTI_WARNING = ("a 16-bit KITTI flow file (data, not a picture: name it .kitti.png to make that plain, "
                 "and use --viz for a colour picture)")


def parse_options(items: list[str] | None) -> dict[str, Any]:
    """`KEY=VALUE` strings -> dict; VALUE is read as a Python literal (3, 0.5, True) or kept as text."""
    opts: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InputError(f"--option expects KEY=VALUE, got {item!r}")
        try:
            opts[key.strip()] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            opts[key.strip()] = value
    return opts


def add_method_arguments(parser: argparse.ArgumentParser, method_required: bool = False) -> None:
    """--method, --device and --option, shared by flow, demo, eval, submit and video."""
    if method_required:
        text = "flow method (required: benchmark results name their method; see `flowmatch info`)"
    else:
        text = ("flow method (see `flowmatch info`); default: the best one available here, "
                "patchbatch-accurate when the C++ ops are built (slow: ~20 s a Sintel-size pair)")
    parser.add_argument("--method", required=method_required, help=text)
    parser.add_argument("--device", default="cpu", metavar="DEVICE",
                        help="cpu (default), cuda or cuda:N: where methods that use torch run (`flowmatch info` "
                             "lists which can use a GPU); a GPU that is not there is an error (exit 4)")
    parser.add_argument("--option", action="append", metavar="KEY=VALUE",
                        help="method option, repeatable (e.g. --option iterations=4)")


def check_flow_path(path: str, what: str = "-o") -> None:
    if not path.lower().endswith(FLOW_EXTENSIONS):
        raise InputError(f"{what} {path!r}: flow files must end in .flo, .pfm or .kitti.png (.png = KITTI 16-bit "
                         f"flow as well; for a colour picture use --viz)")


def check_input_file(path: str, what: str) -> None:
    if not os.path.isfile(path):
        raise InputError(f"{what} {path!r} does not exist or is not a file")


def parse_range(text: str) -> float:
    """--range: the white level of the frames (1 for floats in [0, 1], 255, 65535, ...)."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be the frames' white level, a positive number such as 1, 255 "
                                         f"or 65535, got {text!r}")
    return value


DESCRIPTION = """\
Compute the optical flow from IMG1 to IMG2 (pixels, x then y), or for every pair of a folder.

  flowmatch flow a.png b.png -o flow.flo --viz flow_colour.png
  flowmatch flow frames/ --out flows/                 consecutive frames, sorted by name
  flowmatch flow frames/ --out flows/ --pairs pairs.txt

OUTPUT FORMAT: -o picks the flow format by extension: .flo (Middlebury), .pfm, or .kitti.png / .png,
which is KITTI's 16-bit flow PNG -- DATA, NOT A PICTURE (it looks black or garbled in a viewer).
For a colour picture of the flow use --viz (colour = direction, saturation = speed).

A folder (DIR): flows of consecutive frames in natural name order (frame_2 before frame_10), written
as OUTDIR/<name of the first frame>.<format>; or with --pairs FILE, one pair per line, `IMG1 IMG2
[OUT]` (paths relative to DIR, OUT relative to OUTDIR; default OUT: <IMG1 name>_to_<IMG2 name>;
blank lines and # comments skipped; quote names with spaces).  Outputs never go inside DIR or
overwrite a frame (exit 3); a pair whose outputs exist is skipped (say --overwrite to recompute);
a failing pair stops the run with the finished pairs kept.  --viz OUTDIR2 writes pictures there.
Several processes: `torchrun --nproc_per_node N -m flowmatch flow DIR --out OUTDIR` splits the pairs
between them (--device cuda: one GPU each), into the same OUTDIR.

Frames: 8/16-bit images by their type; float frames (.pfm) in [0, 1] unless --range says otherwise
(e.g. --range 255).  Progress: stage timings of slow methods (patchbatch) and one line per pair
on stderr; -q hides them."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("flow", help="optical flow of an image pair or a folder of pairs",
                       usage="flowmatch flow (IMG1 IMG2 | DIR) (-o OUT | --viz PICTURE) [options]",
                       description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="*", metavar="IMG1 IMG2 | DIR",
                   help="two frames, or one folder of frames (with --pairs: the folder the pairs file names)")
    p.add_argument("-o", "--out", help="output flow file: .flo, .pfm, or .kitti.png/.png = 16-bit KITTI flow "
                                       "(NOT a picture, see --viz); for DIR: the output folder")
    p.add_argument("--viz", metavar="PICTURE", help="write the colour-coded flow picture here (.png, .jpg); for DIR: a folder")
    p.add_argument("--pairs", metavar="FILE", help="for DIR: the pairs to compute, `IMG1 IMG2 [OUT]` per line")
    p.add_argument("--format", dest="fmt", default="flo", choices=("flo", "kitti.png", "png", "pfm"),
                   help="for DIR: flow file format (default flo; png = kitti.png)")
    p.add_argument("--overwrite", action="store_true", help="for DIR: recompute pairs whose outputs exist")
    p.add_argument("--range", dest="value_range", type=parse_range, metavar="WHITE",
                   help="white level of the frames: 1, 255, 65535, ... (default: by type: 8-bit 255, "
                        "16-bit 65535, float 1)")
    add_method_arguments(p)
    p.set_defaults(func=run, log_default=logging.INFO)  # one pair can take 20 s: show its progress


def run(args: argparse.Namespace) -> int:
    from ..methods.registry import best_method

    method = args.method or best_method()
    if not args.method:
        log.info("method %s (the best available here; --method NAME for another)", method)
    options = parse_options(args.option)
    if len(args.inputs) == 2 and not args.pairs:
        return run_pair(args, method, options)
    if len(args.inputs) <= 1 and (args.inputs or args.pairs):
        from .flow_pairs import run_folder
        return run_folder(args, method, options, check_flow_path)
    raise InputError(f"flow takes IMG1 IMG2, or DIR (optionally with --pairs FILE), got {len(args.inputs)} "
                     "path(s)" + (" and --pairs" if args.pairs else ""))


def run_pair(args: argparse.Namespace, method: str, options: dict[str, Any]) -> int:
    """IMG1 IMG2 -> -o flow file and/or --viz picture."""
    import numpy as np

    from .. import io
    from ..methods.registry import flow

    img1_path, img2_path = args.inputs
    check_input_file(img1_path, "IMG1")
    check_input_file(img2_path, "IMG2")
    if args.out is None and args.viz is None:
        raise InputError("give -o FLOW_FILE (.flo, .pfm, .kitti.png) and/or --viz PICTURE (.png)")
    if args.out is not None:
        check_flow_path(args.out)
    check_outputs({"-o": args.out, "--viz": args.viz}, {"IMG1": img1_path, "IMG2": img2_path})
    img1, img2 = io.read_image(img1_path), io.read_image(img2_path)
    t0 = time.perf_counter()
    result = flow(img1, img2, method=method, device=args.device, value_range=args.value_range, **options)
    seconds = time.perf_counter() - t0
    written = []
    if args.out is not None:
        io.write_flow(args.out, result)
        written.append(args.out)
    if args.viz:
        from ..viz import flow_to_color
        io.write_image(args.viz, flow_to_color(result))
        written.append(args.viz)
    mag = np.linalg.norm(result, axis=2)
    log.info("%s on %s: %d×%d in %.3f s; |flow| mean %.3f px, max %.3f px; wrote %s", method, args.device,
             img1.shape[1], img1.shape[0], seconds, mag.mean(), mag.max(), " and ".join(written))
    if args.out is not None and args.out.lower().endswith(".png") and not args.out.lower().endswith(".kitti.png"):
        log.info("%s is %s", args.out, KITTI_WARNING)
    return 0
