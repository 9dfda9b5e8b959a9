"""How a hostile case passes: names starting with "ok_" or "cli_" must return normally (their own
asserts check the result, e.g. the input is untouched); names starting with "raw_" call a compiled
op directly (torch.ops.flowmatch.*, no Python checks in front) and must raise an exception (C++
raises RuntimeError; not a crash, a hang, a MemoryError or a garbage result); every other case must
raise a named flowmatch error (FlowmatchError) -- not a foreign exception, a crash, a hang or a
MemoryError."""
from __future__ import annotations

from _runner import Outcome


def must_return(name: str) -> bool:
    return name.startswith(("ok_", "cli_"))


def check(name: str, out: Outcome) -> None:
    if must_return(name):
        assert out.outcome == "ok", out.describe()
    elif name.startswith("raw_"):
        assert out.outcome == "raised" and out.type not in ("MemoryError", "AssertionError"), out.describe()
    else:
        assert out.named_error, out.describe()
