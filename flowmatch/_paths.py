"""Where flowmatch finds shipped weights and the real sample data."""
from __future__ import annotations

import os

PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_DIR = os.path.dirname(PACKAGE_DIR)


def weights_dir() -> str:
    """Folder of shipped weights: $FLOWMATCH_WEIGHTS, else flowmatch/weights inside the package."""
    return os.environ.get("FLOWMATCH_WEIGHTS") or os.path.join(PACKAGE_DIR, "weights")


def weights_path(name: str) -> str:
    """Path of a shipped weights file by its file name (it may not exist)."""
    return os.path.join(weights_dir(), name)


def real_data_dir() -> str | None:
    """The real sample pairs (../shared/data/real beside the checkout, or $FLOWMATCH_REAL_DATA); None if absent."""
    cand = os.environ.get("FLOWMATCH_REAL_DATA") or os.path.join(REPO_DIR, "..", "shared", "data", "real")
    return os.path.abspath(cand) if os.path.isdir(cand) else None


# Shipped weights: name -> file in weights_dir().
FLOWNET_WEIGHTS = {"flownets": "flownets_small_photos.safetensors",
                   "flownetc": "flownetc_small_photos.safetensors"}
# "dense-512": the dense net at the paper's width (512-D), 3x slower in the pipeline than "dense" (README)
DESCRIPTOR_WEIGHTS = {"dense": "patchbatch_dense.safetensors", "dense-512": "patchbatch_dense_w1.safetensors",
                      "paper": "patchbatch_paper.safetensors"}


def shipped_weights(kind: str) -> str:
    """Path of the shipped FlowNet weights of `kind` ("flownets" or "flownetc");
    MethodUnavailableError when the file is missing."""
    from .errors import InputError, MethodUnavailableError

    if not isinstance(kind, str) or kind not in FLOWNET_WEIGHTS:
        raise InputError(f"no shipped weights for {kind!r}; choose one of {sorted(FLOWNET_WEIGHTS)}")
    path = weights_path(FLOWNET_WEIGHTS[kind])
    if not os.path.isfile(path):
        raise MethodUnavailableError(f"the shipped {kind} weights {path!r} are missing; reinstall flowmatch, set "
                                     f"FLOWMATCH_WEIGHTS, or pass weights=PATH (train with `flowmatch train {kind}`)")
    return path
