"""`make gpu-check`: on a CUDA machine, every GPU test plus the GPU benchmarks, one summary table.

  1. the extension must have its CUDA kernels (build with a CUDA torch: FLOWMATCH_TORCH=cuda make build);
  2. pytest -m gpu (the device-parametrised op tests, their cuda cases) and the emulated-kernel tests;
  3. benchmarks/bench_gpu_ops.py (compiled ops vs plain-PyTorch GPU baselines).
Budget: under 5 minutes on one GPU.  Without a CUDA device it prints why and exits 0.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(title: str, cmd: list[str], timeout: int) -> tuple[str, bool, float, str]:
    t0 = time.time()
    try:
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
        ok, out = proc.returncode == 0, proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as exc:
        ok, out = False, f"timed out after {timeout} s\n{exc.stdout or ''}"
    return title, ok, time.time() - t0, out


def main() -> int:
    import torch

    if not torch.cuda.is_available():
        print("gpu-check: skipped: no CUDA device visible (torch.cuda.is_available() is False; torch "
              f"{torch.__version__}, CUDA build: {torch.version.cuda is not None})")
        return 0
    from flowmatch import _ext

    if not _ext.has_cuda_kernels():
        print("gpu-check: FAILED: flowmatch._C has no CUDA kernels; rebuild with a CUDA torch "
              "(FLOWMATCH_TORCH=cuda make build)")
        return 1
    py = sys.executable
    steps = [
        _run("GPU tests (pytest -m gpu)", [py, "-m", "pytest", "-q", "-m", "gpu", "tests"], 150),
        _run("emulated kernels (pytest -m cuda_emulated)",
             [py, "-m", "pytest", "-q", "-m", "cuda_emulated and not slow", "tests/ops"], 120),
        _run("benchmarks/bench_gpu_ops.py", [py, "benchmarks/bench_gpu_ops.py", "--reps", "10"], 90),
    ]
    print(f"gpu-check on {torch.cuda.get_device_name(0)}")
    print(f"{'step':45s} {'result':7s} {'seconds':>8s}  summary")
    for title, ok, secs, out in steps:
        tail = [line for line in out.strip().splitlines() if line.strip()][-1:] or [""]
        print(f"{title:45s} {'ok' if ok else 'FAILED':7s} {secs:8.1f}  {tail[0][:80]}")
    bench = steps[2][3]
    print("\n" + "\n".join(line for line in bench.splitlines() if line.strip()))
    for title, ok, _, out in steps:
        if not ok:
            print(f"\n---- {title} ----\n{out[-4000:]}")
    return 0 if all(ok for _, ok, _, _ in steps) else 1


if __name__ == "__main__":
    sys.exit(main())
