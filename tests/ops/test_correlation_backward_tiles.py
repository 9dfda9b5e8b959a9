"""The float32 SIMD backward's grad_out tile (csrc/correlation/cpu/correlation_simd.inc, pack_grad_rows):
grad_out rows are copied per gradient row pair into a contiguous tile indexed (row of the pair, kernel
row a, q, o); when that tile would exceed kMaxPackedGrad (4·2^20 floats) the kernel reads grad_out in
place.  Both paths against the float64 per-element backward, on shapes that exercise the pair/unpaired
rows, q's renumbering for the second row of a pair, every kernel row a, channel-block remainders and
both maps."""
from __future__ import annotations

import pytest
import torch

import flowmatch.ops  # noqa: F401
from flowmatch.ops.correlation import extension_available

pytestmark = pytest.mark.skipif(not extension_available(), reason="flowmatch._C not built (make build)")


def _check(n, c, h, w, pad, k, md, s1, s2, seed=0):
    g = torch.Generator().manual_seed(seed)
    f1, f2 = torch.randn(n, c, h, w, generator=g), torch.randn(n, c, h, w, generator=g)
    args = (pad, k, md, s1, s2)
    out = torch.ops.flowmatch.correlation(f1, f2, *args)
    grad = torch.randn(out.shape, generator=g)
    g1, g2 = torch.ops.flowmatch.correlation_backward(grad, f1, f2, *args)
    r1, r2 = torch.ops.flowmatch_testing.correlation_backward_elementwise(grad.double(), f1.double(),
                                                                          f2.double(), *args)
    for got, want in ((g1, r1), (g2, r2)):
        assert got.dtype == torch.float32 and got.shape == want.shape
        # float32 sums of D²·k² products of unit-variance values, scaled by 1/(k²·C)
        tol = 1e-5 * float(want.abs().max()) + 1e-7
        err = float((got.double() - want).abs().max())
        assert err <= tol, (err, tol)
        assert float(want.abs().max()) > 0


@pytest.mark.parametrize("n, c, h, w, pad, k, md, s1, s2", [
    (1, 9, 11, 37, 20, 1, 20, 1, 2),  # FlowNetC's settings: D = 21, rows paired at y, y + 2
    (2, 6, 9, 21, 4, 3, 4, 1, 2),     # k = 3: three kernel rows per tile row, two samples
    (1, 5, 7, 19, 3, 5, 2, 1, 1),     # k = 5, s2 = 1: pairs y, y + 1; 5 channels = block 4 + 1
    (1, 3, 6, 13, 1, 1, 3, 1, 3),     # pad < md: q rows outside [0, oH) skipped by the packing
])
def test_backward_with_the_packed_grad_tile_matches_float64(n, c, h, w, pad, k, md, s1, s2):
    _check(n, c, h, w, pad, k, md, s1, s2)


def test_backward_reading_grad_in_place_matches_float64():
    # 2·k·D²·oW = 2·1·41²·1260 = 4.24·10^6 floats > kMaxPackedGrad: grad_out read in place
    _check(1, 5, 5, 1260, 20, 1, 20, 1, 1, seed=3)
