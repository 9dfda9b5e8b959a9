"""The PatchBatch methods: dense descriptors + PatchMatch + consistency + edge-aware interpolation.

``patchbatch-accurate`` and ``patchbatch-fast`` run flowmatch.matching.patchbatch_flow with the
presets of flowmatch.matching.PRESETS.  Every PipelineConfig field is an option (e.g.
``flowmatch.flow(a, b, method="patchbatch-fast", iterations=4)`` or ``--option iterations=4``), plus
``verbose`` (stage timings on stderr).  CPU only for now: descriptors and PatchMatch run on the CPU.
"""
from __future__ import annotations

import dataclasses
from functools import partial
from typing import Any

import numpy as np

from .. import _ext
from ..errors import InputError
from .registry import Method, register

_MODELS: dict[Any, Any] = {}  # descriptor networks loaded once per process


def _check() -> str | None:
    if not _ext.available():
        return f"the compiled extension is missing ({_ext.load_error()}); {_ext.BUILD_HINT}"
    import torch

    if not hasattr(torch.ops.flowmatch, "patchmatch") or not hasattr(torch.ops.flowmatch, "edge_aware_interpolate"):
        return "flowmatch._C was built without the patchmatch/interpolation ops; rebuild with `make build`"
    from .._paths import weights_path
    from ..descriptors_dense import SHIPPED
    import os

    if not os.path.isfile(weights_path(SHIPPED["dense"])):
        return f"shipped descriptor weights {weights_path(SHIPPED['dense'])!r} are missing"
    return None


def _model(name: Any):
    if name not in _MODELS:
        from ..descriptors_dense import load_descriptor_model
        _MODELS[name] = load_descriptor_model(name)
    return _MODELS[name]


def _run(img1: np.ndarray, img2: np.ndarray, *, preset: str, device: str = "cpu", verbose: bool = False,
         **options: Any) -> np.ndarray:
    from ..matching import patchbatch_flow

    if device not in ("cpu", None):
        raise InputError(f"method 'patchbatch-{preset}' runs on the CPU only for now; got device={device!r}")
    model = _model(options.get("descriptor_model")) if options.get("descriptor", "patchbatch") == "patchbatch" else None
    return patchbatch_flow(img1, img2, preset=preset, verbose=bool(verbose), model=model, **options)


def _register() -> None:
    from ..matching import PRESETS

    blurb = {
        "accurate": "PatchBatch descriptors at every pixel, PatchMatch both ways, consistency check, "
                    "edge-aware interpolation, variational refinement",
        "fast": "PatchBatch descriptors every 2nd pixel, PCA to 32-D, fewer PatchMatch passes, "
                "interpolation + refinement",
    }
    for preset, cfg in PRESETS.items():
        register(Method(
            name=f"patchbatch-{preset}",
            run=partial(_run, preset=preset),
            description=blurb[preset],
            needs_extension=True,
            needs_weights=True,
            check=_check,
            defaults={**dataclasses.asdict(cfg), "verbose": False},
        ))


_register()
