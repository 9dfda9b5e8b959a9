"""The evaluation report as JSON (NaN -> null) and as a Markdown table, written atomically."""
from __future__ import annotations

import json
import math
import os
from typing import Any

import numpy as np

from .._atomic import atomic_open

__all__ = ["jsonable", "markdown_report", "flatten_metrics", "format_value", "write_report"]


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


def markdown_report(report: dict) -> str:
    """The report as Markdown: the aggregate metrics, then one row per frame."""
    lines = [f"# {report['method']} on {report['dataset']} ({report['split']}"
             + (f", {report['pass']} pass" if report.get("pass") else "") + ")", "",
             "| metric | value |", "|---|---|"]
    for k, v in flatten_metrics(report["metrics"]).items():
        lines.append(f"| {k} | {format_value(v)} |")
    lines.append(f"| seconds per frame | {format_value(report['mean_seconds_per_frame'])} |")
    lines += ["", "| frame | EPE | >3 px | seconds |", "|---|---|---|---|"]
    for r in report["frames"]:
        lines.append(f"| {r['name']} | {format_value(r.get('epe'))} | {format_value(r.get('outliers_3px'))} | {format_value(r['seconds'])} |")
    return "\n".join(lines) + "\n"


def flatten_metrics(d: dict, prefix: str = "") -> dict:
    flat: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            flat.update(flatten_metrics(v, key + "/"))
        elif not isinstance(v, list):
            flat[key] = v
    return flat


def format_value(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4f}"
    return str(v)


def write_report(report: dict, out: str) -> None:
    """Write results.json and results.md into `out` (each atomically)."""
    os.makedirs(out, exist_ok=True)
    with atomic_open(os.path.join(out, "results.json"), "w") as fh:
        json.dump(report, fh, indent=2)
    with atomic_open(os.path.join(out, "results.md"), "w") as fh:
        fh.write(markdown_report(report))
