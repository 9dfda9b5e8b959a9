"""The cupy backend's kernel source (csrc/correlation/correlation.h + correlation_kernels.cuh + the
extern "C" wrappers) compiles: with NVRTC through cupy when cupy is installed (no GPU needed), and
with nvcc (slow)."""
from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from flowmatch.ops.correlation_cupy import KERNEL_NAMES, kernel_source


def test_kernel_source_is_self_contained():
    src = kernel_source()
    assert '#include "' not in src  # NVRTC has no include path for our headers
    for name in KERNEL_NAMES:
        assert f'extern "C" __global__ void {name}(' in src
    # The cupy source and the .cu file share one set of kernel bodies.
    root = os.path.join(os.path.dirname(__file__), "..", "..", "csrc", "correlation")
    with open(os.path.join(root, "cuda", "correlation_kernel.cu"), encoding="utf-8") as fh:
        cu = fh.read()
    assert '#include "correlation/correlation_kernels.cuh"' in cu and "corr_fwd_kernel<scalar_t, A><<<" in cu
    assert "corr_fwd_body<float, float>" in src and "__global__ void __launch_bounds__" in src


def test_nvrtc_compiles_cupy_source():
    cupy = pytest.importorskip("cupy")
    nvrtc = cupy.cuda.nvrtc
    try:
        prog = nvrtc.createProgram(kernel_source(), "flowmatch_correlation.cu", [], [])
    except Exception as exc:  # cupy present but libnvrtc missing
        pytest.skip(f"NVRTC not loadable: {exc}")
    try:
        nvrtc.compileProgram(prog, ["-arch=compute_80", "-std=c++17"])
    except Exception as exc:
        pytest.fail(f"NVRTC failed: {exc}\n{nvrtc.getProgramLog(prog)}")
    ptx = nvrtc.getPTX(prog)
    ptx = ptx.decode() if isinstance(ptx, bytes) else ptx
    for name in KERNEL_NAMES:
        assert f".entry {name}(" in ptx


@pytest.mark.slow
def test_nvcc_compiles_cupy_source(tmp_path):
    nvcc = os.path.join(os.environ.get("CUDA_HOME", "/usr/local/cuda"), "bin", "nvcc")
    if not os.path.exists(nvcc):
        nvcc = shutil.which("nvcc")
    if not nvcc:
        pytest.skip("nvcc not found")
    src = tmp_path / "corr.cu"
    src.write_text(kernel_source())
    proc = subprocess.run([nvcc, "--ptx", "-std=c++17", "-arch=compute_80", str(src), "-o", str(tmp_path / "c.ptx")],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    ptx = (tmp_path / "c.ptx").read_text()
    for name in KERNEL_NAMES:
        assert f".entry {name}(" in ptx
