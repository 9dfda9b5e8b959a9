"""Loads flowmatch._C and, once it is loaded, each op's Python registrations (fake kernels, autograd).

The schemas are registered by the shared object itself; the registration modules can only run after
it, so they are imported here (and only here) when the load succeeded.  Every op module calls
`load()` before it touches torch.ops.flowmatch."""
from __future__ import annotations

import importlib

from .. import _ext

# One module per op: flowmatch/ops/<op>_registration.py.
_REGISTRATIONS = ("correlation_registration", "patchmatch_registration", "interpolation_registration",
                  "local_correlation_registration")
_done: list = []


def load() -> bool:
    """True when flowmatch._C is loaded and every op's fake kernel and autograd are registered."""
    if not _ext.load():
        return False
    if not _done:
        _done.append(True)  # before the imports: a failing registration must not be retried silently
        for name in _REGISTRATIONS:
            importlib.import_module(f"{__package__}.{name}")
    return True
