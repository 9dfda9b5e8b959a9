"""flowmatch.ops.local_correlation: compiled op and pure-PyTorch formulation vs an independent
all-pairs reference written from RAFT's CorrBlock (volume, pooled pyramid, grid_sample), gradients
(gradcheck, gradgradcheck, vs the reference's autograd), opcheck, torch.compile, torch.export,
the scalar fallback, bad input."""
from __future__ import annotations

import importlib
import math
import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

import flowmatch.ops  # noqa: F401  (registers fake kernels and autograd)
from flowmatch.errors import InputError
from flowmatch.ops import feature_pyramid, local_correlation
from flowmatch.ops.local_correlation_torch import local_correlation_torch
from peer_semantics import raft_reference

lc_mod = importlib.import_module("flowmatch.ops.local_correlation")
needs_ext = pytest.mark.skipif(not lc_mod.extension_available(), reason="flowmatch._C not built (make build)")
FP32 = dict(rtol=1e-5, atol=2e-5)  # the stated float32 tolerance (outputs are O(1): features ~N(0, 1), 1/√C)


def make_inputs(n, c, h, w, h2, w2, margin=3.0, dtype=torch.float64, seed=0):
    """Features ~N(0, 1); coords uniform over the image ± margin px, with some integer positions and
    the exact borders mixed in."""
    g = torch.Generator().manual_seed(seed)
    f1 = torch.randn(n, c, h, w, generator=g, dtype=dtype)
    f2 = torch.randn(n, c, h2, w2, generator=g, dtype=dtype)
    u = torch.rand(n, 2, h, w, generator=g, dtype=torch.float64)
    size = torch.tensor([w2 - 1.0, h2 - 1.0], dtype=torch.float64).view(1, 2, 1, 1)
    coords = u * (size + 2 * margin) - margin
    pick = torch.rand(n, 1, h, w, generator=g) < 0.2
    coords = torch.where(pick, coords.round(), coords)
    coords[0, :, 0, 0] = 0.0
    coords[-1, 0, -1, -1], coords[-1, 1, -1, -1] = w2 - 1.0, h2 - 1.0
    return f1, f2, coords.to(dtype)


SHAPES = [  # n, c, h, w, h2, w2, r
    (1, 1, 1, 1, 2, 2, 0), (2, 3, 5, 7, 5, 7, 1), (1, 8, 6, 4, 9, 11, 2), (2, 16, 4, 5, 3, 3, 3),
    (1, 33, 3, 9, 7, 5, 4), (3, 7, 2, 3, 12, 2, 2), (1, 130, 3, 3, 6, 6, 1), (1, 4, 4, 4, 4, 4, 6),
]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("margin", [0.0, 4.0, 30.0])
def test_float64_matches_allpairs_reference(shape, margin):
    n, c, h, w, h2, w2, r = shape
    f1, f2, coords = make_inputs(n, c, h, w, h2, w2, margin=margin, seed=sum(shape))
    expect = raft_reference(f1, f2, coords, r)
    for backend in (("auto", "reference") if lc_mod.extension_available() else ("reference",)):
        got = local_correlation(f1, f2, coords, r, backend=backend)
        assert got.shape == (n, (2 * r + 1) ** 2, h, w) and got.dtype == torch.float64
        torch.testing.assert_close(got, expect, rtol=0, atol=1e-10)


@needs_ext
@pytest.mark.parametrize("shape", SHAPES)
def test_float32_matches_allpairs_reference(shape):
    n, c, h, w, h2, w2, r = shape
    f1, f2, coords = make_inputs(n, c, h, w, h2, w2, seed=7 + sum(shape))
    expect = raft_reference(f1, f2, coords, r).float()
    got = local_correlation(f1.float(), f2.float(), coords.float(), r)
    torch.testing.assert_close(got, expect, **FP32)


@needs_ext
@given(n=st.integers(1, 2), c=st.integers(1, 40), h=st.integers(1, 6), w=st.integers(1, 6),
       h2=st.integers(2, 9), w2=st.integers(2, 9), r=st.integers(0, 4), margin=st.floats(0, 12),
       seed=st.integers(0, 10**6))
def test_random_shapes_match_reference(n, c, h, w, h2, w2, r, margin, seed):
    f1, f2, coords = make_inputs(n, c, h, w, h2, w2, margin=margin, seed=seed)
    torch.testing.assert_close(local_correlation(f1, f2, coords, r), raft_reference(f1, f2, coords, r),
                               rtol=0, atol=1e-10)


@pytest.mark.parametrize("levels", [1, 2, 4])
def test_pyramid_matches_pooled_volume(levels):
    # RAFT pools the correlation volume; flowmatch pools f2. Equal by linearity, including odd sizes.
    f1, f2, coords = make_inputs(2, 6, 5, 6, 21, 19, margin=5.0, seed=levels)
    got = local_correlation(f1, feature_pyramid(f2, levels), coords, radius=2)
    assert got.shape == (2, levels * 25, 5, 6)
    torch.testing.assert_close(got, raft_reference(f1, f2, coords, 2, num_levels=levels), rtol=0, atol=1e-10)


def test_integer_coordinates_pick_exact_pixels():
    # No interpolation at integer positions: each output is one dot product, zero outside.
    f1, f2, _ = make_inputs(1, 4, 3, 3, 5, 6, seed=3)
    coords = torch.tensor([[[[0.0, 2.0, 5.0]] * 3, [[0.0, 1.0, 4.0]] * 3]], dtype=torch.float64)
    out = local_correlation(f1, f2, coords, radius=1)
    for y in range(3):
        for x in range(3):
            cx, cy = int(coords[0, 0, y, x]), int(coords[0, 1, y, x])
            for ox in range(3):
                for oy in range(3):
                    px, py = cx + ox - 1, cy + oy - 1
                    inside = 0 <= px < 6 and 0 <= py < 5
                    want = (f1[0, :, y, x] * f2[0, :, py, px]).sum() / 2 if inside else 0.0
                    assert abs(float(out[0, ox * 3 + oy, y, x]) - float(want)) < 1e-12


@needs_ext
def test_non_finite_and_huge_coordinates_give_zeros():
    f1, f2, coords = make_inputs(1, 3, 2, 3, 4, 4, seed=1)
    coords[0, 0, 0, 0] = float("nan")
    coords[0, 1, 0, 1] = float("inf")
    coords[0, 0, 0, 2] = -1e12
    coords.requires_grad_()
    f1.requires_grad_()
    out = local_correlation(f1, f2, coords, 1)
    assert torch.all(out[0, :, 0] == 0) and torch.isfinite(out).all()
    out.sum().backward()
    assert torch.all(coords.grad[0, :, 0] == 0) and torch.all(f1.grad[0, :, 0] == 0)
    torch.testing.assert_close(out[0, :, 1], raft_reference(f1, f2, coords.detach(), 1)[0, :, 1])


@needs_ext
def test_gradcheck_f1_f2_coords():
    f1, f2, coords = make_inputs(2, 3, 3, 4, 5, 6, margin=2.0, seed=11)
    coords = coords.round() + torch.rand(coords.shape, dtype=torch.float64) * 0.8 + 0.1  # away from kinks
    args = [t.clone().requires_grad_() for t in (f1, f2, coords)]
    # fast_mode: the Jacobian checked along random directions (the full one takes ~10 s here)
    assert torch.autograd.gradcheck(lambda a, b, c: local_correlation(a, b, c, 2), args, fast_mode=True)
    levels = [t.clone().requires_grad_() for t in feature_pyramid(f2, 2)]
    assert torch.autograd.gradcheck(lambda a, b0, b1: local_correlation(a, [b0, b1], coords, 1),
                                    [args[0], *levels], fast_mode=True)


@needs_ext
def test_gradgradcheck_f1_f2_and_coords_limit():
    f1, f2, coords = make_inputs(1, 3, 3, 3, 4, 5, margin=2.0, seed=12)
    a, b = f1.requires_grad_(), f2.requires_grad_()
    assert torch.autograd.gradgradcheck(lambda x, y: local_correlation(x, y, coords, 1), [a, b], fast_mode=True)
    c = coords.clone().requires_grad_()
    g = torch.autograd.grad(local_correlation(a, b, c, 1).square().sum(), [a], create_graph=True)[0]
    with pytest.raises(NotImplementedError, match="coords"):
        g.sum().backward()


@needs_ext
def test_float32_gradients_match_reference_autograd():
    f1, f2, coords = make_inputs(2, 24, 6, 7, 10, 9, margin=4.0, dtype=torch.float32, seed=5)
    coords = coords.floor() + torch.rand(coords.shape) * 0.8 + 0.1  # the coords derivative has kinks at integers
    ours = [t.clone().requires_grad_() for t in (f1, f2, coords)]
    ref = [t.double().requires_grad_() for t in (f1, f2, coords)]
    g = torch.randn(2, 49, 6, 7)
    local_correlation(*ours, 3).backward(g)
    raft_reference(*ref, 3).backward(g.double())
    for a, b in zip(ours, ref):
        torch.testing.assert_close(a.grad, b.grad.float(), rtol=1e-4, atol=1e-4)


@needs_ext
def test_result_does_not_depend_on_thread_count():
    f1, f2, coords = make_inputs(1, 40, 8, 8, 8, 8, dtype=torch.float32, seed=2)
    grads = []
    old = torch.get_num_threads()
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            grads.append(torch.ops.flowmatch.local_correlation_backward(
                torch.ones(1, 25, 8, 8), f1, f2, coords, 2, [True, True, True]))
    finally:
        torch.set_num_threads(old)
    for a, b in zip(*grads):
        assert torch.equal(a, b)


@needs_ext
def test_scalar_fallback_matches(tmp_path):
    # FLOWMATCH_LC_SIMD=none is read once per process: run the plain loops in a subprocess.
    f1, f2, coords = make_inputs(2, 21, 5, 6, 7, 8, dtype=torch.float32, seed=9)
    torch.save((f1, f2, coords), tmp_path / "in.pt")
    code = ("import torch, flowmatch.ops as o; f1, f2, c = torch.load(r'%s');"
            "torch.save(o.local_correlation(f1, f2, c, 3), r'%s')" % (tmp_path / "in.pt", tmp_path / "out.pt"))
    env = dict(os.environ, FLOWMATCH_LC_SIMD="none")
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=120)
    torch.testing.assert_close(torch.load(tmp_path / "out.pt"), local_correlation(f1, f2, coords, 3), **FP32)


@needs_ext
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_computes_in_float32(dtype):
    f1, f2, coords = make_inputs(1, 16, 4, 5, 6, 6, dtype=torch.float32, seed=4)
    a, b = f1.to(dtype), f2.to(dtype)
    got = local_correlation(a, b, coords, 2)
    assert got.dtype == dtype
    expect = raft_reference(a.double(), b.double(), coords.double(), 2).to(dtype)
    # float32 sums: at most one rounding step of the half type away from the exact value
    torch.testing.assert_close(got, expect, rtol=torch.finfo(dtype).eps, atol=1e-5)
    a.requires_grad_()
    local_correlation(a, b, coords, 2).sum().backward()
    assert a.grad.dtype == dtype and torch.isfinite(a.grad).all()


@needs_ext
def test_non_contiguous_and_channels_last_inputs():
    f1, f2, coords = make_inputs(2, 5, 6, 7, 8, 9, dtype=torch.float32, seed=6)
    ref = local_correlation(f1, f2, coords, 2)
    cl = [t.to(memory_format=torch.channels_last) for t in (f1, f2, coords)]
    torch.testing.assert_close(local_correlation(*cl, 2), ref)
    t1 = f1.transpose(2, 3).contiguous().transpose(2, 3)
    torch.testing.assert_close(local_correlation(t1, f2[:, :, :, :], coords, 2), ref)


@needs_ext
def test_opcheck():
    f1, f2, coords = make_inputs(1, 3, 3, 4, 5, 5, seed=8)
    op = torch.ops.flowmatch.local_correlation.default
    torch.library.opcheck(op, (f1.requires_grad_(), f2.requires_grad_(), coords.clone().requires_grad_(), 1))
    torch.library.opcheck(op, (f1.detach().half(), f2.detach().half(), coords.float(), 2))
    g = torch.randn(1, 9, 3, 4, dtype=torch.float64)
    torch.library.opcheck(torch.ops.flowmatch.local_correlation_backward.default,
                          (g, f1.detach(), f2.detach(), coords, 1, [True, True, True]))


@needs_ext
def test_fake_tensor_shape():
    from torch._subclasses.fake_tensor import FakeTensorMode
    with FakeTensorMode():
        f1, f2 = torch.empty(2, 8, 6, 7), torch.empty(2, 8, 12, 14)
        out = local_correlation(f1, feature_pyramid(f2, 3), torch.empty(2, 2, 6, 7), radius=3)
    assert tuple(out.shape) == (2, 3 * 49, 6, 7)


class _Lookup(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)

    def forward(self, a, b, coords):
        f1, f2 = self.conv(a), self.conv(b)
        return torch.relu(local_correlation(f1, feature_pyramid(f2, 2), coords, 2)).mean(dim=1)


@needs_ext
@pytest.mark.parametrize("backend", ["aot_eager", pytest.param("inductor", marks=pytest.mark.slow)])
def test_torch_compile_fullgraph_matches_eager(backend):
    torch.manual_seed(0)
    net = _Lookup()
    a, b = torch.randn(2, 3, 8, 10), torch.randn(2, 3, 8, 10)
    coords = make_inputs(2, 1, 8, 10, 8, 10, dtype=torch.float32)[2]
    compiled = torch.compile(net, fullgraph=True, backend=backend)
    torch.testing.assert_close(compiled(a, b, coords), net(a, b, coords))
    compiled(a, b, coords).sum().backward()
    g_compiled = net.conv.weight.grad.clone()
    net.zero_grad()
    net(a, b, coords).sum().backward()
    torch.testing.assert_close(g_compiled, net.conv.weight.grad, rtol=1e-4, atol=1e-6)


@needs_ext
def test_torch_export():
    net = _Lookup()
    a, b = torch.randn(1, 3, 8, 8), torch.randn(1, 3, 8, 8)
    coords = make_inputs(1, 1, 8, 8, 8, 8, dtype=torch.float32)[2]
    ep = torch.export.export(net, (a, b, coords))
    assert any("local_correlation" in str(node.target) for node in ep.graph.nodes)
    torch.testing.assert_close(ep.module()(a, b, coords), net(a, b, coords))


def test_torch_formulation_handles_single_pixel_maps():
    # grid_sample's align_corners=True formula divides by W2 − 1; the formulation must not.
    f1, f2, coords = make_inputs(1, 2, 2, 2, 1, 1, seed=1)
    coords = torch.zeros_like(coords)
    out = local_correlation_torch(f1, f2, coords, 1)
    centre = (f1[0, :, :, :] * f2[0, :, 0:1, 0:1]).sum(0) / math.sqrt(2)
    torch.testing.assert_close(out[0, 4], centre)
    assert torch.all(out[0, [0, 1, 2, 3, 5, 6, 7, 8]] == 0)
    if lc_mod.extension_available():
        torch.testing.assert_close(local_correlation(f1, f2, coords, 1), out)


def test_fallback_warns_and_uses_torch_formulation(monkeypatch):
    f1, f2, coords = make_inputs(1, 3, 3, 3, 4, 4, seed=2)
    monkeypatch.setattr(lc_mod, "_has_kernel", lambda device: False)
    monkeypatch.setattr(lc_mod, "_warned", set())
    with pytest.warns(RuntimeWarning, match="pure-PyTorch"):
        out = local_correlation(f1, f2, coords, 1)
    torch.testing.assert_close(out, raft_reference(f1, f2, coords, 1), rtol=0, atol=1e-10)


def _bad_inputs():
    f1, f2, coords = make_inputs(1, 3, 4, 5, 6, 6, dtype=torch.float32)
    return [
        ("f1 3-D", (f1[0], f2, coords, 1), {}),
        ("f1 int", (f1.int(), f2.int(), coords, 1), {}),
        ("C mismatch", (f1, f2[:, :2], coords, 1), {}),
        ("dtype mismatch", (f1, f2.double(), coords, 1), {}),
        ("coords shape", (f1, f2, coords[:, :, :3], 1), {}),
        ("coords int", (f1, f2, coords.long(), 1), {}),
        ("coords list", (f1, f2, [[0.0, 0.0]], 1), {}),
        ("radius negative", (f1, f2, coords, -1), {}),
        ("radius too big", (f1, f2, coords, 16), {}),
        ("radius float", (f1, f2, coords, 2.0), {}),
        ("empty pyramid", (f1, [], coords, 1), {}),
        ("pyramid level bad", (f1, [f2, f2[0]], coords, 1), {}),
        ("f2 not tensor", (f1, "f2", coords, 1), {}),
        ("empty f2", (f1, f2[:, :, :0], coords, 1), {}),
        ("empty C", (f1[:, :0], f2[:, :0], coords, 1), {}),
        ("backend", (f1, f2, coords, 1), {"backend": "cuda"}),
    ]


@pytest.mark.parametrize("name,args,kw", _bad_inputs(), ids=[b[0] for b in _bad_inputs()])
def test_bad_input_raises_input_error(name, args, kw):
    with pytest.raises(InputError):
        local_correlation(*args, **kw)


def test_feature_pyramid_checks_and_shapes():
    levels = feature_pyramid(torch.randn(1, 2, 13, 9), 3)
    assert [tuple(t.shape[-2:]) for t in levels] == [(13, 9), (6, 4), (3, 2)]
    for bad in (0, 5, 2.0):
        with pytest.raises(InputError):
            feature_pyramid(torch.randn(1, 2, 13, 9), bad)


@needs_ext
def test_direct_op_rejects_bad_input_without_crashing():
    f1, f2, coords = make_inputs(1, 3, 4, 5, 6, 6, dtype=torch.float32)
    op = torch.ops.flowmatch.local_correlation
    for args in ((f1, f2[:, :2], coords, 1), (f1, f2, coords[:, :1], 1), (f1, f2, coords, 99),
                 (f1, f2, coords.long(), 1), (f1.int(), f2.int(), coords, 1)):
        with pytest.raises(RuntimeError):
            op(*args)
    with pytest.raises(RuntimeError, match="grad_output"):
        torch.ops.flowmatch.local_correlation_backward(torch.ones(1, 8, 4, 5), f1, f2, coords, 1, [True] * 3)


@needs_ext
@pytest.mark.cuda_emulated
@pytest.mark.parametrize("shape", [(2, 5, 3, 4, 6, 7, 2), (1, 130, 2, 3, 4, 4, 1), (1, 3, 2, 2, 3, 3, 0)])
def test_cuda_kernels_emulated_match_reference(shape):
    # The literal local_correlation_kernels.cuh source, run through csrc/cuda_emulation/cuda_host.h
    # (fibers per thread, real __syncthreads barriers, racing atomicAdd over 2 workers).
    from emulated import load
    emu = load()
    n, c, h, w, h2, w2, r = shape
    f1, f2, coords = make_inputs(n, c, h, w, h2, w2, margin=3.0, seed=sum(shape))
    coords = coords.floor() + torch.rand(coords.shape, dtype=torch.float64) * 0.8 + 0.1
    coords[0, 0, 0, 0] = float("nan")
    out, ref = emu.local_correlation(f1, f2, coords, r), raft_reference(f1, f2, coords, r)
    # At the NaN pixel the reference (grid_sample) gives NaN and the kernel zero (outside the image).
    assert torch.isnan(ref[0, :, 0, 0]).all() and (out[0, :, 0, 0] == 0).all()
    ref[0, :, 0, 0] = 0
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-10)
    a, b, cc = (t.clone().requires_grad_() for t in (f1, f2, coords))
    g = torch.randn(n, (2 * r + 1) ** 2, h, w, dtype=torch.float64)
    raft_reference(a, b, cc, r).backward(g)
    g1, g2, gc = emu.local_correlation_backward(g, f1, f2, coords, r, [True, True, True])
    torch.testing.assert_close(g1, a.grad, rtol=0, atol=1e-10)
    torch.testing.assert_close(g2, b.grad, rtol=0, atol=1e-10)
    keep = torch.isfinite(coords).all(1, keepdim=True).expand_as(coords)  # NaN pixel: reference NaN, ours 0
    torch.testing.assert_close(gc[keep], cc.grad[keep], rtol=0, atol=1e-10)
