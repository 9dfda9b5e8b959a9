"""Device names the command line accepts: "cpu", "cuda", "cuda:N" (and "auto" where a command has it).

`parse_device` checks the spelling (InputError); `require_device` also checks that the device is
there (MethodUnavailableError, exit code 4 on the command line: "cannot run here ... GPU")."""
from __future__ import annotations

import re

import torch

from .errors import InputError, MethodUnavailableError

__all__ = ["parse_device", "require_device", "cuda_device_count"]

_PATTERN = re.compile(r"^(cpu|cuda)(?::(\d+))?$")


def parse_device(text: str) -> torch.device:
    """torch.device of "cpu", "cuda" or "cuda:N" (N >= 0); InputError for any other text."""
    m = _PATTERN.match(str(text).strip().lower()) if isinstance(text, str) else None
    if m is None or (m.group(1) == "cpu" and m.group(2) is not None):
        raise InputError(f"--device must be cpu, cuda or cuda:N (N = 0, 1, ...), got {text!r}")
    return torch.device(m.group(1) if m.group(2) is None else f"{m.group(1)}:{int(m.group(2))}")


def cuda_device_count() -> int:
    """Number of visible CUDA devices (0 without a GPU, a CUDA build of torch or a working driver)."""
    try:
        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    except Exception:  # a broken driver counts as no GPU, it must not crash a CPU run
        return 0


def require_device(text: str) -> torch.device:
    """parse_device(text), then MethodUnavailableError when it names a CUDA device that is not
    visible (no GPU, or an index past the last one)."""
    dev = parse_device(text)
    if dev.type != "cuda":
        return dev
    count = cuda_device_count()
    if count == 0:
        why = "torch was built without CUDA" if torch.version.cuda is None else "no CUDA device is visible"
        raise MethodUnavailableError(f"--device {text!r}: {why} on this machine; use --device cpu")
    if dev.index is not None and dev.index >= count:
        raise MethodUnavailableError(f"--device {text!r}: only {count} CUDA device(s) here "
                                     f"(cuda:0 .. cuda:{count - 1})")
    return dev
