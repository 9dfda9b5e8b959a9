"""One naming scheme, with units, for every metric `flowmatch eval` and `flowmatch compare` report.

JSON files keep the machine keys the accumulators return (stable, backward compatible: "EPE-all",
"Out-Noc-3", "Fl-all", "epe", ...); tables on stdout and in Markdown show the display name and
its unit, e.g. ``EPE-all [px]``, ``Out-Noc >3px [%]``, ``Fl-all [%]``, ``AE [deg]``.  Every
outlier share is in percent (0-100) and says so.

    display("Out-Noc-3")  -> "Out-Noc >3px [%]"
    label("angular_error") -> ("AE", "deg")
"""
from __future__ import annotations

import math
import re
from typing import Any, Iterable, Sequence

__all__ = ["label", "display", "unit", "units", "format_value", "aligned_table", "markdown_table"]

# exact keys (the per-image-mean datasets, compare, per-frame records, report fields)
_FIXED: dict[str, tuple[str, str]] = {
    "epe": ("EPE", "px"),
    "EPE": ("EPE", "px"),
    "angular_error": ("AE", "deg"),
    "AE": ("AE", "deg"),
    "outliers_3px": ("Out >3px", "%"),
    "Fl": ("Fl", "%"),
    "images": ("frames", ""),
    "n_valid": ("valid pixels", ""),
    "valid_pixels": ("valid pixels", ""),
    "pred_invalid": ("invalid predicted pixels", ""),
    "seconds": ("time", "s"),
    "mean_seconds_per_frame": ("time per frame", "s"),
}

# patterns, first match wins: (regex, display template, unit)
_PATTERNS: tuple[tuple[re.Pattern[str], str, str], ...] = (
    (re.compile(r"^Out-(?P<r>Noc|All)-(?P<k>\d+)$"), "Out-{r} >{k}px", "%"),  # KITTI 2012, per image
    (re.compile(r"^Out-(?P<k>\d+)$"), "Out >{k}px", "%"),                      # compare
    (re.compile(r"^Avg-(?P<r>Noc|All)$"), "Avg-{r}", "px"),                    # KITTI 2012 mean EPE
    (re.compile(r"^Fl-(?P<r>.+)$"), "Fl-{r}", "%"),                            # KITTI 2015 (pooled)
    (re.compile(r"^EPE-(?P<r>.+)$"), "EPE-{r}", "px"),                         # Sintel regions, KITTI 2015
    (re.compile(r"^n-(?P<r>.+)$"), "pixels {r}", ""),                          # Sintel pixel counts
)


def label(key: str) -> tuple[str, str]:
    """(display name, unit) of a metric key; unit "" for counts.  Unknown keys keep their name."""
    if key in _FIXED:
        return _FIXED[key]
    for pattern, template, unit_ in _PATTERNS:
        m = pattern.match(key)
        if m:
            return template.format(**m.groupdict()), unit_
    return key, ""


def unit(key: str) -> str:
    """The unit of a metric key: "px", "%", "deg", "s" or "" (a count)."""
    return label(key)[1]


def display(key: str) -> str:
    """The display name with its unit in brackets, e.g. "Out-Noc >3px [%]"."""
    name, u = label(key)
    return f"{name} [{u}]" if u else name


def units(keys: Iterable[str]) -> dict[str, str]:
    """key -> unit for the keys that have one (what the JSON files carry beside the values)."""
    return {k: u for k in keys if (u := unit(k))}


def format_value(v: Any) -> str:
    """A table cell: floats with 4 decimals, integers as they are, missing / NaN as "-"."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, float):
        return f"{v:.4f}"
    return str(v)


def _is_number(cell: str) -> bool:
    try:
        float(cell)
        return True
    except ValueError:
        return cell == "-"


def aligned_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain-text table: columns padded to their widest cell, numbers right-aligned."""
    cols = len(header)
    widths = [max([len(header[c])] + [len(r[c]) for r in rows]) for c in range(cols)]
    numeric = [bool(rows) and all(_is_number(r[c]) for r in rows) for c in range(cols)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.rjust(w) if num else c.ljust(w) for c, w, num in zip(cells, widths, numeric)).rstrip()

    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in rows])


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Lines of a Markdown table (numeric columns right-aligned)."""
    numeric = [bool(rows) and all(_is_number(r[c]) for r in rows) for c in range(len(header))]
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---:" if n else "---" for n in numeric) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out
