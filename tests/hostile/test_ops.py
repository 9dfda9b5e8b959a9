"""Hostile sizes for the compiled ops: overflow-checked and bounded before any allocation."""
import pytest

from _cases import check
from _runner import run_cases

SETUP = r"""
import warnings
import numpy as np, torch
from flowmatch import ops
from flowmatch.ops.interpolation import edge_aware_interpolate
warnings.simplefilter("ignore")
a = torch.randn(1, 4, 8, 8)
c256 = torch.randn(1, 256, 8, 8)
tiny = torch.randn(1, 1, 8, 8)
def corr(x, **kw):
    out = ops.correlation(x, x, **kw)
    assert torch.isfinite(out).all()
    return out
def raw_corr(x, *args):
    out = torch.ops.flowmatch.correlation(x, x, *args)
    assert torch.isfinite(out).all()
    return out
pts = torch.tensor([[1.0, 1.0], [5.0, 5.0], [2.0, 6.0]])
fl = torch.tensor([[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]])
cost = torch.full((8, 8), 0.01)
"""

BAD = {
    "corr_2_60_scratch": "corr(a, pad_size=2**60, max_displacement=2**60, stride2=2**60)",
    "corr_c256_2_54": "corr(c256, pad_size=2**54, max_displacement=2**54, stride2=2**54)",
    "corr_2_62_channels": "corr(a, pad_size=2**62, max_displacement=2**62)",
    "corr_10000_on_8x8": "corr(tiny, pad_size=10000, max_displacement=10000)",
    "corr_kernel_huge": "corr(a, pad_size=2**40, kernel_size=2**41 + 1, max_displacement=0)",
    "ok_corr_stride1_huge": "assert corr(a, stride1=2**30).shape == (1, 9, 1, 1)",
    "corr_negative_pad": "corr(a, pad_size=-1)",
    "raw_corr_raw_op_2_60": "raw_corr(a, 2**60, 1, 2**60, 1, 2**60)",
    "raw_corr_raw_op_2_62": "raw_corr(a, 2**62, 1, 2**62, 1, 1)",
    "raw_corr_raw_op_10000": "raw_corr(tiny, 10000, 1, 10000, 1, 1)",
    "patchmatch_expanded_huge": "d = torch.zeros(1, 1, 1).expand(100, 100, 2**22)\nops.patchmatch(d, d)",
    "patchmatch_nan": "d = torch.zeros(8, 8, 4); d[3, 3, 1] = float('nan')\nops.patchmatch(d, d)",
    "patchmatch_seed_float": "d = torch.zeros(8, 8, 4)\nops.patchmatch(d, d, seed=0.5)",
    
    
    "interp_coef_kernel_1e39": "edge_aware_interpolate(pts, fl, cost, coef_kernel=1e39)",
    "interp_pref_th_1e39": "edge_aware_interpolate(pts, fl, cost, pref_th=1e39)",
    "ok_interp_raw_op_nn_2_31_clamped": "f, k = torch.ops.flowmatch.edge_aware_interpolate(pts.round().int(), fl, cost, 2**31, 0.8, True, 0, 5.0)\nassert torch.isfinite(f).all()",
    "raw_interp_raw_op_coef_1e39": "f, k = torch.ops.flowmatch.edge_aware_interpolate(pts.round().int(), fl, cost, 3, 1e39, True, 0, 5.0)\nassert torch.isfinite(f).all()",
    "interp_cost_huge_expanded": "big = torch.zeros(1, 1).expand(2**20, 2**20)\nedge_aware_interpolate(pts, fl, big)",
    "interp_flow_huge_values": "f = edge_aware_interpolate(pts, fl * 1e38, cost)\nassert np.isfinite(f).all()",
}

GOOD = {
    "ok_corr_normal": "corr(a, pad_size=2, max_displacement=2)",
    "ok_interp_normal": "f = edge_aware_interpolate(pts, fl, cost, nn=3, pref_nn=0)\nassert np.isfinite(f).all()",
    "ok_interp_nn_2_31_means_all": "f = edge_aware_interpolate(pts, fl, cost, nn=2**31)\nassert np.isfinite(f).all() and np.allclose(f, edge_aware_interpolate(pts, fl, cost, nn=3))",
    "ok_interp_pref_nn_2_31": "f = edge_aware_interpolate(pts, fl, cost, pref_nn=2**31)\nassert np.isfinite(f).all()",
    "ok_patchmatch_normal": "d = torch.randn(8, 8, 4)\nops.patchmatch(d, d)",
}
CASES = {**BAD, **GOOD}


@pytest.fixture(scope="module")
def outcomes():
    return run_cases(CASES, SETUP, case_timeout=60)


@pytest.mark.parametrize("name", sorted(CASES))
def test_hostile_op(outcomes, name):
    check(name, outcomes[name])
