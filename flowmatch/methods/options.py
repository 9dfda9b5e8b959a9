"""Declarative option specs: one table per method (next to its defaults), one validator.

Each method lists every option with its type and range in `Method.options` (see registry.Method),
using the rules of flowmatch._checks (Int, Float, Bool, OneOf, Path; Passthrough for options a
lower layer checks itself, e.g. the PatchBatch stage configs).  `validate_options` checks the
caller's values against that table before the method runs, so a value outside what the library
below accepts (OpenCV's ranges, the compiled ops' int32/float widths) or outside a sane amount of
work is an InputError naming the option, never a crash, a hang or a silently wrong flow.
"""
from __future__ import annotations

from typing import Any, Mapping

from .._checks import FLOAT32_MAX, INT32_MAX, Bool, Float, Int, OneOf, Passthrough, Path

__all__ = ["Bool", "Float", "Int", "OneOf", "Passthrough", "Path", "INT32_MAX", "FLOAT32_MAX",
           "validate_options", "check_spec_covers"]

Spec = Mapping[str, Any]


def validate_options(method: str, spec: Spec, options: Mapping[str, Any]) -> dict[str, Any]:
    """`options` checked against `spec` (option name -> Int/Float/Bool/OneOf/Path/Passthrough) and
    normalised (numpy scalars to Python).  Options the spec does not name pass unchanged (the
    registry has already refused names outside the method's defaults)."""
    out = dict(options)
    for name, value in options.items():
        rule = spec.get(name)
        if rule is not None:
            out[name] = rule.check(f"method {method!r}: option {name}", value)
    return out


def check_spec_covers(method: str, spec: Spec, defaults: Mapping[str, Any]) -> None:
    """Registration-time check: every option has a rule and every default passes it."""
    missing = set(defaults) - set(spec)
    if missing:
        raise RuntimeError(f"method {method!r}: options {sorted(missing)} have no entry in its option spec")
    validate_options(method, spec, defaults)
