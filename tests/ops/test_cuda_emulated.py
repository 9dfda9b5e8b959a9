"""The project's CUDA kernels, executed on the CPU: the literal kernel source (the .cuh headers the .cu
files include) compiled by g++ against csrc/cuda_emulation/cuda_host.h, every block run with its
blockDim threads as fibers, __syncthreads as a real barrier and shared memory private per block.
Compared with the independent references: correlation_reference (pad + shift + multiply) and a
numpy model of the GPU PatchMatch schedule (tests/ops/patchmatch_gpu_model.py)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from flowmatch import _ext
from flowmatch.ops.correlation_reference import correlation_reference
from flowmatch.ops.patchmatch import patchmatch, patchmatch_bruteforce

from emulated import load
from patchmatch_gpu_model import GpuPatchMatchModel

pytestmark = pytest.mark.cuda_emulated


@pytest.fixture(scope="module")
def emu():
    return load()


def maps(n, c, h, w, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, c, h, w, generator=g, dtype=torch.float64).to(dtype),
            torch.randn(n, c, h, w, generator=g, dtype=torch.float64).to(dtype))


def reference_with_grads(f1, f2, args, seed=1):
    a, b = f1.double().requires_grad_(), f2.double().requires_grad_()
    ref = correlation_reference(a, b, *args)
    g = torch.randn(ref.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    ga, gb = torch.autograd.grad(ref, (a, b), g)
    return ref.detach(), g, ga, gb


# ---- the layer itself ------------------------------------------------------------------------------

@pytest.mark.parametrize("block,n", [(32, 32), (64, 1000), (256, 777), (1024, 2048)])
def test_layer_shared_memory_barriers_shuffles_ballot_atomics(emu, block, n):
    x = torch.randn(n, generator=torch.Generator().manual_seed(block))
    sums, total, ballots, shuffled = emu.warp_selftest(x, block)
    blocks = -(-n // block)
    xp = np.zeros(blocks * block, np.float32)
    xp[:n] = x.numpy()
    np.testing.assert_allclose(sums.numpy(), xp.reshape(blocks, block).sum(1), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(total.item(), xp.sum(), rtol=1e-4, atol=1e-3)
    warps = xp.reshape(-1, 32)
    expect_ballot = ((warps > 0) * (1 << np.arange(32, dtype=np.int64))).sum(1)
    np.testing.assert_array_equal(ballots.numpy(), expect_ballot)
    lane = np.arange(32)
    down = np.where(lane + 1 < 32, warps[:, np.minimum(lane + 1, 31)], warps)
    up = np.where(lane - 2 >= 0, warps[:, np.maximum(lane - 2, 0)], warps)
    xor = warps[:, lane ^ 5]
    for got, want in zip(shuffled.numpy(), (down, up, xor)):
        np.testing.assert_array_equal(got, want.ravel()[:n])


# ---- correlation -----------------------------------------------------------------------------------

# (N, C, H, W, pad, k, md, s1, s2): tile boundaries (TW = 32 columns when D is small, so oW = 31, 32,
# 33, 65), channel chunks (CC = 32: C = 31, 32, 33, 70), odd sizes, batch > 1, k > 1, strides > 1,
# FlowNetC's large displacement (md = 20, s2 = 2) and md = 10 with stride2 = 1 (D = 21).
SHAPES = [
    (1, 3, 5, 31, 1, 1, 1, 1, 1),
    (2, 33, 4, 32, 2, 1, 2, 1, 1),
    (1, 70, 3, 33, 1, 3, 1, 1, 1),
    (3, 5, 9, 65, 3, 1, 3, 1, 1),
    (2, 31, 7, 13, 4, 3, 4, 2, 2),
    (1, 8, 11, 40, 20, 1, 20, 1, 2),
    (1, 4, 6, 23, 10, 1, 10, 1, 1),
    (2, 3, 8, 17, 0, 1, 2, 3, 1),
    (1, 2, 1, 1, 2, 1, 2, 1, 1),
]


@pytest.mark.parametrize("shape", SHAPES, ids=[str(s) for s in SHAPES])
def test_emulated_correlation_forward_and_backward_float64(emu, shape):
    n, c, h, w, *args = shape
    f1, f2 = maps(n, c, h, w, seed=sum(shape))
    ref, g, ga, gb = reference_with_grads(f1, f2, args)
    out = emu.correlation(f1, f2, *args)
    assert out.shape == ref.shape
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    g1, g2 = emu.correlation_backward(g, f1, f2, *args)
    torch.testing.assert_close(g1, ga, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(g2, gb, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 2e-6), (torch.float16, 2 * 2 ** -10),
                                       (torch.bfloat16, 2 * 2 ** -7), (torch.float64, 1e-12)])
def test_emulated_correlation_dtypes_accumulate_wide(emu, dtype, tol):
    # 300 channels of values ~1: a running sum in the stored half type would be off by far more than
    # the output rounding; the kernels accumulate in float (double for float64).
    f1, f2 = maps(2, 300, 5, 9, seed=3)
    f1, f2 = (f1 + 1).to(dtype), (f2 + 1).to(dtype)
    args = (2, 1, 2, 1, 1)
    ref, g, ga, gb = reference_with_grads(f1, f2, args)
    out = emu.correlation(f1, f2, *args)
    assert out.dtype == dtype
    torch.testing.assert_close(out.double(), ref, rtol=tol, atol=tol)
    g1, g2 = emu.correlation_backward(g.to(dtype), f1, f2, *args)
    assert g1.dtype == dtype
    # the gradient reads the rounded grad_output: compare with the reference at that gradient
    _, _, ga_r, gb_r = reference_with_grads(f1, f2, args)
    a, b = f1.double().requires_grad_(), f2.double().requires_grad_()
    ga_r, gb_r = torch.autograd.grad(correlation_reference(a, b, *args), (a, b), g.to(dtype).double())
    scale = max(1.0, float(ga_r.abs().max()))
    torch.testing.assert_close(g1.double(), ga_r, rtol=tol, atol=tol * scale)
    torch.testing.assert_close(g2.double(), gb_r, rtol=tol, atol=tol * scale)


@pytest.mark.skipif(not _ext.available(), reason="flowmatch._C not built")
def test_emulated_correlation_splits_many_displacements(emu):
    # D = 2·600 + 1 = 1201 > 1024 outputs per block: the horizontal displacements are split over
    # several blocks (nochunk = 2) and TW falls to 1.
    # Compared with the CPU per-element path (itself checked against the reference in
    # test_correlation.py): the reference's Python loop over 1201² planes would take a minute.
    f1, f2 = maps(1, 2, 1, 3, seed=7)
    args = (600, 1, 600, 1, 1)
    out = emu.correlation(f1, f2, *args)
    torch.testing.assert_close(out, torch.ops.flowmatch_testing.correlation_elementwise(f1, f2, *args),
                               rtol=1e-12, atol=1e-12)
    assert int((out != 0).sum()) == 9  # 3 output columns × the 3 shifts that stay inside the 1×3 map


@settings(max_examples=12, deadline=None)
@given(st.tuples(st.integers(1, 2), st.integers(1, 40), st.integers(1, 9), st.integers(1, 41),
                 st.sampled_from([1, 3]), st.integers(0, 5), st.integers(1, 3), st.integers(1, 3),
                 st.integers(0, 6)).filter(lambda s: s[2] + 2 * s[8] - 2 * s[5] - s[4] >= 0
                                                     and s[3] + 2 * s[8] - 2 * s[5] - s[4] >= 0))
def test_emulated_correlation_random_shapes(emu, s):
    n, c, h, w, k, md, s1, s2, p = s
    args = (p, k, md, s1, s2)
    f1, f2 = maps(n, c, h, w, seed=sum(s))
    ref, g, ga, gb = reference_with_grads(f1, f2, args)
    torch.testing.assert_close(emu.correlation(f1, f2, *args), ref, rtol=1e-12, atol=1e-12)
    g1, g2 = emu.correlation_backward(g, f1, f2, *args)
    torch.testing.assert_close(g1, ga, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(g2, gb, rtol=1e-12, atol=1e-12)


# ---- PatchMatch ------------------------------------------------------------------------------------

def integer_field(H, W, D, seed, dtype=torch.float32):
    """Integer-valued descriptors (exact costs in any summation order); A ≈ B shifted."""
    g = torch.Generator().manual_seed(seed)
    b = torch.randint(-4, 5, (H, W, D), generator=g).float()
    a = torch.roll(b, shifts=(1, -2), dims=(0, 1)) + torch.randint(-1, 2, (H, W, D), generator=g).float()
    return a.to(dtype), b.to(dtype)


PM_CASES = [  # H, W, D, iterations, radius, window, seed, dtype
    (24, 40, 16, 3, 8, 6, 0, torch.float32),
    (7, 5, 3, 2, 4, 10, 1, torch.float32),   # tiny: first step 4, windows larger than the image
    (1, 37, 70, 2, 5, 3, 2, torch.float32),  # one row; D = 70 > 64 exercises the chunked early exit
    (33, 9, 8, 4, 16, 2, 3, torch.float16),
    (300, 2, 4, 1, 0, 1, 4, torch.float32),  # several blocks of 256 threads, radius 0 = no search
]


@pytest.mark.parametrize("case", PM_CASES, ids=[str(c[:7]) for c in PM_CASES])
def test_emulated_patchmatch_equals_model_of_gpu_schedule(emu, case):
    H, W, D, iters, radius, window, seed, dtype = case
    a, b = integer_field(H, W, D, seed, dtype)
    flow, cost = emu.patchmatch(a, b, iters, radius, window, seed, False)
    mflow, mcost = GpuPatchMatchModel(a.float().numpy(), b.float().numpy(), seed).run(iters, radius, window)
    np.testing.assert_array_equal(flow.numpy(), mflow)
    np.testing.assert_array_equal(cost.numpy(), mcost)


def test_emulated_patchmatch_subpixel_and_guess_equal_model(emu):
    a, b = integer_field(20, 26, 12, 5)
    guess = torch.randint(-3, 4, (20, 26, 2), generator=torch.Generator().manual_seed(9), dtype=torch.int32)
    flow, cost = emu.patchmatch(a, b, 2, 4, 2, 11, True, guess)
    mflow, mcost = GpuPatchMatchModel(a.numpy(), b.numpy(), 11).run(2, 4, 2, subpixel=True, guess=guess.numpy())
    np.testing.assert_array_equal(cost.numpy(), mcost)
    np.testing.assert_array_equal(flow.numpy(), mflow)


@pytest.mark.skipif(not _ext.available(), reason="flowmatch._C not built")
def test_emulated_patchmatch_and_cpu_op_share_stages(emu):
    a, b = integer_field(16, 21, 8, 6)
    # Zero guess, window 0, radius 0: neither schedule can move a match (every candidate is the
    # current one), so the shared init and finish stages (cost, sub-pixel parabola) decide the output.
    guess = torch.zeros(16, 21, 2)
    f_cpu, c_cpu = patchmatch(a, b, iterations=1, radius=0, window=0, seed=0, init=guess, subpixel=True)
    f_gpu, c_gpu = emu.patchmatch(a, b, 1, 0, 0, 0, True, guess.to(torch.int32).contiguous())
    assert torch.equal(c_cpu, c_gpu) and torch.equal(f_cpu, f_gpu)
    assert not torch.equal(f_cpu, f_cpu.round())  # the sub-pixel stage did something
    # a random start from the same hash stream, then enough iterations: both reach the brute-force minimum
    a, b = integer_field(24, 30, 16, 7)
    f_cpu, c_cpu = patchmatch(a, b, iterations=8, radius=16, window=30, seed=3)
    f_gpu, c_gpu = emu.patchmatch(a, b, 8, 16, 30, 3, False)
    _, c_bf = patchmatch_bruteforce(a, b)
    assert (c_cpu == c_bf).float().mean() > 0.97 and (c_gpu == c_bf).float().mean() > 0.97
    assert bool((c_gpu >= c_bf).all())


# ---- AddressSanitizer -------------------------------------------------------------------------------

@pytest.mark.slow
def test_emulated_kernels_under_address_sanitizer(tmp_path):
    # The same tests against an -fsanitize=address build: global reads/writes outside the tensors and
    # shared-memory accesses past the launch's smem_bytes (poisoned by cuda_host.h) abort with a
    # report.  ~2 min on 2 cores (build ~40 s).
    import os
    import shutil
    import subprocess
    import sys
    gcc = shutil.which("gcc") or shutil.which("cc")
    libasan = subprocess.run([gcc, "-print-file-name=libasan.so"], capture_output=True, text=True).stdout.strip() \
        if gcc else ""
    if not libasan or not os.path.isabs(libasan):
        pytest.skip("libasan not found")
    log = tmp_path / "asan"
    env = dict(os.environ, FLOWMATCH_EMULATED_ASAN="1", LD_PRELOAD=libasan,
               ASAN_OPTIONS=f"detect_leaks=0:log_path={log}")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:faulthandler",
                           "-m", "cuda_emulated and not slow", __file__], env=env, capture_output=True, text=True,
                          timeout=900)
    reports = "".join(p.read_text() for p in tmp_path.glob("asan*"))
    assert proc.returncode == 0 and not reports, (proc.stdout[-3000:], reports[:6000])
