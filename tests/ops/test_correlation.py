"""flowmatch.ops.correlation: compiled op vs the pure-PyTorch reference, the reference vs the Caffe
formula, gradients (gradcheck, gradgradcheck), opcheck, torch.compile, bad input, layouts."""
from __future__ import annotations

import importlib
import os
import subprocess
import sys
import warnings

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import flowmatch.ops  # noqa: F401  (registers fake kernels and autograd)
from flowmatch.errors import InputError
from flowmatch.nn import Correlation, SpatialCorrelationSampler
from flowmatch.ops import correlation, spatial_correlation_sample
from flowmatch.ops.correlation_reference import correlation_banded_gemm, correlation_reference

from devices import over_devices

corr_mod = importlib.import_module("flowmatch.ops.correlation")
needs_ext = pytest.mark.skipif(not corr_mod.extension_available(), reason="flowmatch._C not built (make build)")


def caffe_formula(f1, f2, p, k, md, s1, s2):
    """The layer written out literally from the Caffe definition (loops over outputs; tiny inputs only)."""
    n, c, h, w = f1.shape
    p1, p2 = F.pad(f1, (p, p, p, p)), F.pad(f2, (p, p, p, p))
    r = md // s2
    d = 2 * r + 1
    oh = -(-(h + 2 * p - 2 * (md + k // 2)) // s1)  # ceil, as in Caffe
    ow = -(-(w + 2 * p - 2 * (md + k // 2)) // s1)
    out = torch.zeros(n, d * d, oh, ow, dtype=f1.dtype)
    for i in range(oh):
        for j in range(ow):
            y, x = i * s1 + md, j * s1 + md
            win1 = p1[:, :, y:y + k, x:x + k]
            for q in range(d):
                for o in range(d):
                    dy, dx = (q - r) * s2, (o - r) * s2
                    win2 = p2[:, :, y + dy:y + dy + k, x + dx:x + dx + k]
                    out[:, q * d + o, i, j] = (win1 * win2).sum(dim=(1, 2, 3)) / (k * k * c)
    return out


def random_maps(n, c, h, w, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, c, h, w, generator=g, dtype=dtype), torch.randn(n, c, h, w, generator=g, dtype=dtype))


@pytest.mark.parametrize("p,k,md,s1,s2", [(0, 1, 0, 1, 1), (2, 1, 2, 1, 1), (3, 3, 2, 1, 1), (4, 1, 4, 2, 2),
                                          (2, 3, 3, 2, 2), (5, 1, 3, 1, 3), (1, 3, 1, 3, 1)])
def test_reference_matches_caffe_formula(p, k, md, s1, s2):
    f1, f2 = random_maps(2, 3, 7, 9, seed=p + 10 * k)
    expect = caffe_formula(f1, f2, p, k, md, s1, s2)
    got = correlation_reference(f1, f2, p, k, md, s1, s2)
    assert got.shape == expect.shape
    torch.testing.assert_close(got, expect, rtol=1e-12, atol=1e-12)


def test_banded_gemm_baseline_matches_reference():
    f1, f2 = random_maps(2, 8, 10, 13)
    torch.testing.assert_close(correlation_banded_gemm(f1, f2, 4, 4, 2), correlation_reference(f1, f2, 4, 1, 4, 1, 2))


settings_st = st.tuples(
    st.integers(1, 2), st.integers(1, 19), st.integers(1, 11), st.integers(1, 37),  # N, C, H, W
    st.sampled_from([1, 3]), st.integers(0, 5), st.integers(1, 3), st.integers(1, 3), st.integers(0, 6))


def _valid(s):
    n, c, h, w, k, md, s1, s2, p = s
    return h + 2 * p - 2 * md - k >= 0 and w + 2 * p - 2 * md - k >= 0


def _check_against_reference(s, dtype, op, bwd_op, tol, device="cpu"):
    n, c, h, w, k, md, s1, s2, p = s
    args = (p, k, md, s1, s2)
    f1, f2 = random_maps(n, c, h, w, seed=sum(s))
    a = f1.clone().requires_grad_()
    b = f2.clone().requires_grad_()
    ref = correlation_reference(a, b, *args)
    g = torch.randn_like(ref)
    ga, gb = torch.autograd.grad(ref, (a, b), g)
    on = dict(dtype=dtype, device=device)
    out = op(f1.to(**on), f2.to(**on), *args)
    g1, g2 = bwd_op(g.to(**on), f1.to(**on), f2.to(**on), *args)
    assert out.dtype == dtype and out.shape == ref.shape and out.device.type == device
    torch.testing.assert_close(out.double().cpu(), ref.detach(), rtol=tol, atol=tol)
    torch.testing.assert_close(g1.double().cpu(), ga, rtol=tol, atol=tol)
    torch.testing.assert_close(g2.double().cpu(), gb, rtol=tol, atol=tol)


@needs_ext
@over_devices
@settings(max_examples=20)
@given(settings_st.filter(_valid))
def test_op_float32_matches_reference(device, s):
    # CPU: float32 with stride1 = 1 runs the SIMD kernels; stride1 > 1 the per-element path.
    _check_against_reference(s, torch.float32, torch.ops.flowmatch.correlation,
                             torch.ops.flowmatch.correlation_backward, 2e-5, device)


@needs_ext
@settings(max_examples=20)
@given(settings_st.filter(_valid))
def test_elementwise_path_float64_matches_reference(s):
    # The per-element functions of correlation.h (the CUDA backward kernel runs them too; the CUDA
    # kernels themselves are run on the CPU in test_cuda_emulated.py).  Test-only ops: own library.
    _check_against_reference(s, torch.float64, torch.ops.flowmatch_testing.correlation_elementwise,
                             torch.ops.flowmatch_testing.correlation_backward_elementwise, 1e-10)


@needs_ext
@over_devices
def test_flownetc_settings_match_reference(device):
    f1, f2 = random_maps(1, 32, 24, 30, dtype=torch.float32)
    out = correlation(f1.to(device), f2.to(device), pad_size=20, kernel_size=1, max_displacement=20, stride1=1,
                      stride2=2)
    assert out.shape == (1, 441, 24, 30) and out.device.type == device
    torch.testing.assert_close(out.cpu(), correlation_reference(f1, f2, 20, 1, 20, 1, 2), rtol=1e-5, atol=1e-6)


@needs_ext
def test_avx2_and_scalar_fallbacks_match_reference():
    # The SIMD level is fixed at load time, so each level runs in its own interpreter.
    code = ("import torch, flowmatch.ops\n"
            "from flowmatch.ops.correlation_reference import correlation_reference as ref\n"
            "g = torch.Generator().manual_seed(0)\n"
            "f1, f2 = torch.randn(2, 13, 9, 29, generator=g), torch.randn(2, 13, 9, 29, generator=g)\n"
            "for args in [(4, 1, 4, 1, 2), (2, 3, 1, 1, 1)]:\n"
            "    o = torch.ops.flowmatch.correlation(f1, f2, *args)\n"
            "    gr = torch.randn_like(o, generator=None)\n"
            "    a, b = f1.double().requires_grad_(), f2.double().requires_grad_()\n"
            "    r = ref(a, b, *args); ga, gb = torch.autograd.grad(r, (a, b), gr.double())\n"
            "    g1, g2 = torch.ops.flowmatch.correlation_backward(gr, f1, f2, *args)\n"
            "    for x, y in ((o, r), (g1, ga), (g2, gb)):\n"
            "        assert (x.double() - y).abs().max() < 1e-5, args\n"
            "print('ok')\n")
    for level in ("avx2", "none"):
        env = dict(os.environ, FLOWMATCH_CORR_SIMD=level, OMP_NUM_THREADS="1")
        proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0 and "ok" in proc.stdout, (level, proc.stderr[-2000:])


@needs_ext
@over_devices
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_accumulates_in_float32(dtype, device):
    # 512 channels of values ~1: a float16 running sum would lose ~3 digits; float32 accumulation keeps
    # the error at the output rounding.
    f1, f2 = random_maps(1, 512, 6, 8, dtype=torch.float32, seed=3)
    f1, f2 = (f1 + 1).to(dtype).to(device), (f2 + 1).to(dtype).to(device)
    out = correlation(f1, f2, pad_size=1, kernel_size=1, max_displacement=1)
    ref = correlation_reference(f1.double(), f2.double(), 1, 1, 1, 1, 1)
    assert out.dtype == dtype
    eps = torch.finfo(dtype).eps
    torch.testing.assert_close(out.double(), ref, rtol=2 * eps, atol=2 * eps)
    a, b = f1.clone().requires_grad_(), f2.clone().requires_grad_()
    correlation(a, b, pad_size=1, max_displacement=1).sum().backward()
    assert a.grad.dtype == dtype and torch.isfinite(a.grad.float()).all()


@needs_ext
@over_devices
@pytest.mark.parametrize("p,k,md,s1,s2", [(1, 1, 1, 1, 1), (1, 3, 1, 1, 1), (2, 1, 2, 2, 2)])
def test_gradcheck_and_gradgradcheck(p, k, md, s1, s2, device):
    f1, f2 = (t.to(device) for t in random_maps(1, 2, 4, 5, seed=k + s1))
    f1.requires_grad_()
    f2.requires_grad_()

    def fn(a, b):
        return correlation(a, b, p, k, md, s1, s2)

    assert torch.autograd.gradcheck(fn, (f1, f2), eps=1e-6, atol=1e-8)
    assert torch.autograd.gradgradcheck(fn, (f1, f2), eps=1e-6, atol=1e-8)


@needs_ext
def test_opcheck():
    f1, f2 = random_maps(1, 3, 6, 7, seed=5)
    args = (2, 1, 2, 1, 2)
    for a, b in ((f1, f2), (f1.float().requires_grad_(), f2.float().requires_grad_())):
        torch.library.opcheck(torch.ops.flowmatch.correlation.default, (a, b, *args))
    g = torch.randn(1, 9, 6, 7, dtype=torch.float64, requires_grad=True)
    torch.library.opcheck(torch.ops.flowmatch.correlation_backward.default,
                          (g, f1.clone().requires_grad_(), f2.clone().requires_grad_(), *args))
    # half precision and a channels-last input, kernel 3, stride1 2
    torch.library.opcheck(torch.ops.flowmatch.correlation.default, (f1.half(), f2.half(), *args))
    torch.library.opcheck(torch.ops.flowmatch.correlation.default,
                          (f1.float().to(memory_format=torch.channels_last), f2.float(), 2, 3, 2, 2, 1))


@needs_ext
def test_fake_tensor_shape():
    from torch._subclasses.fake_tensor import FakeTensorMode
    with FakeTensorMode():
        f = torch.empty(2, 8, 20, 30)
        out = correlation(f, f, pad_size=4, kernel_size=3, max_displacement=4, stride1=2, stride2=2)
    assert tuple(out.shape) == (2, 25, 9, 14)


@needs_ext
@pytest.mark.parametrize("backend", ["aot_eager", pytest.param("inductor", marks=pytest.mark.slow)])
def test_torch_compile_fullgraph_matches_eager(backend):
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
            self.corr = Correlation(pad_size=3, kernel_size=1, max_displacement=3, stride1=1, stride2=1)

        def forward(self, a, b):
            return torch.relu(self.corr(self.conv(a), self.conv(b))).mean(dim=1)

    torch.manual_seed(0)
    net = Net()
    a, b = torch.randn(2, 3, 12, 16), torch.randn(2, 3, 12, 16)
    compiled = torch.compile(net, fullgraph=True, backend=backend)
    torch.testing.assert_close(compiled(a, b), net(a, b))
    compiled(a, b).sum().backward()
    g_compiled = net.conv.weight.grad.clone()
    net.zero_grad()
    net(a, b).sum().backward()
    torch.testing.assert_close(g_compiled, net.conv.weight.grad, rtol=1e-4, atol=1e-6)


@needs_ext
def test_torch_export():
    mod = Correlation(pad_size=2, max_displacement=2)
    a, b = torch.randn(1, 4, 8, 8), torch.randn(1, 4, 8, 8)
    ep = torch.export.export(mod, (a, b))
    torch.testing.assert_close(ep.module()(a, b), mod(a, b))


@needs_ext
def test_non_contiguous_and_channels_last_inputs():
    f1, f2 = random_maps(2, 5, 9, 11, dtype=torch.float32)
    ref = correlation_reference(f1, f2, 2, 1, 2, 1, 1)
    cl1, cl2 = f1.to(memory_format=torch.channels_last), f2.to(memory_format=torch.channels_last)
    torch.testing.assert_close(correlation(cl1, cl2, 2, 1, 2, 1, 1), ref, rtol=1e-5, atol=1e-6)
    t1 = f1.transpose(2, 3).contiguous().transpose(2, 3)  # same values, transposed strides
    t2 = f2[:, :, :, :].transpose(2, 3).contiguous().transpose(2, 3)
    torch.testing.assert_close(correlation(t1, t2, 2, 1, 2, 1, 1), ref, rtol=1e-5, atol=1e-6)
    big = torch.randn(2, 10, 9, 22)
    sl1, sl2 = big[:, ::2, :, ::2], big[:, 1::2, :, 1::2]  # strided views
    torch.testing.assert_close(correlation(sl1, sl2, 2, 1, 2, 1, 1),
                               correlation_reference(sl1.contiguous(), sl2.contiguous(), 2, 1, 2, 1, 1),
                               rtol=1e-5, atol=1e-6)
    # An expanded (stride 0) gradient, as sum().backward() produces.
    a = cl1.clone().requires_grad_()
    correlation(a, f2, 2, 1, 2, 1, 1).sum().backward()
    b = f1.clone().double().requires_grad_()
    correlation_reference(b, f2.double(), 2, 1, 2, 1, 1).sum().backward()
    torch.testing.assert_close(a.grad.double(), b.grad, rtol=1e-5, atol=1e-5)


BAD_INPUTS = [
    ("shape", lambda: (torch.zeros(1, 2, 5, 5), torch.zeros(1, 2, 5, 6)), {}),
    ("batch", lambda: (torch.zeros(1, 2, 5, 5), torch.zeros(2, 2, 5, 5)), {}),
    ("3d", lambda: (torch.zeros(2, 5, 5), torch.zeros(2, 5, 5)), {}),
    ("dtype-mix", lambda: (torch.zeros(1, 2, 5, 5), torch.zeros(1, 2, 5, 5, dtype=torch.float64)), {}),
    ("int", lambda: (torch.zeros(1, 2, 5, 5, dtype=torch.int32),) * 2, {}),
    ("even-k", lambda: (torch.zeros(1, 2, 5, 5),) * 2, dict(kernel_size=2)),
    ("neg-pad", lambda: (torch.zeros(1, 2, 5, 5),) * 2, dict(pad_size=-1)),
    ("neg-md", lambda: (torch.zeros(1, 2, 5, 5),) * 2, dict(max_displacement=-2)),
    ("zero-s1", lambda: (torch.zeros(1, 2, 5, 5),) * 2, dict(stride1=0)),
    ("zero-s2", lambda: (torch.zeros(1, 2, 5, 5),) * 2, dict(stride2=0)),
    ("empty-out", lambda: (torch.zeros(1, 2, 5, 5),) * 2, dict(max_displacement=4, pad_size=0)),
    ("empty-batch", lambda: (torch.zeros(0, 2, 5, 5),) * 2, {}),
]


@pytest.mark.parametrize("name,make,kw", BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_bad_input_raises_input_error(name, make, kw):
    f1, f2 = make()
    params = dict(pad_size=1, kernel_size=1, max_displacement=1, stride1=1, stride2=1)
    params.update(kw)
    with pytest.raises(InputError):
        correlation(f1, f2, **params)


@needs_ext
@pytest.mark.parametrize("name,make,kw", BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_bad_input_direct_op_raises(name, make, kw):
    # Direct torch.ops calls skip the Python checks: the C++ TORCH_CHECKs must raise, not abort.
    f1, f2 = make()
    params = dict(pad_size=1, kernel_size=1, max_displacement=1, stride1=1, stride2=1)
    params.update(kw)
    args = tuple(params[k] for k in ("pad_size", "kernel_size", "max_displacement", "stride1", "stride2"))
    with pytest.raises(RuntimeError):
        torch.ops.flowmatch.correlation(f1, f2, *args)
    with pytest.raises(RuntimeError):
        torch.ops.flowmatch.correlation_backward(torch.zeros(1, 9, 5, 5), f1, f2, *args)


@needs_ext
def test_backward_rejects_wrong_grad_shape():
    f = torch.zeros(1, 2, 5, 5)
    with pytest.raises(RuntimeError, match="grad_output"):
        torch.ops.flowmatch.correlation_backward(torch.zeros(1, 8, 5, 5), f, f, 1, 1, 1, 1, 1)


def test_bad_parameter_types_and_backend():
    f = torch.zeros(1, 2, 5, 5)
    with pytest.raises(InputError, match="pad_size"):
        correlation(f, f, pad_size=1.5)
    with pytest.raises(InputError, match="backend"):
        correlation(f, f, backend="tpu")
    with pytest.raises(InputError, match="f2"):
        correlation(f, f.numpy())


def scs_formula(f1, f2, k, patch, stride, padding, dil_patch):
    """spatial-correlation-sampler's definition written out (dilation 1): un-normalised sums."""
    n, c, h, w = f1.shape
    p1, p2 = F.pad(f1, (padding,) * 4), F.pad(f2, (padding,) * 4)
    oh = (h + 2 * padding - k) // stride + 1
    ow = (w + 2 * padding - k) // stride + 1
    out = torch.zeros(n, patch, patch, oh, ow, dtype=f1.dtype)
    rad = patch // 2
    for u in range(patch):
        for v in range(patch):
            dy, dx = (u - rad) * dil_patch, (v - rad) * dil_patch
            for i in range(oh):
                for j in range(ow):
                    y, x = i * stride, j * stride
                    win1 = p1[:, :, y:y + k, x:x + k]
                    ys, xs = y + dy, x + dx
                    win2 = torch.zeros_like(win1)
                    for a in range(k):
                        for b in range(k):
                            if 0 <= ys + a < p2.shape[2] and 0 <= xs + b < p2.shape[3]:
                                win2[:, :, a, b] = p2[:, :, ys + a, xs + b]
                    out[:, u, v, i, j] = (win1 * win2).sum(dim=(1, 2, 3))
    return out


@pytest.mark.parametrize("k,patch,stride,padding,dil_patch", [(1, 3, 1, 0, 1), (1, 5, 1, 1, 2), (3, 3, 2, 1, 1),
                                                             (1, 7, 2, 0, 1)])
def test_spatial_correlation_sampler_layout(k, patch, stride, padding, dil_patch):
    f1, f2 = random_maps(1, 3, 7, 8, seed=patch)
    expect = scs_formula(f1, f2, k, patch, stride, padding, dil_patch)
    for backend in ("reference",) + (("extension",) if corr_mod.extension_available() else ()):
        got = spatial_correlation_sample(f1, f2, kernel_size=k, patch_size=patch, stride=stride, padding=padding,
                                         dilation_patch=dil_patch, backend=backend)
        torch.testing.assert_close(got, expect, rtol=1e-10, atol=1e-10)
    mod = SpatialCorrelationSampler(k, patch, stride, padding, 1, dil_patch)
    torch.testing.assert_close(mod(f1, f2), expect, rtol=1e-10, atol=1e-10)


def test_spatial_correlation_sampler_rejects_unsupported():
    f = torch.zeros(1, 2, 6, 6)
    with pytest.raises(InputError, match="patch_size"):
        spatial_correlation_sample(f, f, patch_size=4)
    with pytest.raises(InputError, match="dilation"):
        spatial_correlation_sample(f, f, patch_size=3, dilation=2)


def test_module_and_fallback_warning(monkeypatch):
    f1, f2 = random_maps(1, 4, 6, 7, dtype=torch.float32)
    mod = Correlation(pad_size=2, kernel_size=1, max_displacement=2, stride1=1, stride2=2)
    assert "max_displacement=2" in repr(mod)
    ref = correlation_reference(f1, f2, 2, 1, 2, 1, 2)
    torch.testing.assert_close(mod(f1, f2), ref, rtol=1e-5, atol=1e-6)
    monkeypatch.setattr(corr_mod, "extension_available", lambda: False)
    monkeypatch.setattr(corr_mod, "_warned", set())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out1 = mod(f1, f2)
        out2 = mod(f1, f2)
    msgs = [str(w.message) for w in caught if "pure-PyTorch reference" in str(w.message)]
    assert len(msgs) == 1  # said once
    torch.testing.assert_close(out1, ref)
    torch.testing.assert_close(out2, ref)


@needs_ext
def test_cpp_and_python_output_size_formulas_agree():
    # correlation.h's corr_out_size (the op's output) and correlation_shape.py (the fake kernel,
    # reference, cupy backend) are the two copies of the formula, one per language.
    from flowmatch.ops.correlation_shape import correlation_output_shape
    f = torch.zeros(2, 3, 11, 14)
    for p, k, md, s1, s2 in [(0, 1, 0, 1, 1), (3, 3, 2, 2, 1), (4, 1, 4, 3, 2), (5, 3, 6, 2, 4), (1, 1, 1, 1, 3)]:
        if 11 + 2 * p - 2 * md - k < 0:
            continue
        assert tuple(torch.ops.flowmatch.correlation(f, f, p, k, md, s1, s2).shape) == \
            correlation_output_shape(f.shape, p, k, md, s1, s2)


@needs_ext
def test_backward_computes_only_the_requested_gradients():
    f1, f2 = random_maps(1, 3, 6, 7, seed=2)
    args = (2, 1, 2, 1, 1)
    g = torch.randn(1, 25, 6, 7, dtype=torch.float64)
    full1, full2 = torch.ops.flowmatch.correlation_backward(g, f1, f2, *args)
    only1, none2 = torch.ops.flowmatch.correlation_backward(g, f1, f2, *args, [True, False])
    none1, only2 = torch.ops.flowmatch.correlation_backward(g, f1, f2, *args, [False, True])
    assert none1.numel() == 0 and none2.numel() == 0
    torch.testing.assert_close(only1, full1, rtol=0, atol=0)
    torch.testing.assert_close(only2, full2, rtol=0, atol=0)
    # autograd asks for f1's gradient only when f2 does not require one
    a = f1.clone().requires_grad_()
    correlation(a, f2, *args).backward(g)
    torch.testing.assert_close(a.grad, full1)
    b = f2.clone().requires_grad_()
    correlation(f1, b, *args).backward(g)
    torch.testing.assert_close(b.grad, full2)
