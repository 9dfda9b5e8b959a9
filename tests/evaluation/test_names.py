"""One metric naming scheme with units (flowmatch/evaluation/names.py) for every key eval and compare report."""
from __future__ import annotations

import re

import numpy as np
import pytest

from flowmatch import metrics as M
from flowmatch.evaluate import ImageMeanMetrics
from flowmatch.evaluation.names import aligned_table, display, format_value, label, markdown_table, units


@pytest.mark.parametrize("key, shown", [
    ("EPE-all", "EPE-all [px]"), ("EPE-s40+", "EPE-s40+ [px]"), ("Out-Noc-3", "Out-Noc >3px [%]"),
    ("Out-All-5", "Out-All >5px [%]"), ("Avg-Noc", "Avg-Noc [px]"), ("Fl-all", "Fl-all [%]"),
    ("Fl-fg-noc", "Fl-fg-noc [%]"), ("epe", "EPE [px]"), ("angular_error", "AE [deg]"), ("AE", "AE [deg]"),
    ("outliers_3px", "Out >3px [%]"), ("Out-1", "Out >1px [%]"), ("Fl", "Fl [%]"), ("n-all", "pixels all"),
    ("images", "frames"), ("seconds", "time [s]"),
])
def test_display_names_carry_their_units(key, shown):
    assert display(key) == shown


def _every_key() -> set[str]:
    """Every key the accumulators and summary() return, on data that fills every region."""
    rng = np.random.default_rng(1)
    f, g = rng.normal(scale=20, size=(2, 40, 50, 2))
    occ = np.zeros((40, 50), bool)
    occ[:, :10] = True
    obj = (np.arange(50)[None, :] > 25).repeat(40, 0).astype(np.uint8)
    keys: set[str] = set()
    for acc, kw in ((M.SintelMetrics(), {"occlusion": occ}), (M.Kitti2012Metrics(), {"noc_valid": ~occ}),
                    (M.Kitti2015Metrics(), {"obj_map": obj, "noc_valid": ~occ}), (ImageMeanMetrics(), {})):
        keys |= set(acc.add(f, g, None, **kw) or {})
        keys |= set(acc.result())
    return keys | set(M.summary(f, g, None, occ))


def test_every_reported_key_has_a_unit_or_is_a_count():
    for key in _every_key():
        name, unit = label(key)
        counts = key in ("images", "n_valid") or key.startswith("n-")
        assert (unit == "") == counts, key
        # outlier shares are percent, and say so
        if re.match(r"^(Out|Fl|outliers)", key):
            assert unit == "%", key
    assert units(["EPE-all", "n-all", "Fl-all"]) == {"EPE-all": "px", "Fl-all": "%"}


def test_tables_are_aligned_and_numbers_formatted():
    rows = [["EPE-all [px]", format_value(1.23456)], ["frames", format_value(12)], ["Fl-all [%]", format_value(float("nan"))]]
    text = aligned_table(["metric", "value"], rows).splitlines()
    assert len({len(line) for line in text}) == 1  # every line as wide (numbers right-aligned)
    assert text[2].endswith("1.2346") and text[3].endswith("12") and text[4].endswith("-")
    md = markdown_table(["metric", "value"], rows)
    assert md[1] == "|---|---:|" and md[2] == "| EPE-all [px] | 1.2346 |"
