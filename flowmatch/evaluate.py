"""Dataset evaluation (`evaluate`, DATASETS, ...): the public name of the harness in flowmatch.evaluation."""
from .evaluation.accumulators import ImageMeanMetrics  # noqa: F401
from .evaluation.datasets import DATASETS, open_dataset  # noqa: F401
from .evaluation.harness import evaluate  # noqa: F401
from .evaluation.report import markdown_report, write_report  # noqa: F401

__all__ = ["DATASETS", "ImageMeanMetrics", "evaluate", "markdown_report", "open_dataset", "write_report"]
