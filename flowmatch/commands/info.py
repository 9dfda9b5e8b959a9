"""`flowmatch info [--json]`: what this installation can do.

Versions, whether the compiled extension loads (and why not), CUDA kernels and devices, cupy,
the OpenCV contrib flow methods, shipped weights, and every registered flow method with the devices
it can run on (cpu; cuda for those that can use a GPU) and the reason it cannot run here (if any)."""
from __future__ import annotations

import argparse
import glob
import importlib
import json
import os
import platform
import sys
from typing import Any

# OpenCV flow algorithms by the attribute path that provides them.
OPENCV_METHODS = {
    "DIS": "DISOpticalFlow_create",
    "Farneback": "calcOpticalFlowFarneback",
    "DeepFlow": "optflow.createOptFlow_DeepFlow",
    "DualTVL1": "optflow.DualTVL1OpticalFlow_create",
    "PCAFlow": "optflow.createOptFlow_PCAFlow",
    "SparseToDense": "optflow.createOptFlow_SparseToDense",
    "EdgeAwareInterpolator": "ximgproc.createEdgeAwareInterpolator",
    "RICInterpolator": "ximgproc.createRICInterpolator",
}


def _version(module: str) -> str | None:
    try:
        return getattr(importlib.import_module(module), "__version__", "unknown")
    except Exception:  # absent or broken: report, do not fail
        return None


def _has_attr_path(root: Any, path: str) -> bool:
    for part in path.split("."):
        if not hasattr(root, part):
            return False
        root = getattr(root, part)
    return True


def collect() -> dict[str, Any]:
    """Everything `flowmatch info` reports, as a JSON-able dict."""
    import numpy
    import torch

    import flowmatch
    from flowmatch import _ext, _paths

    info: dict[str, Any] = {
        "flowmatch": flowmatch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "torch_cuda_build": torch.version.cuda,
        "numpy": numpy.__version__,
        "opencv": _version("cv2"),
    }
    info["extension_loaded"] = _ext.available()
    info["extension_error"] = _ext.load_error()
    try:
        info["cuda_kernels_built"] = _ext.has_cuda_kernels()
    except RuntimeError as exc:  # the extension loads but does not (yet) register the op queried
        info["cuda_kernels_built"] = False
        info["cuda_kernels_error"] = str(exc)
    try:
        info["torch_cuda_available"] = bool(torch.cuda.is_available())
        info["cuda_devices"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    except Exception as exc:  # a broken driver must not break `info`
        info["torch_cuda_available"], info["cuda_devices"] = False, [f"error: {exc}"]
    try:
        import cupy  # noqa: F401

        info["cupy"] = cupy.__version__
    except Exception as exc:
        info["cupy"] = None
        info["cupy_error"] = f"{type(exc).__name__}: {exc}"
    try:
        import cv2

        info["opencv_methods"] = {name: _has_attr_path(cv2, path) for name, path in OPENCV_METHODS.items()}
    except Exception:
        info["opencv_methods"] = {}
    wdir = _paths.weights_dir()
    info["weights_dir"] = wdir
    info["weights"] = sorted(os.path.basename(p) for p in glob.glob(os.path.join(wdir, "*.safetensors")))
    try:
        info["methods"] = {m.name: {"available": m.unavailable_reason() is None,
                                    "reason": m.unavailable_reason(), "description": m.description,
                                    "devices": ["cpu", "cuda"] if m.uses_gpu else ["cpu"]}
                           for m in flowmatch.methods()}
    except Exception as exc:  # one broken method module must not hide the rest of the report
        info["methods"] = {}
        info["methods_error"] = f"{type(exc).__name__}: {exc}"
    return info


def _print_text(info: dict[str, Any]) -> None:
    def line(key: str, val: Any) -> None:
        print(f"{key:<22} {val}")

    line("flowmatch", info["flowmatch"])
    line("python", f"{info['python']} ({info['platform']})")
    line("torch", f"{info['torch']} (CUDA build: {info['torch_cuda_build'] or 'no'})")
    line("numpy", info["numpy"])
    line("opencv", info["opencv"] or "not installed")
    ext = "loaded" if info["extension_loaded"] else f"NOT loaded: {info['extension_error']}"
    line("extension flowmatch._C", ext)
    line("CUDA kernels built", "yes" if info["cuda_kernels_built"] else "no")
    line("torch.cuda available", "yes" if info["torch_cuda_available"] else "no")
    if info["cuda_devices"]:
        line("CUDA devices", ", ".join(info["cuda_devices"]))
    line("cupy", info["cupy"] or f"not importable ({info.get('cupy_error')})")
    ocv = info["opencv_methods"]
    line("opencv flow methods", ", ".join(k for k, v in ocv.items() if v) or "none")
    missing = [k for k, v in ocv.items() if not v]
    if missing:
        line("  missing", ", ".join(missing) + " (opencv-contrib-python-headless provides them)")
    line("weights", f"{info['weights_dir']}: {', '.join(info['weights']) or 'none found'}")
    if info.get("methods_error"):
        line("methods", f"error while loading: {info['methods_error']}")
    print("flow methods:  (name, the devices --device can put it on, status; cuda = cuda or cuda:N)")
    for name, m in info["methods"].items():
        status = "available" if m["available"] else f"unavailable: {m['reason']}"
        devices = "cpu, cuda" if "cuda" in m["devices"] else "cpu only"
        print(f"  {name:<20} {devices:<10} {status}")
    gpu = [n for n, m in info["methods"].items() if "cuda" in m["devices"]]
    line("can use a GPU", (", ".join(gpu) or "none") + ("" if info["torch_cuda_available"]
                                                        else " (no CUDA device here: they run on the CPU)"))


def run(args: argparse.Namespace) -> int:
    info = collect()
    if args.json:
        json.dump(info, sys.stdout, indent=2)
        print()
    else:
        _print_text(info)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="versions, extension, GPU, weights and available flow methods",
                       description="Report what this flowmatch installation can do.")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=run)
