"""Compile every csrc/**/*.cu with nvcc (compile only: no GPU is needed or used).

Works with a CPU build of torch: the headers come from torch.utils.cpp_extension.include_paths(),
and -DC10_CUDA_NO_CMAKE_CONFIGURE_FILE stands in for the CUDA config header the CPU wheel lacks.
Exit status 1 if any file fails; each failure prints nvcc's output.
"""
from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def find_nvcc() -> str | None:
    for cand in (os.environ.get("NVCC"), os.path.join(os.environ.get("CUDA_HOME", "/usr/local/cuda"), "bin", "nvcc"),
                 shutil.which("nvcc")):
        if cand and os.path.exists(cand):
            return cand
    return None


def main() -> int:
    from torch.utils.cpp_extension import include_paths

    sources = sorted(glob.glob(os.path.join(ROOT, "csrc", "**", "*.cu"), recursive=True))
    nvcc = find_nvcc()
    if nvcc is None:
        print("check_cuda: nvcc not found (set NVCC or CUDA_HOME)")
        return 1
    if not sources:
        print("check_cuda: no .cu files under csrc/")
        return 0
    arch = os.environ.get("FLOWMATCH_CHECK_ARCH", "80")
    flags = ["-std=c++20", "-O1", "-DC10_CUDA_NO_CMAKE_CONFIGURE_FILE", "-DFLOWMATCH_WITH_CUDA",
             "--expt-relaxed-constexpr", f"-gencode=arch=compute_{arch},code=sm_{arch}",
             "-I" + os.path.join(ROOT, "csrc")]
    flags += ["-I" + p for p in include_paths()]
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        for src in sources:
            rel = os.path.relpath(src, ROOT)
            t0 = time.time()
            out = os.path.join(tmp, os.path.basename(src) + ".o")
            proc = subprocess.run([nvcc, "-c", src, "-o", out, *flags], capture_output=True, text=True)
            status = "ok" if proc.returncode == 0 else "FAILED"
            print(f"check_cuda: {rel}: {status} ({time.time() - t0:.1f} s)")
            if proc.returncode != 0:
                failures += 1
                print(proc.stdout[-8000:], proc.stderr[-8000:], sep="\n")
    print(f"check_cuda: {len(sources) - failures} of {len(sources)} CUDA sources compiled")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
