"""The PatchBatch pipeline: dense learned descriptors + PatchMatch + consistency check +
edge-aware interpolation + variational refinement.

    flow = patchbatch_flow(img1, img2, preset="accurate", verbose=True)   # H×W×2 float32, pixels, x first

One module per stage, each taking its own config (config.py) and the previous stage's output:
  network.py        the descriptor network evaluated densely (`descriptors`, `load_descriptor_model`)
  descriptors.py    stage 1: descriptors of both frames (network or raw patches), PCA, float16
  frame_cache.py    FrameCache: network fields kept between calls (a video's shared frame once)
  matching.py       stage 2: PatchMatch both ways, coarse-to-fine
  consistency.py    stage 3: forward-backward check -> sparse `Matches`
  interpolation.py  stage 4: edge-aware sparse-to-dense interpolation
  refinement.py     stage 5: DIS local corrections + variational refinement
  presets.py        PRESETS ("accurate", "fast", "thorough") and resolve_config
  pipeline.py       patchbatch_flow: the stages in order, timed
"""
from __future__ import annotations

from ...ops.interpolation import NoMatchesWarning
from .config import (ConsistencyConfig, DescriptorConfig, InterpolationConfig, MatchingConfig, PipelineConfig,
                     RefinementConfig, flat_options, with_options)
from .frame_cache import FrameCache
from .consistency import Matches, consistency_check, sparse_matches
from .network import descriptors, load_descriptor_model
from .pipeline import patchbatch_flow
from .presets import PRESETS, resolve_config

__all__ = ["patchbatch_flow", "PipelineConfig", "DescriptorConfig", "MatchingConfig", "ConsistencyConfig",
           "InterpolationConfig", "RefinementConfig", "PRESETS", "resolve_config", "flat_options", "with_options",
           "Matches", "consistency_check", "sparse_matches", "descriptors", "load_descriptor_model",
           "NoMatchesWarning", "FrameCache"]
