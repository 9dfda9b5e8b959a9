"""`flowmatch demo --out DIR`: the project's best method on a generated pair, written and scored.

Writes DIR/img1.png, img2.png, DIR/flow.flo, DIR/flow.png (colour-coded flow) and DIR/panel.png (frame, flow, ground
truth, error) for a flying-shapes pair from flowmatch.data.synthetic (or --input data/pair, the
pair shipped in the repository), and prints EPE, angular
error and outlier shares against the exact ground truth.  When the real samples
(../shared/data/real) are present it does the same on one real Sintel pair (files real_*.*),
cropped to at most --real-crop pixels around the centre so the demo stays quick (a crop keeps the
ground truth exact: flow does not depend on the frame's extent)."""
from __future__ import annotations

import argparse
import logging
import os
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from .bench import parse_size
from .flow import add_method_arguments, parse_options

if TYPE_CHECKING:
    from ..evaluation.harness import MethodRun

REAL_CASE = "sintel/alley_1_clean_0002"  # easy motion (< 11 px), a fair first look


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the best method on a sample pair and score it",
                       description="Run the project's best flow method on a generated pair (and one real "
                                   "Sintel pair when ../shared/data/real exists); write flow, colour and "
                                   "panel images; print metrics against the ground truth.")
    p.add_argument("--out", default="demo_output", help="output folder (default demo_output)")
    p.add_argument("--size", default="384x256", help="size of the generated pair, WIDTHxHEIGHT")
    p.add_argument("--seed", type=int, default=7, help="seed of the generated pair")
    # At the generator's training default (40 px) small shapes jump further than their own size and
    # every method here loses them (EPE 5-6 px on seed 7, DIS and DeepFlow alike; see the README's
    # synthetic column): the demo uses moderate motion, and --max-motion 40 shows the hard case.
    p.add_argument("--max-motion", type=float, default=20.0,
                   help="largest shape motion of the generated pair in pixels (default 20)")
    p.add_argument("--real-crop", default="512x320", help="largest crop of the real pair, WIDTHxHEIGHT")
    p.add_argument("--input", help="use this pair folder (img1.png, img2.png, flow.flo[, occlusion.png]) "
                                   "instead of a generated pair, e.g. data/pair")
    p.add_argument("--no-real", action="store_true", help="skip the real pair")
    add_method_arguments(p)
    p.set_defaults(func=run, log_default=logging.INFO)  # the default method's stage lines: it takes a while


def _center_crop(arrs: list[Any], h: int, w: int) -> list[Any]:
    H, W = arrs[0].shape[:2]
    y0, x0 = max(0, (H - h) // 2), max(0, (W - w) // 2)
    return [None if a is None else np.ascontiguousarray(a[y0:y0 + h, x0:x0 + w]) for a in arrs]


def run_case(tag: str, pair: tuple[np.ndarray, ...], out: str, prefix: str, run: MethodRun) -> dict[str, float]:
    """Flow for one pair (img1, img2, gt, valid, occlusion; the last two may be None), its three output
    files, and its metrics (printed and returned)."""
    from .. import io, metrics
    from ..viz import flow_to_color, save_panel

    img1, img2, gt, valid, occlusion = pair
    method = run.method
    t0 = time.perf_counter()
    f = run.flow(img1, img2)
    seconds = time.perf_counter() - t0
    io.write_flow(os.path.join(out, f"{prefix}flow.flo"), f)
    io.write_image(os.path.join(out, f"{prefix}flow.png"), flow_to_color(f))
    save_panel(os.path.join(out, f"{prefix}panel.png"), img1, f, gt=gt, valid=valid)
    m = metrics.summary(f, gt, valid, occlusion)
    extra = (f", matched {m['EPE-matched']:.3f} / unmatched {m['EPE-unmatched']:.3f} px"
             if "EPE-matched" in m else "")
    print(f"{tag}: {img1.shape[1]}x{img1.shape[0]}, {method} in {seconds:.2f} s: EPE {m['EPE']:.3f} px{extra}, "
          f"AE {m['AE']:.2f} deg, >3 px {m['Out-3']:.2f} %, >1 px {m['Out-1']:.2f} %")
    return {**m, "seconds": seconds}


def load_pair_folder(folder: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """img1, img2, flow (H×W×2 px), valid, occlusion (or None) of a folder like data/pair."""
    from .. import io
    from ..errors import InputError
    need = ("img1.png", "img2.png", "flow.flo")
    missing = [f for f in need if not os.path.isfile(os.path.join(folder, f))]
    if missing:
        raise InputError(f"--input {folder!r} lacks {', '.join(missing)}; it needs {', '.join(need)}")
    gt, valid = io.read_flow(os.path.join(folder, "flow.flo"))
    occ_path = os.path.join(folder, "occlusion.png")
    occ = io.read_mask(occ_path) if os.path.isfile(occ_path) else None
    return (io.read_image(os.path.join(folder, "img1.png")), io.read_image(os.path.join(folder, "img2.png")),
            gt, valid, occ)


def run(args: argparse.Namespace) -> int:
    from .. import io
    from .._paths import real_data_dir
    from ..data.datasets import read_sample_case
    from ..data.synthetic import generate_pair
    from ..evaluation.harness import MethodRun
    from ..methods.registry import best_method
    from .._outputs import check_outputs, folder

    check_outputs({"--out": folder(args.out)}, {"--input": folder(args.input)})
    method = args.method or best_method()
    options = parse_options(args.option)
    h, w = parse_size(args.size)
    if args.input:
        img1, img2, gt, valid, occ = load_pair_folder(args.input)
        tag = f"pair {args.input}"
    else:
        p = generate_pair(h, w, args.seed, max_motion=args.max_motion)
        img1, img2, gt, valid, occ = p.img1, p.img2, p.flow, p.valid, p.occlusion
        tag = f"generated pair (seed {args.seed}, motion up to {args.max_motion:g} px)"
    os.makedirs(args.out, exist_ok=True)
    print(f"flowmatch demo: method {method}{'' if args.method else ' (best available here)'}, output in {args.out}/")
    io.write_image(os.path.join(args.out, "img1.png"), img1)
    io.write_image(os.path.join(args.out, "img2.png"), img2)
    run = MethodRun(method, args.device, options)
    run_case(tag, (img1, img2, gt, valid, occ), args.out, "", run)
    real = None if args.no_real else real_data_dir()
    case = os.path.join(real, REAL_CASE) if real else None
    if case and os.path.isdir(case):
        ch, cw = parse_size(args.real_crop)
        s = read_sample_case(case)
        crop = _center_crop([s.img1, s.img2, s.flow, s.valid, s.occlusion], ch, cw)
        run_case(f"real Sintel pair {REAL_CASE} (centre crop)", tuple(crop), args.out, "real_", run)
    print(f"wrote {args.out}/flow.flo, flow.png, panel.png" + (" and real_*" if case and os.path.isdir(case) else ""))
    return 0
