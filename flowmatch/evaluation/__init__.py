"""Evaluation: metrics, the benchmark harness and benchmark submissions.

  metrics.py       flow error metrics and the Sintel / KITTI 2012 / KITTI 2015 protocols (numpy only;
                   public as flowmatch.metrics)
  accumulators.py  which accumulator scores which dataset; ImageMeanMetrics (Middlebury, Chairs)
  datasets.py      DATASETS and open_dataset (the official layouts, via flowmatch.data)
  names.py         one naming scheme with units for every metric key (tables show "Out-Noc >3px [%]")
  report.py        the report as JSON, Markdown and an aligned text table
  cache.py         the per-frame results cache and settings record of an output folder (--resume)
  harness.py       evaluate(): run a method over a dataset (sharded under torchrun, resumable; public
                   as flowmatch.evaluate)
  submit.py        submit(): test-set flow in the Sintel / KITTI upload structure

The names below load their module on first use, so `import flowmatch.metrics` (which lives here)
does not load the method registry that the harness needs.
"""
from __future__ import annotations

import importlib
from typing import Any

# name -> submodule that defines it
_NAMES = {"evaluate": "harness", "check_method": "harness", "DATASETS": "datasets", "open_dataset": "datasets",
          "ImageMeanMetrics": "accumulators", "markdown_report": "report", "write_report": "report",
          "submit": "submit", "SUBMIT_DATASETS": "submit", "zip_folder": "submit"}

__all__ = sorted(_NAMES)


def __getattr__(name: str) -> Any:
    if name in _NAMES:
        return getattr(importlib.import_module(f"{__name__}.{_NAMES[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
