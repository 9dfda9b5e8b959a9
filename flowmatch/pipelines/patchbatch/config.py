"""Settings of the PatchBatch pipeline: one small frozen dataclass per stage, nested in PipelineConfig.

Units are pixels of the full image unless a field says otherwise.  Each stage config checks its own
values on construction (InputError), so a config that exists is a valid one.  The method registry
sees the pipeline as flat options (``iterations=4``, ``refine=False``): `OPTION_FIELDS` maps each
option to its stage and field, `flat_options` and `with_options` convert.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ..._checks import Bool, Float, Int, OneOf, Path
from ...errors import InputError
from ...precision import PRECISIONS


def _check_fields(cfg: Any, rules: dict[str, Any]) -> None:
    """Check each field of a stage config against its rule (flowmatch._checks); the message names the
    flat option (e.g. refine_iterations) the user typed."""
    stage = _STAGE_OF.get(type(cfg).__name__)
    for attr, rule in rules.items():
        flat = _RENAMED.get((stage, attr), attr) if stage else attr
        object.__setattr__(cfg, attr, rule.check(f"option {flat}", getattr(cfg, attr)))


# Limits: the compiled ops take int32 counts and float32 values, and each count multiplies the work
# (PatchMatch passes, neighbours per model, refinement iterations): every bound keeps one call of the
# pipeline within minutes at HD size, and far from the C++ widths.
_PM_RADIUS_MAX = 2**20 - 1  # ops.patchmatch's own limit
_DESCRIPTOR_RULES = {"stride": Int(1, 64), "net_stride": Int(1, 64, optional=True), "pca_dim": Int(1, 4096, optional=True), "half": Bool(),
                     "raw_weight": Float(0.0, 1.0),
                     "combine_with": OneOf(("raw", "daisy")), "model": Path()}
_MATCHING_RULES = {"iterations": Int(1, 64), "coarse_iterations": Int(1, 64), "coarse_factor": Int(1, 64),
                   "radius": Int(0, _PM_RADIUS_MAX), "window": Int(0, _PM_RADIUS_MAX),
                   "coarse_window": Int(0, _PM_RADIUS_MAX), "coarse_radius": Int(0, _PM_RADIUS_MAX),
                   "subpixel": Bool()}
_CONSISTENCY_RULES = {"threshold": Float(0.0, 1e4), "cost_quantile": Float(0.0, 1.0, open_lo=True, optional=True),
                      "saliency_th": Float(0.0, 1.0), "seed_step": Int(1, 1024)}
# "epic": ours (flowmatch.ops.edge_aware_interpolate, EpicFlow-style); "opencv-epic" / "opencv-ric":
# cv2.ximgproc's EdgeAwareInterpolator / RICInterpolator with OpenCV's own defaults
# (benchmarks/bench_interpolators.py compares the three inside the pipeline).
INTERPOLATORS = ("epic", "opencv-epic", "opencv-ric")
_INTERPOLATION_RULES = {"nn": Int(1, 4096), "coef_kernel": Float(0.0, 1e3), "affine": Bool(),
                        "pref_nn": Int(0, 4096), "pref_th": Float(0.0, 1e6), "edge_scale": Float(0.0, 1e3),
                        "edge_sigma": Float(0.0, 100.0),
                        "interpolator": OneOf(INTERPOLATORS)}
# DIS patches are 8×8 (OpenCV's medium preset): a stride above 8 corrupts OpenCV's heap, so it is capped.
_REFINEMENT_RULES = {"enabled": Bool(), "dis": Bool(), "dis_max_change": Float(0.0, 1e6),
                     "dis_finest_scale": Int(0, 10), "dis_patch_stride": Int(1, 8), "dis_iterations": Int(1, 1000),
                     "iterations": Int(0, 100), "alpha": Float(0.0, 1e4)}
_PIPELINE_RULES = {"seed": Int(0, 2**63 - 1), "threads": Int(1, 1024, optional=True), "downscale": Int(1, 8),
                   "downscale_min_side": Int(1, 1 << 16)}


# "patchbatch": the network; "raw": normalised 9×9 patches; "daisy": scikit-image DAISY;
# "combined": the network's unit-normalised descriptor and raw patches (or DAISY: combine_with), concatenated.
DESCRIPTOR_KINDS = ("patchbatch", "raw", "daisy", "combined")


@dataclass(frozen=True)
class DescriptorConfig:
    """Stage 1: dense descriptors of both frames."""
    kind: str = "patchbatch"       # one of DESCRIPTOR_KINDS (see descriptors.compute_descriptors)
    model: str | None = None       # load_descriptor_model name/path (None = shipped dense weights)
    stride: int = 1                # descriptors (and PatchMatch) on every k-th pixel
    # the network on every n-th pixel only (a multiple of stride; None = stride), its field bilinearly
    # upsampled to the stride grid: the network is ~90 % of the descriptor time, and its 62×62-pixel
    # context makes its field smooth, while the raw patches of "combined" keep the fine detail
    net_stride: int | None = None
    pca_dim: int | None = None     # reduce descriptors to this many PCA components (None = keep)
    half: bool = False             # store descriptors as float16 for PatchMatch
    raw_weight: float = 0.5        # "combined": share of the raw patches in the squared distance
    # "combined": the hand-made partner of the network, "raw" patches or "daisy" (measured worse than raw,
    # held out and on the synthetic tuning set: README "Descriptors judged in the pipeline")
    combine_with: str = "raw"
    # network arithmetic: "auto" = bf16 only where the device runs it natively (flowmatch.precision;
    # never on an AVX2-only CPU, where bf16 is ~8x slower), "fp32" or "bf16" to force one
    precision: str = "auto"

    def __post_init__(self) -> None:
        _check_fields(self, _DESCRIPTOR_RULES)
        if self.precision not in PRECISIONS:
            raise InputError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.kind not in DESCRIPTOR_KINDS:
            raise InputError(f"descriptor must be one of {DESCRIPTOR_KINDS}, got {self.kind!r}")
        if self.net_stride is not None and self.net_stride % self.stride:
            raise InputError(f"descriptor_net_stride must be a multiple of descriptor_stride ({self.stride}), "
                             f"got {self.net_stride}")
        if not (isinstance(self.raw_weight, (int, float)) and 0.0 <= float(self.raw_weight) <= 1.0):
            raise InputError(f"raw_weight must be a number in [0, 1], got {self.raw_weight!r}")


@dataclass(frozen=True)
class MatchingConfig:
    """Stage 2: PatchMatch both ways, coarse-to-fine (grid = descriptor-grid pixels)."""
    iterations: int = 4            # PatchMatch passes
    radius: int = 8                # first random-search radius (grid px)
    window: int = 2                # random initialisation half-window around the coarse result (grid px)
    coarse_factor: int = 4         # first match on a grid pooled by this factor (1 = off)
    coarse_window: int = 48        # random init half-window on the coarse grid (coarse px)
    coarse_radius: int = 32        # first search radius on the coarse grid (coarse px)
    coarse_iterations: int = 6     # PatchMatch passes on the coarse grid
    subpixel: bool = True          # parabola refinement of the matches

    def __post_init__(self) -> None:
        _check_fields(self, _MATCHING_RULES)


@dataclass(frozen=True)
class ConsistencyConfig:
    """Stage 3: forward-backward check and seed selection."""
    threshold: float = 1.0             # round-trip tolerance (grid px)
    cost_quantile: float | None = None  # drop the costliest consistent matches
    saliency_th: float = 0.0           # drop matches where img1's local gradient energy (0-1 scale) is lower
    seed_step: int = 3                 # seeds for interpolation on every k-th grid pixel

    def __post_init__(self) -> None:
        _check_fields(self, _CONSISTENCY_RULES)


@dataclass(frozen=True)
class InterpolationConfig:
    """Stage 4: edge-aware sparse-to-dense interpolation."""
    interpolator: str = "epic"     # one of INTERPOLATORS; the fields below set "epic" only
    nn: int = 100                  # nearest matches per model
    coef_kernel: float = 0.8       # weights exp(-coef · geodesic distance)
    affine: bool = True            # locally affine (else Nadaraya-Watson)
    pref_nn: int = 50              # prefilter neighbours (0 = off)
    pref_th: float = 5.0           # prefilter threshold (px)
    edge_scale: float = 1.0        # weight of image edges in the geodesic cost
    edge_sigma: float = 1.0        # Gaussian smoothing of the frame before its edges are taken, px (0 = none)

    def __post_init__(self) -> None:
        _check_fields(self, _INTERPOLATION_RULES)


@dataclass(frozen=True)
class RefinementConfig:
    """Stage 5: DIS local corrections, then variational refinement."""
    enabled: bool = True           # run this stage at all
    dis: bool = True               # let OpenCV DIS (settings below) refine from the interpolated flow...
    # ...keeping its result only where it moves the flow by less than this (px; × the downscale factor
    # when matching ran at reduced size, pipeline.refinement_at)
    dis_max_change: float = 4.0
    # DIS's own settings (the defaults are OpenCV's medium preset): its finest pyramid level (0: full
    # size, 1: half), patch stride (px at that level; patches are 8×8) and gradient-descent iterations
    dis_finest_scale: int = 1
    dis_patch_stride: int = 3
    dis_iterations: int = 25
    iterations: int = 5            # fixed-point iterations of the variational refinement
    alpha: float = 20.0            # smoothness weight of the variational refinement

    def __post_init__(self) -> None:
        _check_fields(self, _REFINEMENT_RULES)


@dataclass(frozen=True)
class PipelineConfig:
    """The whole pipeline: one config per stage, the random seed and the CPU thread count."""
    descriptors: DescriptorConfig = field(default_factory=DescriptorConfig)
    matching: MatchingConfig = field(default_factory=MatchingConfig)
    consistency: ConsistencyConfig = field(default_factory=ConsistencyConfig)
    interpolation: InterpolationConfig = field(default_factory=InterpolationConfig)
    refinement: RefinementConfig = field(default_factory=RefinementConfig)
    seed: int = 0                  # PatchMatch initialisation and PCA sampling
    threads: int | None = None     # torch threads for the CPU ops while the pipeline runs (None = as is)
    # Match at 1/downscale of the frame size (descriptors, PatchMatch, check, interpolation), refine
    # the upsampled flow at full size: ~downscale² less matching work.  The factor is lowered (to 1)
    # for frames whose shorter side would fall below downscale_min_side px (pipeline.match_size); the
    # coarse PatchMatch level keeps its size in frame pixels (coarse_factor / k, pipeline.matching_at).
    downscale: int = 1
    downscale_min_side: int = 32

    def __post_init__(self) -> None:
        _check_fields(self, _PIPELINE_RULES)


STAGES = ("descriptors", "matching", "consistency", "interpolation", "refinement")
_STAGE_OF = {"DescriptorConfig": "descriptors", "MatchingConfig": "matching", "ConsistencyConfig": "consistency",
             "InterpolationConfig": "interpolation", "RefinementConfig": "refinement"}
# Flat option names that differ from "<field>" of their stage.
_RENAMED = {("descriptors", "kind"): "descriptor", ("descriptors", "model"): "descriptor_model",
            ("descriptors", "stride"): "descriptor_stride",
            ("descriptors", "net_stride"): "descriptor_net_stride", ("consistency", "threshold"): "consistency",
            ("refinement", "enabled"): "refine", ("refinement", "dis"): "refine_dis",
            ("refinement", "iterations"): "refine_iterations", ("refinement", "alpha"): "refine_alpha"}
# option name -> (stage or None for PipelineConfig itself, field)
OPTION_FIELDS: dict[str, tuple[str | None, str]] = {
    **{_RENAMED.get((stage, f.name), f.name): (stage, f.name)
       for stage in STAGES for f in dataclasses.fields(PipelineConfig.__dataclass_fields__[stage].default_factory)},
    "seed": (None, "seed"), "threads": (None, "threads"), "downscale": (None, "downscale"),
    "downscale_min_side": (None, "downscale_min_side"),
}


def flat_options(cfg: PipelineConfig) -> dict[str, Any]:
    """Every setting of `cfg` by its flat option name (the method registry's defaults)."""
    return {name: getattr(getattr(cfg, stage) if stage else cfg, attr) for name, (stage, attr) in OPTION_FIELDS.items()}


def with_options(cfg: PipelineConfig, **options: Any) -> PipelineConfig:
    """`cfg` with flat options replaced; InputError for an unknown option or an invalid value."""
    unknown = set(options) - set(OPTION_FIELDS)
    if unknown:
        raise InputError(f"unknown pipeline option(s) {sorted(unknown)}; known: {sorted(OPTION_FIELDS)}")
    per_stage: dict[str | None, dict[str, Any]] = {}
    for name, value in options.items():
        stage, attr = OPTION_FIELDS[name]
        per_stage.setdefault(stage, {})[attr] = value
    top = per_stage.pop(None, {})
    stages = {stage: dataclasses.replace(getattr(cfg, stage), **vals) for stage, vals in per_stage.items()}
    return dataclasses.replace(cfg, **stages, **top)
