"""GPU speed of the compiled ops against plain-PyTorch GPU baselines (run by `make gpu-check`).

  correlation  FlowNetC shape (N=4, C=256, 48×64, k=1, md=20, s2=2, float32 and float16): the CUDA
               kernels vs the banded-GEMM formulation and the pad/shift/multiply reference, forward
               and forward+backward.
  patchmatch   256×320×64 float32 descriptors: the CUDA op (4 iterations) vs exhaustive search over
               a 24-pixel window in PyTorch (patchmatch_bruteforce, which PatchMatch approximates).

    python benchmarks/bench_gpu_ops.py [--reps 10]

Prints one row per case: median milliseconds (CUDA events), the baseline's, and the speed-up.
Exits 0 with a message when no CUDA device is visible.
"""
from __future__ import annotations

import argparse
import statistics
import sys

import torch


def _time_ms(fn, reps: int) -> float:
    fn()  # warm-up (and kernel compilation)
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        stop.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(stop))
    return statistics.median(times)


def correlation_rows(reps: int) -> list[tuple[str, float, str, float]]:
    from flowmatch.ops import correlation
    from flowmatch.ops.correlation_reference import correlation_banded_gemm, correlation_reference

    rows = []
    args = (20, 1, 20, 1, 2)
    for dtype in (torch.float32, torch.float16):
        g = torch.Generator(device="cuda").manual_seed(0)
        f1 = torch.randn(4, 256, 48, 64, device="cuda", generator=g, dtype=dtype)
        f2 = torch.randn(4, 256, 48, 64, device="cuda", generator=g, dtype=dtype)
        name = str(dtype).replace("torch.", "")
        op = _time_ms(lambda: correlation(f1, f2, *args), reps)
        gemm = _time_ms(lambda: correlation_banded_gemm(f1, f2, 20, 20, 2), reps)
        rows.append((f"correlation fwd {name}", op, "banded GEMM", gemm))
        ref = _time_ms(lambda: correlation_reference(f1, f2, *args), max(2, reps // 3))
        rows.append((f"correlation fwd {name}", op, "pad/shift reference", ref))
        a, b = f1.clone().requires_grad_(), f2.clone().requires_grad_()

        def op_fb():
            correlation(a, b, *args).sum().backward()

        def gemm_fb():
            correlation_banded_gemm(a, b, 20, 20, 2).sum().backward()

        rows.append((f"correlation fwd+bwd {name}", _time_ms(op_fb, reps), "banded GEMM", _time_ms(gemm_fb, reps)))
    return rows


def patchmatch_rows(reps: int) -> list[tuple[str, float, str, float]]:
    from flowmatch.ops.patchmatch import patchmatch, patchmatch_bruteforce

    g = torch.Generator(device="cuda").manual_seed(0)
    b = torch.randn(256, 320, 64, device="cuda", generator=g)
    a = torch.roll(b, shifts=(3, -5), dims=(0, 1)) + 0.05 * torch.randn(256, 320, 64, device="cuda", generator=g)
    pm = _time_ms(lambda: patchmatch(a, b, iterations=4, radius=16, window=24, seed=0), reps)
    bf = _time_ms(lambda: patchmatch_bruteforce(a, b, window=24, rows_per_chunk=64), max(2, reps // 5))
    return [("patchmatch 256×320×64", pm, "brute force ±24 px", bf)]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=10)
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("bench_gpu_ops: no CUDA device visible; nothing to measure")
        return 0
    rows = correlation_rows(args.reps) + patchmatch_rows(args.reps)
    print(f"{'case':32s} {'flowmatch ms':>12s}  {'baseline':22s} {'ms':>9s} {'speed-up':>8s}")
    for name, ms, base, base_ms in rows:
        print(f"{name:32s} {ms:12.3f}  {base:22s} {base_ms:9.3f} {base_ms / ms:7.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
