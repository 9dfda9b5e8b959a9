"""Build script for flowmatch and its compiled ops (flowmatch._C).

The C++ kernels in csrc/ are always built for the CPU (with OpenMP).  The CUDA kernels
(csrc/**/*.cu) are added when the installed torch is a CUDA build and nvcc is found;
set FLOWMATCH_CUDA=0 to force a CPU-only build.  torch must be installed first
(pip install --no-build-isolation), see scripts/setup_env.sh and the Makefile.
"""
from __future__ import annotations

import glob
import os

from setuptools import find_packages, setup

ROOT = os.path.dirname(os.path.abspath(__file__))


def _want_cuda() -> bool:
    if os.environ.get("FLOWMATCH_CUDA", "") == "0":
        return False
    import torch

    if torch.version.cuda is None:
        return False
    if not os.environ.get("CUDA_HOME") and os.path.exists("/usr/local/cuda/bin/nvcc"):
        # cpp_extension guesses CUDA_HOME from `which nvcc`, which may be a wrapper script.
        os.environ["CUDA_HOME"] = "/usr/local/cuda"
    if not os.environ.get("TORCH_CUDA_ARCH_LIST"):
        try:
            visible = torch.cuda.is_available()
        except Exception:
            visible = False
        if not visible:
            # No GPU to query: sm_75 (T4, RTX 20), sm_80 (its code also runs on 8.6/8.9: A10, L4,
            # RTX 30/40), sm_90, and PTX the driver compiles for newer GPUs. Each arch costs
            # compile minutes, so no separate 8.6/8.9 builds; set the variable to build for one.
            os.environ["TORCH_CUDA_ARCH_LIST"] = "7.5;8.0;9.0+PTX"
    return True


def _extensions():
    if os.environ.get("FLOWMATCH_NO_EXT_BUILD") == "1":
        return [], {}
    want_cuda = _want_cuda()
    from torch.utils import cpp_extension

    # csrc/cuda_emulation/ holds the test-only CUDA emulation (built by the tests, never shipped).
    sources = sorted(p for p in glob.glob(os.path.join("csrc", "**", "*.cpp"), recursive=True)
                     if not p.startswith(os.path.join("csrc", "cuda_emulation", "")))
    # C++20: torch 2.14 headers use `requires` clauses (torch 2.13 builds with it too).
    cxx = ["-O3", "-fopenmp", "-std=c++20", "-DAT_PARALLEL_OPENMP=1"]
    kwargs = dict(
        name="flowmatch._C",
        sources=sources,
        include_dirs=[os.path.join(ROOT, "csrc")],
        extra_compile_args={"cxx": cxx},
        extra_link_args=["-fopenmp"],
        py_limited_api=False,
    )
    if want_cuda:
        kwargs["sources"] += sorted(glob.glob(os.path.join("csrc", "**", "*.cu"), recursive=True))
        kwargs["extra_compile_args"]["cxx"].append("-DFLOWMATCH_WITH_CUDA")
        kwargs["extra_compile_args"]["nvcc"] = ["-O3", "-std=c++20", "-DFLOWMATCH_WITH_CUDA", "--expt-relaxed-constexpr"]
        ext = cpp_extension.CUDAExtension(**kwargs)
    else:
        ext = cpp_extension.CppExtension(**kwargs)
    return [ext], {"build_ext": cpp_extension.BuildExtension.with_options(use_ninja=True)}


ext_modules, cmdclass = _extensions()

setup(
    name="flowmatch",
    version="0.1.0",
    description="Optical flow and dense correspondence: FlowNet, PatchBatch, correlation and PatchMatch ops",
    packages=find_packages(include=["flowmatch", "flowmatch.*"]),
    package_data={"flowmatch": ["weights/*.safetensors", "weights/*.json"]},
    python_requires=">=3.9",
    install_requires=["numpy", "imageio", "imageio-ffmpeg", "safetensors", "tqdm", "matplotlib"],
    extras_require={"cupy": ["cupy-cuda12x"], "contrib": ["opencv-contrib-python-headless"]},
    entry_points={"console_scripts": ["flowmatch=flowmatch.cli:main"]},
    ext_modules=ext_modules,
    cmdclass=cmdclass,
)
