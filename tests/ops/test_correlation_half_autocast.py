"""Autocast of the correlation op (flowmatch/ops/correlation_registration.py), FlowNetC under CPU
autocast, and torch.compile / opcheck with half-precision inputs.  Tolerances as in
test_correlation_half.py (u = 2^-8 for bfloat16, 2^-11 for float16; S = Σ|a||b| / (k²·C))."""
from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import flowmatch.ops  # noqa: F401
from flowmatch.nn import Correlation
from flowmatch.ops import correlation
from flowmatch.ops.correlation import extension_available
from flowmatch.ops.correlation_reference import correlation_reference

pytestmark = pytest.mark.skipif(not extension_available(), reason="flowmatch._C not built (make build)")

UNIT = {torch.bfloat16: 2.0 ** -8, torch.float16: 2.0 ** -11}
ARGS = (3, 1, 3, 1, 2)  # pad, k, md, s1, s2


def maps(shape=(2, 7, 9, 13), seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g, dtype=dtype), torch.randn(shape, generator=g, dtype=dtype)


class CorrelationCalls(TorchDispatchMode):
    """Records the input and output dtypes of every flowmatch::correlation call below autocast."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func is torch.ops.flowmatch.correlation.default:
            self.calls.append((args[0].dtype, args[1].dtype, out.dtype))
        return out


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
def test_autocast_casts_both_maps_and_runs_the_half_kernel(dtype):
    f1, f2 = maps()
    with torch.autocast("cpu", dtype=dtype):
        out = correlation(f1, f2, *ARGS)
    assert out.dtype == dtype
    # the value: the half kernel on the cast maps, bit for bit, and within 3u·S of float64
    assert torch.equal(out, correlation(f1.to(dtype), f2.to(dtype), *ARGS))
    s = correlation_reference(f1.double().abs(), f2.double().abs(), *ARGS)
    err = (out.double() - correlation_reference(f1.double(), f2.double(), *ARGS)).abs()
    assert bool((err <= 3 * UNIT[dtype] * s + 2.0 ** -20).all())
    # one map already in half precision, the other float32: both end up in the autocast dtype
    with torch.autocast("cpu", dtype=dtype):
        mixed = torch.ops.flowmatch.correlation(f1.half(), f2, *ARGS)
    assert mixed.dtype == dtype


def test_autocast_leaves_float64_and_disabled_regions_alone():
    f1, f2 = maps(dtype=torch.float64)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out64 = correlation(f1, f2, *ARGS)
        with torch.autocast("cpu", enabled=False):
            out32 = correlation(f1.float(), f2.float(), *ARGS)
    assert out64.dtype == torch.float64 and out32.dtype == torch.float32
    torch.testing.assert_close(out64, correlation_reference(f1, f2, *ARGS), rtol=1e-12, atol=1e-12)
    assert correlation(f1.float(), f2.float(), *ARGS).dtype == torch.float32  # outside: no cast


def test_autocast_backward_reaches_float32_leaves():
    f1, f2 = maps(seed=1)
    a, b = f1.clone().requires_grad_(), f2.clone().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = correlation(a, b, *ARGS)
    g = torch.randn(out.shape, generator=torch.Generator().manual_seed(2)).bfloat16()
    out.backward(g)
    assert a.grad.dtype == torch.float32 and b.grad.dtype == torch.float32
    # the bf16 backward of the cast maps, then cast to the leaves' float32
    ga, gb = torch.ops.flowmatch.correlation_backward(g, f1.bfloat16(), f2.bfloat16(), *ARGS)
    assert torch.equal(a.grad, ga.float()) and torch.equal(b.grad, gb.float())


def test_flownetc_under_cpu_autocast_is_bf16_end_to_end():
    from flowmatch.models.flownet import FlowNetC

    torch.manual_seed(0)
    net = FlowNetC(width=0.125).eval()
    img1, img2 = torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        want = net(img1, img2)[0]
        with torch.autocast("cpu", dtype=torch.bfloat16), CorrelationCalls() as calls:
            got = net(img1, img2)[0]
    assert calls.calls == [(torch.bfloat16, torch.bfloat16, torch.bfloat16)]
    assert got.dtype == torch.bfloat16 and got.shape == want.shape
    # random weights: a loose agreement check that the bf16 network computes the same function
    rel = (got.float() - want).abs().max() / want.abs().max()
    assert float(rel) < 0.1, float(rel)


def test_torch_compile_under_autocast_matches_eager():
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
            self.corr = Correlation(pad_size=3, kernel_size=1, max_displacement=3, stride1=1, stride2=1)

        def forward(self, a, b):
            return self.corr(self.conv(a), self.conv(b))

    torch.manual_seed(0)
    net = Net()
    a, b = torch.randn(2, 3, 12, 16), torch.randn(2, 3, 12, 16)
    compiled = torch.compile(net, fullgraph=True, backend="aot_eager")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        want, got = net(a, b), compiled(a, b)
    assert got.dtype == want.dtype == torch.bfloat16
    torch.testing.assert_close(got, want)


def test_opcheck_half_inputs():
    f1, f2 = maps((1, 3, 6, 7), seed=5)
    a, b = f1.bfloat16().requires_grad_(), f2.bfloat16().requires_grad_()
    torch.library.opcheck(torch.ops.flowmatch.correlation.default, (a, b, 2, 1, 2, 1, 2))
    torch.library.opcheck(torch.ops.flowmatch.correlation.default, (a, b, 2, 3, 2, 2, 1))  # subsampled, k = 3
    g = torch.randn(1, 9, 6, 7).bfloat16()
    torch.library.opcheck(torch.ops.flowmatch.correlation_backward.default, (g, a, b, 2, 1, 2, 1, 2))
    torch.library.opcheck(torch.ops.flowmatch.correlation.default, (f1.half(), f2.half(), 2, 1, 2, 1, 2))
