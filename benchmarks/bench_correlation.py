"""Correlation op speed and memory at FlowNetC's shape (C=256, 48×64, k=1, d=20, s2=2, float32).

Prints one table per batch size: median wall time of several interleaved runs of
  - the compiled op (flowmatch.ops.correlation; backward = grads of both inputs),
  - the pure-PyTorch banded-GEMM formulation (one matmul per row and vertical shift) = baseline,
  - spatial-correlation-sampler when it can be imported,
with the speed-up over the baseline and the distance to the floor: the op's FLOPs (2·N·D²·oH·oW·C·k²,
twice for backward) divided by the FLOP rate torch reaches on a large float32 matmul in this run.
Then: whether N=1 uses both threads (1-thread vs 2-thread time of the op), the peak extra memory
of forward + backward (allocated tensor bytes, torch.profiler) against output + input gradients, and
the half-precision rows: the op on bfloat16 and float16 maps (the float32 maps rounded, as autocast
does) against float32, interleaved: speed ratio and the max/mean deviation of the outputs from the
float32 output (relative to max |output|), with the CPU kernel each dtype ran (bf16 uses vdpbf16ps
only on CPUs with AVX-512 BF16).

    python benchmarks/bench_correlation.py [--threads 2] [--reps 7] [--batches 1 8] [--quick]

--quick: a tiny shape (C=32, 12×16), 2 runs, N=1, no thread-scaling or memory sections (a smoke run).

The machine may be shared: runs are interleaved so that noise hits every implementation alike, and
the spread (min-max over runs) is printed next to each median.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time

import torch

import flowmatch.ops  # noqa: F401
from flowmatch.ops import correlation
from flowmatch.ops.correlation_reference import correlation_banded_gemm

PAD, K, MD, S1, S2 = 20, 1, 20, 1, 2
C, H, W = 256, 48, 64


def _scs():
    try:
        from spatial_correlation_sampler import spatial_correlation_sample  # type: ignore
    except Exception:
        return None
    return spatial_correlation_sample


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def matmul_rate(reps: int) -> tuple[float, list[float]]:
    """Median FLOP/s of a 2048² float32 matmul (the floor's FLOP rate)."""
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    a @ b
    ts = [timed(lambda: a @ b) for _ in range(reps)]
    return 2 * 2048 ** 3 / statistics.median(ts), ts


def fwd_bwd_fns(impl: str, n: int):
    g = torch.Generator().manual_seed(n)
    f1 = torch.randn(n, C, H, W, generator=g)
    f2 = torch.randn(n, C, H, W, generator=g)
    if impl == "op":
        out = correlation(f1, f2, PAD, K, MD, S1, S2)
        grad = torch.randn_like(out)
        fwd = lambda: correlation(f1, f2, PAD, K, MD, S1, S2)  # noqa: E731
        bwd = lambda: torch.ops.flowmatch.correlation_backward(grad, f1, f2, PAD, K, MD, S1, S2)  # noqa: E731
        return fwd, bwd
    if impl == "banded-gemm":
        fn = lambda a, b: correlation_banded_gemm(a, b, PAD, MD, S2)  # noqa: E731
    else:
        scs = _scs()
        fn = lambda a, b: scs(a, b, kernel_size=1, patch_size=2 * (MD // S2) + 1, stride=S1,  # noqa: E731
                              padding=PAD - MD, dilation_patch=S2)
    a, b = f1.clone().requires_grad_(), f2.clone().requires_grad_()
    out = fn(a, b)
    grad = torch.randn_like(out)

    def bwd():
        torch.autograd.grad(out, (a, b), grad, retain_graph=True)

    return (lambda: fn(f1, f2)), bwd


def thread_cpu_ticks() -> dict:
    """CPU time (clock ticks) used so far by each thread of this process (Linux /proc)."""
    ticks = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            ticks[tid] = int(fields[11]) + int(fields[12])  # utime + stime
        except OSError:
            pass
    return ticks


def thread_shares(fn, seconds: float = 1.5) -> list[float]:
    """Share of the CPU time spent in fn() taken by each thread that worked (robust to a loaded machine)."""
    before = thread_cpu_ticks()
    t = time.perf_counter()
    while time.perf_counter() - t < seconds:
        fn()
    after = thread_cpu_ticks()
    used = sorted((after[k] - before.get(k, 0) for k in after), reverse=True)
    total = sum(used) or 1
    return [u / total for u in used if u / total > 0.02]


def peak_extra_bytes(fn) -> int:
    """Peak of allocated CPU tensor bytes during fn() above the level at its start (torch.profiler)."""
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    fd, path = tempfile.mkstemp(suffix=".json")
    os.close(fd)
    try:
        prof.export_chrome_trace(path)
        with open(path) as fh:
            events = json.load(fh)["traceEvents"]
    finally:
        os.remove(path)
    mem = sorted((e for e in events if e.get("name") == "[memory]"), key=lambda e: e["ts"])
    if not mem:
        return 0
    base = mem[0]["args"]["Total Allocated"] - mem[0]["args"]["Bytes"]
    return max(e["args"]["Total Allocated"] for e in mem) - base


def memory_check(n: int) -> tuple[int, int, int]:
    """(peak extra bytes of op forward + autograd backward, budget = output + input grads, banded-GEMM's)."""
    f1 = torch.randn(n, C, H, W, requires_grad=True)
    f2 = torch.randn(n, C, H, W, requires_grad=True)
    d = 2 * (MD // S2) + 1
    grad = torch.randn(n, d * d, H, W)

    def run(fn):
        def body():
            out = fn(f1, f2)
            out.backward(grad)
            return out
        f1.grad = f2.grad = None
        return peak_extra_bytes(body)

    budget = grad.numel() * 4 + 2 * f1.numel() * 4
    op = run(lambda a, b: correlation(a, b, PAD, K, MD, S1, S2))
    banded = run(lambda a, b: correlation_banded_gemm(a, b, PAD, MD, S2))
    return op, budget, banded


def half_precision_rows(n: int, reps: int) -> None:
    """bf16 / fp16 vs float32 for the op at the benchmark shape: forward and backward time (median of
    interleaved runs), speed ratio, and the deviation of the outputs from the float32 ones."""
    g = torch.Generator().manual_seed(n + 100)
    f1, f2 = torch.randn(n, C, H, W, generator=g), torch.randn(n, C, H, W, generator=g)
    args = (PAD, K, MD, S1, S2)
    ref = correlation(f1, f2, *args)
    grad = torch.randn(ref.shape, generator=g)
    ref_g1, _ = torch.ops.flowmatch.correlation_backward(grad, f1, f2, *args)
    dtypes = (torch.float32, torch.bfloat16, torch.float16)
    ins = {dt: (f1.to(dt), f2.to(dt), grad.to(dt)) for dt in dtypes}
    times = {(dt, p): [] for dt in dtypes for p in ("fwd", "bwd")}
    for _ in range(reps + 1):  # the first round is the warm-up
        for dt in dtypes:
            a, b, gr = ins[dt]
            times[(dt, "fwd")].append(timed(lambda: correlation(a, b, *args)))
            times[(dt, "bwd")].append(timed(lambda: torch.ops.flowmatch.correlation_backward(gr, a, b, *args)))
    print(f"\nN={n} half precision (inputs = the float32 maps rounded; deviation from the float32 output, "
          f"relative to max |output| = {ref.abs().max():.3g} / max |grad_f1| = {ref_g1.abs().max():.3g}):")
    print(f"  {'dtype':<9} {'kernel':<20} {'fwd ms':>8} {'vs fp32':>8} {'bwd ms':>8} {'vs fp32':>8} "
          f"{'fwd max dev':>12} {'fwd mean dev':>13} {'bwd max dev':>12}")
    base = {p: statistics.median(times[(torch.float32, p)][1:]) for p in ("fwd", "bwd")}
    for dt in dtypes:
        a, b, gr = ins[dt]
        kernel = torch.ops.flowmatch_testing.correlation_cpu_kernel(a, b, *args)
        dev = (correlation(a, b, *args).float() - ref).abs()
        gdev = (torch.ops.flowmatch.correlation_backward(gr, a, b, *args)[0].float() - ref_g1).abs()
        med = {p: statistics.median(times[(dt, p)][1:]) for p in ("fwd", "bwd")}
        print(f"  {str(dt).replace('torch.', ''):<9} {kernel:<20} {med['fwd'] * 1e3:8.2f} "
              f"{base['fwd'] / med['fwd']:7.2f}x {med['bwd'] * 1e3:8.2f} {base['bwd'] / med['bwd']:7.2f}x "
              f"{float(dev.max() / ref.abs().max()):12.2e} {float(dev.mean() / ref.abs().max()):13.2e} "
              f"{float(gdev.max() / ref_g1.abs().max()):12.2e}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--quick", action="store_true", help="tiny shape, 2 runs, N=1: a smoke run")
    args = ap.parse_args()
    if args.quick:
        global C, H, W
        C, H, W = 32, 12, 16
        args.reps, args.batches = 2, [1]
    torch.set_num_threads(args.threads)
    impls = ["op", "banded-gemm"] + (["scs"] if _scs() is not None else [])
    print(f"correlation benchmark: C={C} H={H} W={W} pad={PAD} k={K} d={MD} s1={S1} s2={S2} float32, "
          f"{args.threads} threads, {args.reps} interleaved runs, median [min-max] ms")
    if "scs" not in impls:
        print("(spatial_correlation_sampler not importable: its column is omitted)")
    for n in args.batches:
        fns = {impl: fwd_bwd_fns(impl, n) for impl in impls}
        times = {(impl, p): [] for impl in impls for p in ("fwd", "bwd")}
        mm = []
        for impl in impls:  # warm-up
            fns[impl][0]()
            fns[impl][1]()
        for _ in range(args.reps):  # interleaved so that load changes hit every column alike
            rate, _ = matmul_rate(1)
            mm.append(rate)
            for impl in impls:
                times[(impl, "fwd")].append(timed(fns[impl][0]))
                times[(impl, "bwd")].append(timed(fns[impl][1]))
        rate = statistics.median(mm)
        d = 2 * (MD // S2) + 1
        flops = {"fwd": 2 * n * d * d * H * W * C * K * K}
        flops["bwd"] = 2 * flops["fwd"]
        print(f"\nN={n}: sgemm {rate / 1e9:.0f} GFLOP/s (median; [{min(mm) / 1e9:.0f}-{max(mm) / 1e9:.0f}]) "
              f"-> floor fwd {flops['fwd'] / rate * 1e3:.2f} ms, bwd {flops['bwd'] / rate * 1e3:.2f} ms")
        print(f"  {'impl':<12} {'pass':<4} {'median ms':>10} {'[min-max]':>17} {'vs banded':>10} {'x floor':>8} "
              f"{'GFLOP/s':>8}")
        for p in ("fwd", "bwd"):
            base = statistics.median(times[("banded-gemm", p)])
            for impl in impls:
                ts = times[(impl, p)]
                med = statistics.median(ts)
                print(f"  {impl:<12} {p:<4} {med * 1e3:10.2f} {f'[{min(ts) * 1e3:.1f}-{max(ts) * 1e3:.1f}]':>17} "
                      f"{base / med:9.1f}x {med / (flops[p] / rate):7.1f}x {flops[p] / med / 1e9:8.1f}")
    for n in args.batches:
        half_precision_rows(n, args.reps)
    if args.quick:
        return
    # Does one sample use every thread?  Same op, 1 thread vs `threads`, interleaved.
    fwd, bwd = fwd_bwd_fns("op", 1)
    t1 = {"fwd": [], "bwd": []}
    tn = {"fwd": [], "bwd": []}
    for _ in range(args.reps):
        for p, fn in (("fwd", fwd), ("bwd", bwd)):
            torch.set_num_threads(1)
            t1[p].append(timed(fn))
            torch.set_num_threads(args.threads)
            tn[p].append(timed(fn))
    print(f"\nN=1 thread scaling (op, 1 -> {args.threads} threads): " + ", ".join(
        f"{p} {statistics.median(t1[p]) * 1e3:.1f} -> {statistics.median(tn[p]) * 1e3:.1f} ms "
        f"({statistics.median(t1[p]) / statistics.median(tn[p]):.2f}x)" for p in ("fwd", "bwd")))
    if os.path.isdir("/proc/self/task"):
        for p, fn in (("fwd", fwd), ("bwd", bwd)):
            shares = thread_shares(fn)
            print(f"N=1 {p}: CPU time by thread (per-thread /proc accounting): "
                  + ", ".join(f"{100 * x:.0f}%" for x in shares) + f"  -> {len(shares)} threads busy")
    for n in args.batches:
        op, budget, banded = memory_check(n)
        print(f"N={n} peak extra memory, forward + backward: op {op / 2**20:.1f} MiB, budget (output + input grads) "
              f"{budget / 2**20:.1f} MiB ({'within' if op <= budget else 'OVER'}), banded-gemm {banded / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
