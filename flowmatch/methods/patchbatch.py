"""Registers the PatchBatch methods (flowmatch.pipelines.patchbatch) as "patchbatch-<preset>".

``patchbatch-accurate``, ``patchbatch-fast`` and ``patchbatch-thorough`` run `patchbatch_flow` with the presets of
flowmatch.pipelines.patchbatch.PRESETS.  Every pipeline setting is a flat option (e.g.
``flowmatch.flow(a, b, method="patchbatch-fast", iterations=4)`` or ``--option iterations=4``; see
config.OPTION_FIELDS), plus ``verbose`` (stage timings on stderr).  ``device="cuda[:N]"`` runs the
descriptors, PatchMatch and the consistency check on that GPU (interpolation and refinement on the CPU).
"""
from __future__ import annotations

import os
from functools import partial
from typing import Any

import numpy as np
import torch

from .. import _ext
from .._paths import DESCRIPTOR_WEIGHTS, weights_path
from ..pipelines.patchbatch import PRESETS, flat_options, load_descriptor_model, patchbatch_flow
from ..pipelines.patchbatch.frame_cache import FrameCache
from ..pipelines.patchbatch.pipeline import check_device
from .options import Bool, Passthrough
from .registry import Method, register

_MODELS: dict[Any, Any] = {}  # descriptor networks loaded once per process
# the last two frames' network fields: a video's pair (t, t+1) reuses frame t from pair (t-1, t)
_FRAMES = FrameCache(entries=2)
_BLURB = {
    "accurate": "PatchBatch + raw-patch descriptors every 2nd pixel (PCA 32-D), coarse-to-fine PatchMatch both ways, "
                "consistency check, edge-aware interpolation, variational refinement",
    "fast": "as patchbatch-accurate with the descriptor network on every 4th pixel only",
    "thorough": "PatchBatch + raw-patch descriptors at every pixel, PatchMatch both ways, consistency check, "
                "interpolation, variational refinement (most accurate, ~5x slower than accurate)",
}


def _check() -> str | None:
    if not _ext.available():
        return f"the compiled extension is missing ({_ext.load_error()}); {_ext.BUILD_HINT}"
    if not hasattr(torch.ops.flowmatch, "patchmatch") or not hasattr(torch.ops.flowmatch, "edge_aware_interpolate"):
        return "flowmatch._C was built without the patchmatch/interpolation ops; rebuild with `make build`"
    path = weights_path(DESCRIPTOR_WEIGHTS["dense"])
    return None if os.path.isfile(path) else f"shipped descriptor weights {path!r} are missing"


def _model(name: Any):
    if name not in _MODELS:
        _MODELS[name] = load_descriptor_model(name)
    return _MODELS[name]


def _run(img1: np.ndarray, img2: np.ndarray, *, preset: str, device: str = "cpu", verbose: bool = False,
         **options: Any) -> np.ndarray:
    options = {**options, "value_range": 255.0}  # the registry hands over as_image frames: float in [0, 255]
    dev = check_device("cpu" if device is None else device)
    kind = options.get("descriptor", "patchbatch")
    # loaded once per process and handed over as model= (the pipeline refuses it with descriptor_model too)
    name = options.pop("descriptor_model", None)
    model = _model(name) if kind in ("patchbatch", "combined") else None
    return patchbatch_flow(img1, img2, preset=preset, verbose=bool(verbose), model=model, device=dev,
                           cache=_FRAMES, **options)


for _preset, _cfg in PRESETS.items():
    register(Method(
        name=f"patchbatch-{_preset}",
        run=partial(_run, preset=_preset),
        description=_BLURB[_preset],
        needs_extension=True,
        needs_weights=True,
        uses_gpu=True,  # descriptors, PatchMatch and the consistency check; the rest on the CPU
        check=_check,
        defaults={**flat_options(_cfg), "verbose": False},
        # the pipeline's own options are checked by its stage configs (pipelines/patchbatch/config.py)
        options={**{name: Passthrough() for name in flat_options(_cfg)}, "verbose": Bool()},
    ))
