"""flowmatch.ops.adapters against transcriptions of the peers' semantics (tests/ops/peer_semantics.py):
RAFT's CorrBlock / AlternateCorrBlock, mmcv's Correlation, flownet2-pytorch's Correlation."""
from __future__ import annotations

import pytest
import torch

import flowmatch.ops  # noqa: F401
from flowmatch.errors import InputError
from flowmatch.ops.adapters import (AlternateCorrBlock, CorrBlock, FlowNet2Correlation, MMCVCorrelation,
                                    flownet2_correlation, mmcv_correlation)
from peer_semantics import flownet2_reference, mmcv_reference, raft_alternate, raft_reference


def maps(n, c, h, w, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, c, h, w, generator=g, dtype=dtype), torch.randn(n, c, h, w, generator=g, dtype=dtype)


def raft_coords(n, h, w, seed=0, max_flow=6.0):
    """RAFT's coords1: the pixel grid plus a flow (fractional, some positions leave the image)."""
    g = torch.Generator().manual_seed(seed)
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij")
    grid = torch.stack((xs, ys)).expand(n, 2, h, w)
    return grid + (torch.rand(n, 2, h, w, generator=g, dtype=torch.float64) * 2 - 1) * max_flow


@pytest.mark.parametrize("levels,radius", [(1, 1), (2, 2), (4, 3)])
def test_corr_block_matches_raft(levels, radius):
    # 16 × 18: the coarsest of 4 levels is 2 × 2 (RAFT's grid_sample normalisation divides by W − 1,
    # NaN for a 1-pixel level; flowmatch is defined there, see test_local_correlation)
    f1, f2 = maps(2, 8, 16, 18, seed=levels)
    coords = raft_coords(2, 16, 18, seed=radius)
    got = CorrBlock(f1, f2, num_levels=levels, radius=radius)(coords)
    assert got.dtype == torch.float32 and got.shape == (2, levels * (2 * radius + 1) ** 2, 16, 18)
    torch.testing.assert_close(got, raft_reference(f1, f2, coords, radius, levels).float(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("levels,radius", [(1, 1), (3, 2)])
def test_alternate_corr_block_matches_alt_cuda_corr(levels, radius):
    f1, f2 = maps(1, 5, 8, 9, seed=3)
    coords = raft_coords(1, 8, 9, seed=4, max_flow=4.0)
    got = AlternateCorrBlock(f1, f2, num_levels=levels, radius=radius)(coords)
    assert got.dtype == torch.float64
    torch.testing.assert_close(got, raft_alternate(f1, f2, coords, radius, levels), rtol=0, atol=1e-10)


def test_corr_block_gradients_reach_both_feature_maps():
    f1, f2 = (t.requires_grad_() for t in maps(1, 4, 8, 8, seed=5))
    CorrBlock(f1, f2, num_levels=2, radius=1)(raft_coords(1, 8, 8)).square().sum().backward()
    ref1, ref2 = (t.detach().clone().requires_grad_() for t in (f1, f2))
    raft_reference(ref1, ref2, raft_coords(1, 8, 8), 1, 2).float().square().sum().backward()
    torch.testing.assert_close(f1.grad, ref1.grad, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(f2.grad, ref2.grad, rtol=1e-4, atol=1e-5)


def test_corr_block_rejects_bad_input():
    f1, f2 = maps(1, 4, 8, 8)
    with pytest.raises(InputError):
        CorrBlock(f1, f2[:, :, :4])
    with pytest.raises(InputError):
        CorrBlock(f1, f2, num_levels=5)  # 8 px cannot be halved 4 times
    with pytest.raises(InputError):
        CorrBlock(f1, f2, radius=2)(torch.zeros(1, 2, 4, 4))


MMCV_CASES = [  # k, md, stride, pad, dil, dil_patch
    (1, 1, 1, 0, 1, 1), (1, 3, 1, 0, 1, 2), (3, 2, 1, 1, 1, 1), (3, 1, 2, 2, 1, 1), (2, 1, 1, 0, 1, 1),
    (3, 1, 1, 2, 2, 1), (2, 2, 2, 1, 3, 2), (1, 0, 3, 1, 1, 1), (5, 1, 1, 0, 1, 1),
]


@pytest.mark.parametrize("k,md,stride,pad,dil,dil_patch", MMCV_CASES)
def test_mmcv_correlation_matches_mmcv(k, md, stride, pad, dil, dil_patch):
    a, b = maps(2, 3, 7, 8, seed=k + 7 * md + pad)
    expect = mmcv_reference(a, b, k, md, stride, pad, dil, dil_patch)
    got = MMCVCorrelation(k, md, stride, pad, dil, dil_patch)(a, b)
    assert got.shape == expect.shape
    torch.testing.assert_close(got, expect, rtol=0, atol=1e-10)


def test_mmcv_correlation_accepts_pairs_and_has_gradients():
    a, b = (t.requires_grad_() for t in maps(1, 2, 6, 6, seed=2))
    out = mmcv_correlation(a, b, kernel_size=(3, 3), max_displacement=1, stride=(1, 1), padding=(1, 1),
                           dilation=(2, 2), dilation_patch=(1, 1))
    assert torch.autograd.gradcheck(lambda x, y: mmcv_correlation(x, y, 3, 1, 1, 1, 2, 1), (a, b), fast_mode=True)
    assert out.shape == (1, 3, 3, 4, 4)
    for bad in (dict(kernel_size=(3, 1)), dict(dilation=0), dict(stride=0), dict(padding=-1), dict(kernel_size=9)):
        with pytest.raises(InputError):
            mmcv_correlation(a, b, **{**dict(kernel_size=1, max_displacement=1), **bad})


FLOWNET2_CASES = [  # pad, k, md, s1, s2
    (20, 1, 20, 1, 2), (4, 1, 4, 1, 1), (3, 1, 2, 2, 1), (2, 3, 2, 1, 1), (3, 3, 1, 2, 2), (1, 3, 0, 1, 1),
    (5, 5, 3, 1, 3),
]


@pytest.mark.parametrize("pad,k,md,s1,s2", FLOWNET2_CASES)
def test_flownet2_correlation_matches_flownet2(pad, k, md, s1, s2):
    a, b = maps(1, 3, 9, 10, seed=pad + k)
    if md == 20:
        a, b = maps(1, 2, 6, 5, seed=1)  # FlowNetC's settings on a map smaller than the displacement
    expect = flownet2_reference(a, b, pad, k, md, s1, s2)
    got = FlowNet2Correlation(pad, k, md, s1, s2, corr_multiply=1)(a, b)
    assert got.shape == expect.shape
    torch.testing.assert_close(got, expect, rtol=0, atol=1e-10)


def test_flownet2_correlation_rejects_what_flownet2_leaves_undefined():
    a, b = maps(1, 2, 8, 8)
    with pytest.raises(InputError, match="kernel_size"):
        FlowNet2Correlation(pad_size=4, max_displacement=4)(a, b)  # flownet2's default kernel_size=0
    with pytest.raises(InputError, match="corr_multiply"):
        flownet2_correlation(a, b, 4, 1, 4, 1, 1, corr_multiply=2)
    with pytest.raises(InputError, match="output size"):
        flownet2_correlation(a, b, 0, 1, 4, 1, 1)
    with pytest.raises(InputError):
        flownet2_correlation(a, b, -1, 1, 1, 1, 1)
