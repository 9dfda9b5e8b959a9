"""Comparing a recorded settings dict with the current one (the output records of eval and video)."""
from __future__ import annotations

from typing import Any, Mapping

__all__ = ["settings_differences"]


def settings_differences(old: Mapping[str, Any], new: Mapping[str, Any],
                         opaque: Mapping[str, str] | None = None) -> list[str]:
    """One line per setting that differs between a record (`old`) and now (`new`): option by option for
    "options", the message `opaque[key]` for keys whose values mean nothing to a user (hashes, file ids)."""
    opaque = opaque or {}
    diffs = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if a == b:
            continue
        if key == "options" and isinstance(a, dict) and isinstance(b, dict):
            diffs += [f"option {k}: {a.get(k)!r} there, {b.get(k)!r} now" for k in sorted(set(a) | set(b))
                      if a.get(k) != b.get(k)]
        elif key in opaque:
            diffs.append(f"{key}: {opaque[key]}")
        else:
            diffs.append(f"{key}: {a!r} there, {b!r} now")
    return diffs
