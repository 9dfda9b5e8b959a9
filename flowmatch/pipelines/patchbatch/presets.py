"""The named PatchBatch settings ("accurate", "fast", "thorough") and `resolve_config`, which starts from one."""
from __future__ import annotations

from typing import Any

from ...errors import InputError
from .config import (ConsistencyConfig, DescriptorConfig, InterpolationConfig, MatchingConfig, PipelineConfig,
                     RefinementConfig, with_options)

# Held-out numbers (10 real pairs, mean of the four groups' mean EPE, each pair averaged over 3 seeds)
# and wall time per 1024×436 pair on 2 cores: README "Presets: speed and accuracy" and
# benchmarks/bench_pipeline.py --all-pairs.  The network's descriptor with raw patches
# ("combined") is the measured best descriptor (benchmarks/bench_descriptor_pipeline.py).
_COARSE_TO_FINE = MatchingConfig(iterations=4, radius=4, window=2, coarse_factor=4, coarse_window=24, coarse_radius=16)
PRESETS: dict[str, PipelineConfig] = {
    # descriptors every 2nd pixel (the network too), PCA to 32-D, coarse-to-fine PatchMatch (4 passes), seeds
    # every 2nd grid pixel, 5 refinement passes: the former "fast" preset with one more PatchMatch pass
    # (-3 % EPE); ~5× faster than "thorough" at ~1 % higher EPE.
    "accurate": PipelineConfig(
        descriptors=DescriptorConfig(kind="combined", stride=2, pca_dim=32),
        matching=_COARSE_TO_FINE,
        consistency=ConsistencyConfig(threshold=0.5, seed_step=2),
        interpolation=InterpolationConfig(nn=64),
        refinement=RefinementConfig(iterations=5)),
    # as "accurate" but the network runs on every 4th pixel only (upsampled to the 2-px grid, where the
    # raw patches keep the detail): the network is most of the time.
    "fast": PipelineConfig(
        descriptors=DescriptorConfig(kind="combined", stride=2, net_stride=4, pca_dim=32),
        matching=_COARSE_TO_FINE,
        consistency=ConsistencyConfig(threshold=0.5, seed_step=2),
        interpolation=InterpolationConfig(nn=64),
        refinement=RefinementConfig(iterations=5)),
    # every pixel, full combined descriptors stored as float16, seeds every 4 px, 10 refinement passes:
    # the most accurate and by far the slowest (was the "accurate" preset).
    "thorough": PipelineConfig(
        descriptors=DescriptorConfig(kind="combined", half=True),
        matching=MatchingConfig(iterations=3, radius=4),
        consistency=ConsistencyConfig(seed_step=4),
        refinement=RefinementConfig(iterations=10)),
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
