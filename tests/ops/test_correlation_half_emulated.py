"""The CUDA correlation kernels' half-precision path (at::Half / at::BFloat16, float accumulation:
correlation_kernels.cuh, as cuda/correlation_kernel.cu instantiates them) run on the CPU through the
CUDA emulation layer (tests/ops/emulated.py), against the float64 reference with the tolerances of
test_correlation_half.py: u·|ref| + accumulation against the reference of the rounded inputs, 3u·S
against the unrounded float64 inputs."""
from __future__ import annotations

import pytest
import torch

from flowmatch.ops.correlation_reference import correlation_reference

from emulated import load
from test_correlation_half import HALF, SHAPES, UNIT, assert_within, check_forward, maps

pytestmark = pytest.mark.cuda_emulated

# the emulated kernels run every GPU thread as a fiber: the smaller shapes only
EMULATED = [s for s in SHAPES if s[1] * s[2] * s[3] <= 1100]


@pytest.fixture(scope="module")
def emu():
    return load()


@pytest.mark.parametrize("dtype", HALF, ids=["bf16", "fp16"])
@pytest.mark.parametrize("shape", EMULATED, ids=["x".join(map(str, s)) for s in EMULATED])
def test_emulated_cuda_half_path_matches_float64_reference(emu, shape, dtype):
    n, c, h, w, *args = shape
    f1, f2 = maps(n, c, h, w, seed=sum(shape) + 5)
    a, b = f1.to(dtype), f2.to(dtype)
    out = emu.correlation(a, b, *args)
    check_forward(out, f1, f2, args, dtype, "emulated CUDA forward")
    g = torch.randn(out.shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64).to(dtype)
    g1, g2 = emu.correlation_backward(g, a, b, *args)
    assert g1.dtype == dtype and g2.dtype == dtype
    r1, r2 = a.double().requires_grad_(), b.double().requires_grad_()
    ra, rb = torch.autograd.grad(correlation_reference(r1, r2, *args), (r1, r2), g.double())
    p1, p2 = a.double().abs().requires_grad_(), b.double().abs().requires_grad_()
    sa, sb = torch.autograd.grad(correlation_reference(p1, p2, *args), (p1, p2), g.double().abs())
    u, d = UNIT[dtype], out.shape[1]
    for got, want, s, name in ((g1, ra, sa, "grad_f1"), (g2, rb, sb, "grad_f2")):
        assert_within(got, want, u * want.abs() + args[1] ** 2 * d * 2.0 ** -24 * s + 2.0 ** -24,
                      "emulated CUDA " + name)
