"""Builds and loads the test-only extension that runs the project's CUDA kernels on the CPU.

csrc/cuda_emulation/emulated_ops.cpp is compiled by g++ with the same kernel headers the .cu files
include, against the CUDA emulation layer csrc/cuda_emulation/cuda_host.h, and registers
torch.ops.flowmatch_emulated.*.  The build is cached under build/cuda_emulated (ninja rebuilds only
when a source or header changed; ~40 s from scratch on 2 cores).  FLOWMATCH_EMULATED_ASAN=1 builds
an AddressSanitizer variant instead (the process must preload libasan: see test_cuda_emulated_asan).
"""
from __future__ import annotations

import os

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CSRC = os.path.join(ROOT, "csrc")
_loaded: dict = {}


def asan_requested() -> bool:
    return os.environ.get("FLOWMATCH_EMULATED_ASAN") == "1"


def load():
    """torch.ops.flowmatch_emulated, building the extension first if needed."""
    if "ops" in _loaded:
        return _loaded["ops"]
    from torch.utils.cpp_extension import load as load_extension

    asan = asan_requested()
    name = "flowmatch_emulated_asan" if asan else "flowmatch_emulated"
    build_dir = os.path.join(ROOT, "build", name)
    os.makedirs(build_dir, exist_ok=True)
    # -O1: the kernels run millions of tiny fiber switches, not heavy maths; keeps the build short.
    # -fno-extern-tls-init: `extern __shared__` becomes `extern thread_local`, whose (absent) TLS init
    # function g++ would otherwise call through a null PLT entry.
    cflags = ["-O1", "-std=c++20", "-g0", "-fno-extern-tls-init"]
    ldflags = []
    if asan:
        cflags += ["-fsanitize=address", "-fno-omit-frame-pointer"]
        ldflags += ["-fsanitize=address"]
    load_extension(name=name, sources=[os.path.join(CSRC, "cuda_emulation", f) for f in
                            ("emulated_ops.cpp", "local_correlation_emulated.cpp")],
                   extra_include_paths=[CSRC], extra_cflags=cflags, extra_ldflags=ldflags,
                   build_directory=build_dir, is_python_module=False, verbose=False)
    _loaded["ops"] = torch.ops.flowmatch_emulated
    return _loaded["ops"]
