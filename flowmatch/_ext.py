"""Loads the compiled extension flowmatch._C once, and says how to build it when it is missing."""
from __future__ import annotations

import importlib

import torch  # noqa: F401  (the .so finds libc10 only once torch is loaded)

from .errors import ExtensionNotBuiltError

BUILD_HINT = ("build it from the repository root with `make build` "
              "(or `python setup.py build_ext --inplace` in an environment that has torch)")

_state: dict = {}


def load() -> bool:
    """Import flowmatch._C if possible; True when its ops are registered under torch.ops.flowmatch."""
    if "ok" not in _state:
        try:
            importlib.import_module("flowmatch._C")
            _state["ok"], _state["error"] = True, None
        except ImportError as exc:  # not built, or built against another torch
            _state["ok"], _state["error"] = False, exc
    return _state["ok"]


def available() -> bool:
    return load()


def load_error() -> str | None:
    load()
    err = _state["error"]
    return None if err is None else f"{type(err).__name__}: {err}"


def require(what: str) -> None:
    """Raise ExtensionNotBuiltError naming `what` when the extension cannot be loaded."""
    if not load():
        raise ExtensionNotBuiltError(
            f"{what} needs the compiled extension flowmatch._C, which could not be imported "
            f"({load_error()}); {BUILD_HINT}.")


def has_cuda_kernels() -> bool:
    """True when the extension was built with its CUDA kernels."""
    if not load():
        return False
    try:
        return bool(torch._C._dispatch_has_kernel_for_dispatch_key("flowmatch::correlation", "CUDA"))
    except (RuntimeError, AttributeError):  # op not registered, or an older torch
        return False
