"""The evaluation report as JSON (NaN -> null), as a Markdown file and as an aligned table for
stdout, written atomically.  JSON keeps the machine keys and carries a "units" map; the tables show
display names with units (flowmatch.evaluation.names)."""
from __future__ import annotations

import json
import math
import os
from typing import Any

import numpy as np

from .._atomic import atomic_open
from .names import aligned_table, display, format_value, markdown_table, unit

__all__ = ["jsonable", "markdown_report", "text_report", "flatten_metrics", "format_value", "write_report",
           "metric_rows", "frame_rows"]


def jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, (np.floating, float)):
        return None if not math.isfinite(float(x)) else float(x)
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, np.ndarray):
        return jsonable(x.tolist())
    return x


def flatten_metrics(d: dict, prefix: str = "") -> dict:
    flat: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            flat.update(flatten_metrics(v, key + "/"))
        elif not isinstance(v, list):
            flat[key] = v
    return flat


def _title(report: dict) -> str:
    return (f"{report['method']} on {report['dataset']} ({report['split']}"
            + (f", {report['pass']} pass" if report.get("pass") else "") + f"): {report['frames_evaluated']} frames")


def metric_rows(report: dict) -> list[list[str]]:
    """[display name, value] per aggregate metric (the number of frames, the metrics in their order,
    then the pixel counts), then the time per frame."""
    flat = flatten_metrics(report["metrics"])
    order = sorted(flat, key=lambda k: 0 if k == "images" else 1 if unit(k) else 2)  # stable
    rows = [[display(k), format_value(flat[k])] for k in order]
    rows.append([display("mean_seconds_per_frame"), format_value(report["mean_seconds_per_frame"])])
    return rows


# per-frame columns: the common ones, then the dataset's own per-frame numbers (record["metrics"])
_FRAME_KEYS = ("epe", "outliers_3px")
_OWN_KEYS = {"sintel": ("EPE-matched", "EPE-unmatched"), "kitti2012": ("Out-Noc-3", "Out-All-3"),
             "kitti2015": ("Fl-all", "Fl-bg", "Fl-fg"), "chairs": ("angular_error",), "middlebury": ("angular_error",)}


def frame_rows(report: dict) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of the per-frame table: frame, EPE [px], Out >3px [%], the dataset's own
    per-frame numbers that any frame has, time [s]."""
    frames = report["frames"]
    own = [k for k in _OWN_KEYS.get(report["dataset"], ()) if any(k in r.get("metrics", {}) for r in frames)]
    header = ["frame"] + [display(k) for k in _FRAME_KEYS + tuple(own)] + [display("seconds")]
    rows = [[r["name"]] + [format_value(r.get(k)) for k in _FRAME_KEYS]
            + [format_value(r.get("metrics", {}).get(k)) for k in own] + [format_value(r["seconds"])] for r in frames]
    return header, rows


def markdown_report(report: dict) -> str:
    """The report as Markdown: the aggregate metrics (display names with units), then one row per frame."""
    lines = [f"# {_title(report)}", ""]
    lines += markdown_table(["metric", "value"], metric_rows(report))
    header, rows = frame_rows(report)
    lines += ["", "## Per frame", ""] + markdown_table(header, rows)
    return "\n".join(lines) + "\n"


def text_report(report: dict) -> str:
    """The aggregate as an aligned plain-text table (what `flowmatch eval` prints)."""
    return _title(report) + "\n" + aligned_table(["metric", "value"], metric_rows(report))


def write_report(report: dict, out: str) -> None:
    """Write results.json and results.md into `out` (each atomically)."""
    os.makedirs(out, exist_ok=True)
    with atomic_open(os.path.join(out, "results.json"), "w") as fh:
        json.dump(report, fh, indent=2)
    with atomic_open(os.path.join(out, "results.md"), "w") as fh:
        fh.write(markdown_report(report))
