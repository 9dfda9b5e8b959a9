"""Typed value rules shared by every layer that takes settings: Int, Float, Bool, OneOf, Path.

`rule.check(name, value)` returns the value normalised (numpy scalars to Python) or raises
InputError naming `name` and the allowed range.  NaN and ±inf are refused by Float; bools are not
integers here; strings are not bools.  The method option tables (flowmatch.methods.options) and the
PatchBatch stage configs use them.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import InputError

INT32_MAX = 2**31 - 1
FLOAT32_MAX = float(np.finfo(np.float32).max)


@dataclass(frozen=True)
class Int:
    """An integer in [lo, hi] (bools refused)."""
    lo: int
    hi: int
    optional: bool = False  # None allowed

    def check(self, name: str, v: Any) -> Any:
        if v is None and self.optional:
            return None
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise InputError(f"{name} must be an integer in [{self.lo}, {self.hi}], got {v!r}")
        if not self.lo <= int(v) <= self.hi:
            raise InputError(f"{name} must be an integer in [{self.lo}, {self.hi}], got {int(v)}")
        return int(v)


@dataclass(frozen=True)
class Float:
    """A finite number in the interval lo..hi; `open_lo` / `open_hi` exclude the end point."""
    lo: float
    hi: float
    open_lo: bool = False
    open_hi: bool = False
    optional: bool = False

    def describe(self) -> str:
        return f"{'(' if self.open_lo else '['}{self.lo:g}, {self.hi:g}{')' if self.open_hi else ']'}"

    def check(self, name: str, v: Any) -> Any:
        if v is None and self.optional:
            return None
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
            raise InputError(f"{name} must be a number in {self.describe()}, got {v!r}")
        try:
            f = float(v)
        except OverflowError:
            raise InputError(f"{name} must be a number in {self.describe()}, got {v!r}") from None
        if not math.isfinite(f):
            raise InputError(f"{name} must be a finite number in {self.describe()}, got {f}")
        below = f <= self.lo if self.open_lo else f < self.lo
        above = f >= self.hi if self.open_hi else f > self.hi
        if below or above:
            raise InputError(f"{name} must be in {self.describe()}, got {f:g}")
        return f


@dataclass(frozen=True)
class Bool:
    """True or False (numpy bools too); strings and numbers are refused."""
    optional: bool = False

    def check(self, name: str, v: Any) -> Any:
        if v is None and self.optional:
            return None
        if not isinstance(v, (bool, np.bool_)):
            raise InputError(f"{name} must be True or False, got {v!r}")
        return bool(v)


@dataclass(frozen=True)
class OneOf:
    """One of a fixed set of values."""
    values: tuple

    def check(self, name: str, v: Any) -> Any:
        if isinstance(v, bool) or v not in self.values:
            raise InputError(f"{name} must be one of {list(self.values)}, got {v!r}")
        return v


@dataclass(frozen=True)
class Path:
    """A file path (str or os.PathLike); `optional` allows None."""
    optional: bool = True

    def check(self, name: str, v: Any) -> Any:
        if v is None and self.optional:
            return None
        if not isinstance(v, (str, os.PathLike)) or not os.fspath(v):
            raise InputError(f"{name} must be a file path, got {v!r}")
        return os.fspath(v)


@dataclass(frozen=True)
class Passthrough:
    """Checked further down (e.g. by the PatchBatch pipeline's stage configs)."""

    def check(self, name: str, v: Any) -> Any:
        return v


def _physical_memory() -> int:
    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):  # not POSIX: a generous fixed bound
        return 1 << 40


_CPU_MEMORY = _physical_memory()  # read once (also keeps sysconf out of torch.compile traces)


def memory_bytes(device: Any = "cpu") -> int:
    """Memory an allocation on `device` can at most get: the machine's physical memory for the CPU,
    the device's total memory for CUDA (an upper bound, not what is free)."""
    kind = getattr(device, "type", str(device).split(":")[0])
    if kind == "cuda":
        import torch

        return int(torch.cuda.get_device_properties(device).total_memory)
    return _CPU_MEMORY


def check_allocation(what: str, nbytes: int, device: Any = "cpu") -> None:
    """InputError naming `what` and the size it would need, when `nbytes` exceeds memory_bytes(device)
    (so a hostile size is refused up front instead of a failed or thrashing allocation)."""
    limit = memory_bytes(device)
    if nbytes > limit:
        raise InputError(f"{what} would need {nbytes / 2**30:.3g} GiB, more than the {limit / 2**30:.3g} GiB "
                         f"of memory on {device}")
