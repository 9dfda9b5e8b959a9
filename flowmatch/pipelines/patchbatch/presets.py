"""The named PatchBatch settings ("accurate", "fast") and `resolve_config`, which starts from one."""
from __future__ import annotations

from typing import Any

from ...errors import InputError
from .config import (ConsistencyConfig, DescriptorConfig, InterpolationConfig, MatchingConfig, PipelineConfig,
                     RefinementConfig, with_options)

PRESETS: dict[str, PipelineConfig] = {
    # every pixel, the network's descriptor with raw patches ("combined": measured best on the held-out
    # real pairs, benchmarks/bench_descriptor_pipeline.py) stored as float16, seeds every 4 px, 10 refinement passes
    "accurate": PipelineConfig(
        descriptors=DescriptorConfig(kind="combined", half=True),
        matching=MatchingConfig(iterations=3, radius=4),
        consistency=ConsistencyConfig(seed_step=4),
        refinement=RefinementConfig(iterations=10)),
    # combined descriptors every 2nd pixel, PCA to 32-D, seeds every 2nd grid pixel, 5 refinement passes
    "fast": PipelineConfig(
        descriptors=DescriptorConfig(kind="combined", stride=2, pca_dim=32),
        matching=MatchingConfig(iterations=3, radius=4, window=2, coarse_factor=4, coarse_window=24,
                                coarse_radius=16),
        consistency=ConsistencyConfig(threshold=0.5, seed_step=2),
        interpolation=InterpolationConfig(nn=64),
        refinement=RefinementConfig(iterations=5)),
}


def resolve_config(preset: str | PipelineConfig = "accurate", **options: Any) -> PipelineConfig:
    """A PipelineConfig from a preset name (or a config) with flat option overrides (see
    config.OPTION_FIELDS); InputError on an unknown preset or option, or an invalid value."""
    if isinstance(preset, PipelineConfig):
        cfg = preset
    elif preset in PRESETS:
        cfg = PRESETS[preset]
    else:
        raise InputError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
    return with_options(cfg, **options)
