"""Numeric precision choices for training and inference: fp32, or bf16 autocast where the CPU pays for it.

    dtype = resolve_precision("auto", device)     # "fp32" or "bf16"
    with autocast(device, dtype):                 # torch.autocast for bf16, a no-op for fp32
        out = model(x)

"auto" picks bf16 on CUDA GPUs that support it and on CPUs with AVX-512 BF16 or AMX (where oneDNN
runs bf16 convolutions and matmuls natively), fp32 everywhere else.  On a CPU without them (AVX2 only)
torch emulates bf16 and is several times *slower* than fp32 (measured here: a conv fwd+bwd 0.44 s fp32
against 3.3 s under bf16 autocast on an AVX2 Zen 3), so "auto" never picks it there; "bf16" forces it.
Master weights and optimizer state stay fp32 in every mode (autocast only changes the op dtypes).
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch

from .errors import InputError

__all__ = ["PRECISIONS", "cpu_has_fast_bf16", "resolve_precision", "autocast"]

PRECISIONS = ("auto", "fp32", "bf16")


def cpu_has_fast_bf16() -> bool:
    """True when this CPU has native bf16 arithmetic (AVX-512 BF16 or AMX tiles)."""
    cpu = getattr(torch, "cpu", None)
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(cpu, p, lambda: False)()) for p in probes)


def resolve_precision(precision: str, device: str | torch.device = "cpu") -> str:
    """"auto" | "fp32" | "bf16" -> "fp32" or "bf16" for `device` (see the module docstring)."""
    if precision not in PRECISIONS:
        raise InputError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision != "auto":
        return precision
    dev = torch.device(device)
    if dev.type == "cuda":
        return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if dev.type == "cpu" and cpu_has_fast_bf16() else "fp32"


@contextlib.contextmanager
def autocast(device: str | torch.device, precision: str) -> Iterator[None]:
    """torch.autocast(device type, bfloat16) for precision "bf16"; nothing for "fp32"."""
    if precision == "fp32":
        yield
        return
    if precision != "bf16":
        raise InputError(f"autocast precision must be 'fp32' or 'bf16' (resolve 'auto' first), got {precision!r}")
    with torch.autocast(torch.device(device).type, dtype=torch.bfloat16):
        yield
