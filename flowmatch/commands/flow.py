"""`flowmatch flow IMG1 IMG2 -o out.flo [--viz out.png] [--method NAME] [--device cpu|cuda]`.

Computes the flow from IMG1 to IMG2 with a registered method (flowmatch.flow) and writes it by
extension (.flo, .png = KITTI 16-bit, .pfm); --viz also writes the colour-coded flow."""
from __future__ import annotations

import argparse
import ast
import os
import sys
import time
from typing import Any

from .._outputs import check_outputs
from ..errors import InputError

FLOW_EXTENSIONS = (".flo", ".png", ".pfm")


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
    """--method, --device and --option, shared by flow, eval, submit, video and bench."""
    parser.add_argument("--method", required=method_required,
                        help="flow method (see `flowmatch info` or flowmatch.methods()); default: the best available")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="device for methods that use torch")
    parser.add_argument("--option", action="append", metavar="KEY=VALUE",
                        help="method option, repeatable (e.g. --option iterations=4)")


def check_flow_path(path: str, what: str = "-o") -> None:
    ext = os.path.splitext(path)[1].lower()
    if ext not in FLOW_EXTENSIONS:
        raise InputError(f"{what} {path!r}: flow files must end in {', '.join(FLOW_EXTENSIONS)} "
                         f"(.png = KITTI 16-bit)")


def check_input_file(path: str, what: str) -> None:
    if not os.path.isfile(path):
        raise InputError(f"{what} {path!r} does not exist or is not a file")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("flow", help="optical flow between two images",
                       description="Compute the optical flow from IMG1 to IMG2 and write it to a flow file.")
    p.add_argument("img1")
    p.add_argument("img2")
    p.add_argument("-o", "--out", required=True, help="output flow file (.flo, .png = KITTI 16-bit, .pfm)")
    p.add_argument("--viz", help="also write the colour-coded flow here (.png, .jpg)")
    add_method_arguments(p)
    p.add_argument("--verbose", "-v", action="store_true", help="print the method, timing and flow statistics")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from .. import io
    from ..methods.registry import best_method, flow, get_method

    check_input_file(args.img1, "IMG1")
    check_input_file(args.img2, "IMG2")
    check_flow_path(args.out)
    check_outputs({"-o": args.out, "--viz": args.viz}, {"IMG1": args.img1, "IMG2": args.img2})
    options = parse_options(args.option)
    method = args.method or best_method()
    if args.verbose and "verbose" in get_method(method).defaults:
        options.setdefault("verbose", True)  # methods with stages report their timings too
    img1, img2 = io.read_image(args.img1), io.read_image(args.img2)
    t0 = time.perf_counter()
    result = flow(img1, img2, method=method, device=args.device, **options)
    seconds = time.perf_counter() - t0
    io.write_flow(args.out, result)
    if args.viz:
        from ..viz import flow_to_color
        io.write_image(args.viz, flow_to_color(result))
    if args.verbose:
        mag = np.linalg.norm(result, axis=2)
        print(f"method {method} on {args.device}: {img1.shape[1]}×{img1.shape[0]} in {seconds:.3f} s; "
              f"|flow| mean {mag.mean():.3f} px, max {mag.max():.3f} px; wrote {args.out}"
              + (f" and {args.viz}" if args.viz else ""), file=sys.stderr)
    return 0
