"""Half-precision CPU kernels of the correlation op (bfloat16, float16) against the float64 reference.

The kernels widen bf16/fp16 to float32 as they pack their tiles (exact), accumulate in float32 and
round the result once; on CPUs with AVX-512 BF16 the bf16 forward multiplies channel pairs with
vdpbf16ps instead (that kernel's schedule runs here with its dot product emulated:
flowmatch_testing.correlation_bf16_pairs).  Backwards are float32 after the (exact) conversion.

Tolerances, with u the unit roundoff (2^-8 bfloat16, 2^-11 float16) and S = Σ|a||b| / (k²·C) per
output element (the reference evaluated on |f1|, |f2|):
- against the reference of the *rounded* inputs: u·|ref| (the one final rounding) + k²·C·2^-24·S
  (float32 accumulation) + 2^-24 (float16's subnormal spacing near 0);
- against the reference of the unrounded float64 inputs: 3u·S (2u from rounding both factors, u from
  the output) plus the same accumulation term.
"""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

import flowmatch.ops  # noqa: F401  (loads the extension and its registrations)
from flowmatch.ops import correlation
from flowmatch.ops.correlation import extension_available
from flowmatch.ops.correlation_reference import correlation_reference

pytestmark = pytest.mark.skipif(not extension_available(), reason="flowmatch._C not built (make build)")

UNIT = {torch.bfloat16: 2.0 ** -8, torch.float16: 2.0 ** -11}
HALF = [torch.bfloat16, torch.float16]

# (N, C, H, W, pad, k, md, s1, s2): odd sizes and channel counts (odd C leaves the pair kernel a
# lone last channel), k = 3 and 5, padding, stride2 > 1, subsampled stride1 = 2 and 3, stride1 = 4
# (the per-element path), widths past one vector block, a 1×1 map, FlowNetC's settings.
SHAPES = [
    (1, 3, 5, 7, 1, 1, 1, 1, 1),
    (2, 17, 9, 13, 3, 3, 2, 1, 1),
    (1, 8, 11, 23, 4, 1, 4, 1, 2),
    (1, 33, 10, 19, 6, 1, 6, 2, 3),
    (2, 5, 12, 17, 2, 3, 2, 3, 1),
    (1, 4, 9, 9, 2, 1, 2, 4, 1),
    (1, 6, 4, 41, 0, 1, 0, 1, 1),
    (1, 3, 8, 8, 3, 5, 1, 1, 1),
    (1, 2, 1, 1, 2, 1, 2, 1, 1),
    (1, 64, 12, 30, 20, 1, 20, 1, 2),
]
IDS = ["x".join(map(str, s)) for s in SHAPES]


def maps(n, c, h, w, seed):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, c, h, w, generator=g, dtype=torch.float64),
            torch.randn(n, c, h, w, generator=g, dtype=torch.float64))


def accumulation_term(s, args, c):
    k = args[1]
    return k * k * c * 2.0 ** -24 * s + 2.0 ** -24


def assert_within(got, want, bound, what):
    err = (got.double() - want).abs()
    excess = (err - bound).max().item()
    assert excess <= 0, f"{what}: error exceeds the bound by {excess:.3g} (max error {err.max().item():.3g})"


def check_forward(out, f1, f2, args, dtype, what):
    """out (dtype) vs the reference of the rounded inputs and of the unrounded ones."""
    assert out.dtype == dtype, what
    u, c = UNIT[dtype], f1.shape[1]
    r1, r2 = f1.to(dtype).double(), f2.to(dtype).double()
    ref_rounded = correlation_reference(r1, r2, *args)
    s = correlation_reference(r1.abs(), r2.abs(), *args)
    acc = accumulation_term(s, args, c)
    assert out.shape == ref_rounded.shape, what
    assert_within(out, ref_rounded, u * ref_rounded.abs() + acc, what + " vs the rounded inputs")
    ref = correlation_reference(f1, f2, *args)
    assert_within(out, ref, 3 * u * s + acc, what + " vs the float64 inputs")


@pytest.mark.parametrize("dtype", HALF, ids=["bf16", "fp16"])
@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
def test_half_forward_matches_float64_reference(shape, dtype):
    n, c, h, w, *args = shape
    f1, f2 = maps(n, c, h, w, seed=sum(shape))
    a, b = f1.to(dtype), f2.to(dtype)
    out = correlation(a, b, *args)
    check_forward(out, f1, f2, args, dtype, "op")
    kernel = torch.ops.flowmatch_testing.correlation_cpu_kernel(a, b, *args)
    if kernel != "bfloat16_avx512bf16":
        # Widening is exact and the float32 kernel runs the same products in the same order: the
        # half kernels equal the float32 op on the rounded inputs, rounded once, bit for bit.
        want = correlation(a.float(), b.float(), *args).to(dtype)
        assert torch.equal(out, want), kernel


@pytest.mark.parametrize("shape", [s for s in SHAPES if s[7] <= 3], ids=[i for i, s in zip(IDS, SHAPES) if s[7] <= 3])
def test_bf16_pair_schedule_matches_reference(shape):
    # The AVX-512 BF16 kernel's packing and indexing (correlation_simd_pairs.inc) with its dot
    # product emulated on AVX2: what this CPU can check of a kernel it cannot run.
    n, c, h, w, *args = shape
    f1, f2 = maps(n, c, h, w, seed=sum(shape) + 1)
    out = torch.ops.flowmatch_testing.correlation_bf16_pairs(f1.bfloat16(), f2.bfloat16(), *args)
    check_forward(out, f1, f2, args, torch.bfloat16, "pair schedule")


def test_half_accumulates_in_float32():
    # 512 channels of values ~1: an accumulator of the input type would be off by many units of the
    # output's last place; float32 accumulation and one rounding stay within u·|ref|.
    f1, f2 = maps(1, 512, 6, 8, seed=3)
    f1, f2 = f1 + 1, f2 + 1
    for dtype in HALF:
        out = correlation(f1.to(dtype), f2.to(dtype), 1, 1, 1, 1, 1)
        check_forward(out, f1, f2, (1, 1, 1, 1, 1), dtype, str(dtype))
    pairs = torch.ops.flowmatch_testing.correlation_bf16_pairs(f1.bfloat16(), f2.bfloat16(), 1, 1, 1, 1, 1)
    check_forward(pairs, f1, f2, (1, 1, 1, 1, 1), torch.bfloat16, "pair schedule")


@pytest.mark.parametrize("dtype", HALF, ids=["bf16", "fp16"])
@pytest.mark.parametrize("shape", [SHAPES[1], SHAPES[3], SHAPES[4]], ids=[IDS[1], IDS[3], IDS[4]])
def test_half_gradients(shape, dtype):
    # Backward of half inputs: float32 after the exact conversion, each gradient rounded once.
    n, c, h, w, *args = shape
    f1, f2 = maps(n, c, h, w, seed=sum(shape) + 2)
    a, b = f1.to(dtype).requires_grad_(), f2.to(dtype).requires_grad_()
    out = correlation(a, b, *args)
    g = torch.randn(out.shape, generator=torch.Generator().manual_seed(7), dtype=torch.float64).to(dtype)
    ga, gb = torch.autograd.grad(out, (a, b), g)
    assert ga.dtype == dtype and gb.dtype == dtype
    r1, r2 = a.detach().double().requires_grad_(), b.detach().double().requires_grad_()
    ra, rb = torch.autograd.grad(correlation_reference(r1, r2, *args), (r1, r2), g.double())
    # S for a gradient: Σ|grad_out|·|other map| / (k²·C), the reference's gradient on absolute values
    p1, p2 = r1.detach().abs().requires_grad_(), r2.detach().abs().requires_grad_()
    sa, sb = torch.autograd.grad(correlation_reference(p1, p2, *args), (p1, p2), g.double().abs())
    u, d = UNIT[dtype], out.shape[1]
    for got, want, s, name in ((ga, ra, sa, "grad_f1"), (gb, rb, sb, "grad_f2")):
        bound = u * want.abs() + args[1] ** 2 * d * 2.0 ** -24 * s + 2.0 ** -24
        assert_within(got, want, bound, name)
    # and exactly the float32 backward on the rounded values, rounded once
    fa, fb = a.detach().float(), b.detach().float()
    g32 = torch.ops.flowmatch.correlation_backward(g.float(), fa, fb, *args)
    assert torch.equal(ga, g32[0].to(dtype)) and torch.equal(gb, g32[1].to(dtype))


def cpu_flags() -> set:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def expected_kernel(dtype, flags, cap=None) -> str:
    """The kernel common/cpu_features.h should choose for stride1 = 1 on a CPU with these flags."""
    avx512 = {"avx512f", "avx512bw", "avx512vl", "avx512dq"} <= flags and cap in (None, "avx512")
    avx2 = {"avx2", "fma", "f16c"} <= flags and cap != "none"
    name = {torch.float32: "float32", torch.bfloat16: "bfloat16", torch.float16: "float16"}.get(dtype)
    if name is None or not (avx2 or avx512):
        return "elementwise"
    if dtype == torch.bfloat16 and avx512 and cap is None and "avx512_bf16" in flags:
        return "bfloat16_avx512bf16"
    return f"{name}_{'avx512' if avx512 else 'avx2'}"


@pytest.mark.skipif(os.environ.get("FLOWMATCH_SIMD") or os.environ.get("FLOWMATCH_CORR_SIMD"),
                    reason="the SIMD level is capped by the environment")
@pytest.mark.skipif(not cpu_flags(), reason="no /proc/cpuinfo flags to compare with")
def test_dispatch_follows_cpu_flags():
    # vdpbf16ps only where the CPU reports avx512_bf16 (on the AMD Zen 3 this was written on: never).
    flags = cpu_flags()
    for dtype in (torch.float32, torch.bfloat16, torch.float16, torch.float64):
        f = torch.zeros(1, 2, 5, 5, dtype=dtype)
        assert torch.ops.flowmatch_testing.correlation_cpu_kernel(f, f, 1, 1, 1, 1, 1) == \
            expected_kernel(dtype, flags), dtype
        # stride1 = 2 runs the same kernel on the stride-1 grid; stride1 = 4 the per-element code
        assert torch.ops.flowmatch_testing.correlation_cpu_kernel(f, f, 1, 1, 1, 2, 1) == expected_kernel(dtype, flags)
        assert torch.ops.flowmatch_testing.correlation_cpu_kernel(f, f, 1, 1, 1, 4, 1) == "elementwise"


_CHILD = """
import torch, flowmatch.ops
from flowmatch.ops.correlation_reference import correlation_reference as ref
g = torch.Generator().manual_seed(0)
f1, f2 = torch.randn(2, 13, 9, 29, generator=g, dtype=torch.float64), torch.randn(2, 13, 9, 29, generator=g, dtype=torch.float64)
for dtype, u in ((torch.bfloat16, 2.0 ** -8), (torch.float16, 2.0 ** -11)):
    a, b = f1.to(dtype), f2.to(dtype)
    for args in [(4, 1, 4, 1, 2), (2, 3, 1, 2, 1)]:
        out = torch.ops.flowmatch.correlation(a, b, *args)
        s = ref(a.double().abs(), b.double().abs(), *args)
        err = (out.double() - ref(a.double(), b.double(), *args)).abs()
        assert out.dtype == dtype and bool((err <= u * s + 2.0 ** -20).all()), (dtype, args)
    print(dtype, torch.ops.flowmatch_testing.correlation_cpu_kernel(a, b, 4, 1, 4, 1, 2))
"""


# "avx2" is slow-marked: on CPUs without AVX-512 the "avx512" cap runs the same AVX2 kernels.
@pytest.mark.parametrize("cap", ["none", pytest.param("avx2", marks=pytest.mark.slow), "avx512"])
def test_capped_levels_run_and_never_pick_unavailable_kernels(cap):
    # FLOWMATCH_SIMD caps the level at load time, so each cap runs in its own interpreter.
    env = dict(os.environ, FLOWMATCH_SIMD=cap, OMP_NUM_THREADS="1")
    env.pop("FLOWMATCH_CORR_SIMD", None)
    proc = subprocess.run([sys.executable, "-c", _CHILD], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    names = dict(line.split() for line in proc.stdout.splitlines())
    flags = cpu_flags()
    if flags:
        assert names["torch.bfloat16"] == expected_kernel(torch.bfloat16, flags, cap)
        assert names["torch.float16"] == expected_kernel(torch.float16, flags, cap)
    assert "avx512bf16" not in names["torch.bfloat16"]  # a capped level never runs vdpbf16ps
