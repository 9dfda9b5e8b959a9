"""The named PatchBatch settings ("accurate", "fast", "thorough") and `resolve_config`, which starts from one."""
from __future__ import annotations

from typing import Any

from ...errors import InputError
from .config import (ConsistencyConfig, DescriptorConfig, InterpolationConfig, MatchingConfig, PipelineConfig,
                     RefinementConfig, with_options)

# Held-out numbers (10 real pairs, mean of the four groups' mean EPE, each pair averaged over 6 seeds)
# and wall time per 1024×436 pair on 2 cores: README "Presets: speed and accuracy" and
# benchmarks/bench_pipeline.py --all-pairs.  The network's descriptor with raw patches
# ("combined") is the measured best descriptor (benchmarks/bench_descriptor_pipeline.py).

# DIS at full size with medium's patch density in frame pixels (its stride 3 at half size) and fewer
# descent steps (no loss measured): both presets' refinement since stop 24 (README)
_FULL_SIZE_DIS = {"dis_finest_scale": 0, "dis_patch_stride": 6, "dis_iterations": 12}

PRESETS: dict[str, PipelineConfig] = {
    # descriptors every 2nd pixel (the network too), PCA to 32-D, coarse-to-fine PatchMatch (8 passes after
    # 12 on the coarse level; was 4 after 6: -5 % on the synthetic tuning set for ~0.13 s, stop 32) whose
    # coarse level pools 2×2 descriptor cells (4 px) and searches ±48 of them, seeds every 2nd grid pixel,
    # a full-size DIS (as in "fast": -1.5 % held-out EPE for ~0.09 s), 5 refinement passes.  The 4-px
    # coarse level (was 8 px, ±24 cells) is what beat "thorough": -3 % on the held-out real pairs, -27 %
    # on a synthetic tuning set (README "Presets: speed and accuracy").
    "accurate": PipelineConfig(
        descriptors=DescriptorConfig(kind="combined", stride=2, pca_dim=32),
        matching=MatchingConfig(iterations=8, coarse_iterations=12, radius=4, window=2, coarse_factor=2,
                                coarse_window=48, coarse_radius=32),
        consistency=ConsistencyConfig(threshold=0.5, seed_step=2),
        interpolation=InterpolationConfig(nn=64),
        refinement=RefinementConfig(iterations=5, **_FULL_SIZE_DIS)),
    # frames whose shorter side is >= 400 px are matched at half size (the network on every 4th pixel of
    # that, upsampled to its 2-px grid; an 8-px coarse level) and refined at full size, where DIS may
    # move the flow twice as far (pipeline.refinement_at): ~4× less matching work than "accurate" for
    # the 0.6 s target at 1024×436.  PCA 48 (not 32): -7 % held-out EPE for ~0.01 s.  DIS at full size
    # brings back the detail half-size matching loses (Sintel clean -9 %), paid for by 3 PatchMatch passes
    # instead of 4 (README "Presets: speed and accuracy").  Less detail on small moving objects (synthetic set).
    # Edges for the interpolation from the half-size frame smoothed by 2 px (was 1; stop 33): texture edges
    # fade, object edges stay: -5.5 % on the synthetic tuning set, -1 % held out (Chairs +3 %), no time.
    "fast": PipelineConfig(
        descriptors=DescriptorConfig(kind="combined", stride=2, net_stride=4, pca_dim=48),
        matching=MatchingConfig(iterations=3, radius=4, window=2, coarse_factor=4, coarse_window=24, coarse_radius=16),
        consistency=ConsistencyConfig(threshold=0.5, seed_step=2),
        interpolation=InterpolationConfig(nn=64, edge_sigma=2.0),
        refinement=RefinementConfig(iterations=5, **_FULL_SIZE_DIS),
        downscale=2, downscale_min_side=200),
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
