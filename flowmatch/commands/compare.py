"""`flowmatch compare FLOW GT [--json out.json | --json -] [--error-png err.png] [--occlusion MASK] [--invalid MASK]`.

Scores a flow file against a ground-truth flow file (both .flo, .png = KITTI or .pfm) over the
ground truth's valid pixels and prints the metrics as an aligned table with units (the names of
flowmatch.evaluation.names, as `flowmatch eval` prints them): EPE [px], AE [deg], Out >1/3/5px [%],
Fl [%] (KITTI 2015 rule), valid pixels, and with --occlusion EPE-matched/unmatched [px].
--json PATH writes them as JSON (machine keys "EPE", "AE", "Out-1", ... plus a "units" map);
--json - prints that JSON on stdout instead of the table.
Pixels the predicted file marks invalid are scored with the value stored there (0) and counted in
"pred_invalid" (the KITTI devkit would interpolate them instead)."""
from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

from ..errors import InputError


def _jsonable(d: dict[str, Any]) -> dict[str, Any]:
    # JSON has no NaN: metrics of empty regions become null.
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()}


def run(args: argparse.Namespace) -> int:
    from .. import io, metrics, viz
    from .._atomic import atomic_open
    from .._outputs import check_outputs
    from ..evaluation.names import aligned_table, display, format_value, units

    json_file = None if args.json == "-" else args.json
    check_outputs({"--json": json_file, "--error-png": args.error_png},
                  {"FLOW": args.flow, "GT": args.gt, "--occlusion": args.occlusion, "--invalid": args.invalid})
    flow, pred_valid = io.read_flow(args.flow)
    gt, valid = io.read_flow(args.gt)
    if flow.shape != gt.shape:
        raise InputError(f"FLOW {args.flow!r} is {flow.shape[1]}×{flow.shape[0]} but GT {args.gt!r} is "
                         f"{gt.shape[1]}×{gt.shape[0]}")
    if args.invalid is not None:
        valid = valid & ~_mask(io, args.invalid, valid.shape, "--invalid")
    occ = _mask(io, args.occlusion, valid.shape, "--occlusion") if args.occlusion else None
    result = metrics.summary(flow, gt, valid, occ)
    result["pred_invalid"] = int((valid & ~pred_valid).sum())
    result = _jsonable(result)
    text = json.dumps({**result, "units": units(result)}, indent=2)
    if args.json == "-":
        print(text)
    else:
        print(aligned_table(["metric", "value"], [[display(k), format_value(v)] for k, v in result.items()]))
    if json_file:
        with atomic_open(json_file, "w") as fh:
            fh.write(text + "\n")
    if args.error_png:
        io.write_image(args.error_png, viz.error_map(flow, gt, valid))
    if result["n_valid"] == 0:
        print("flowmatch compare: warning: GT has no valid pixels; metrics are null", file=sys.stderr)
    return 0


def _mask(io: Any, path: str, shape: tuple[int, int], what: str) -> Any:
    m = io.read_mask(path)
    if m.shape != shape:
        raise InputError(f"{what} {path!r} is {m.shape[1]}×{m.shape[0]} but the flow is {shape[1]}×{shape[0]}")
    return m


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compare", help="score a flow file against ground truth (a table of metrics with units)",
                       description="Compare FLOW to GT over GT's valid pixels; print the metrics as a table "
                                   "(EPE [px], AE [deg], Out >Kpx [%%], Fl [%%]).")
    p.add_argument("flow", help="predicted flow (.flo, .png = KITTI 16-bit, .pfm)")
    p.add_argument("gt", help="ground-truth flow (.flo, .png = KITTI 16-bit, .pfm)")
    p.add_argument("--json", metavar="PATH", help="also write the metrics to this JSON file (machine keys and a "
                   "\"units\" map); '-' prints the JSON on stdout instead of the table")
    p.add_argument("--error-png", help="write the colour-coded end-point error to this PNG")
    p.add_argument("--occlusion", help="occlusion mask image (nonzero = occluded, e.g. Sintel occlusions/): "
                                       "adds EPE-matched and EPE-unmatched")
    p.add_argument("--invalid", help="mask image of pixels to leave out (nonzero = excluded, e.g. Sintel invalid/)")
    p.set_defaults(func=run)
