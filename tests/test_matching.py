"""flowmatch.matching: consistency check, sparse matches, PCA, configuration."""
import numpy as np
import pytest
import torch

from flowmatch.errors import InputError
from flowmatch.matching import PRESETS, consistency_check, pca_reduce, resolve_config, sparse_matches


def _const(H, W, u, v):
    f = np.zeros((H, W, 2), np.float32)
    f[..., 0], f[..., 1] = u, v
    return f


def test_consistency_of_opposite_translations():
    H, W = 12, 16
    fab, fba = _const(H, W, 3, -2), _const(H, W, -3, 2)
    ok, err = consistency_check(fab, fba, threshold=0.5)
    ys, xs = np.mgrid[0:H, 0:W]
    inside = (xs + 3 < W) & (ys - 2 >= 0)  # targets that stay in B
    np.testing.assert_array_equal(ok, inside)
    assert np.all(err[inside] == 0) and np.all(np.isinf(err[~inside]))


def test_round_trip_error_matches_a_direct_computation():
    rng = np.random.default_rng(0)
    H, W = 10, 14
    fab = rng.uniform(-3, 3, (H, W, 2)).astype(np.float32)
    fba = rng.uniform(-3, 3, (H, W, 2)).astype(np.float32)
    ok, err = consistency_check(fab, fba, threshold=1.5)
    for y in range(H):
        for x in range(W):
            tx, ty = int(round(x + fab[y, x, 0])), int(round(y + fab[y, x, 1]))
            if 0 <= tx < W and 0 <= ty < H:
                ref = np.hypot(*(fab[y, x] + fba[ty, tx]))
                assert err[y, x] == pytest.approx(ref, abs=1e-5)
                assert ok[y, x] == (ref <= 1.5)
            else:
                assert not ok[y, x]


def test_sparse_matches_grid_scale_and_costs():
    H, W = 12, 16
    fab, fba = _const(H, W, 1, 0), _const(H, W, -1, 0)
    fba[5, 6] = [4, 4]  # breaks the round trip of pixel (x=5, y=5)
    cost = np.arange(H * W, dtype=np.float32).reshape(H, W)
    m = sparse_matches(fab, fba, cost, threshold=1.0, step=1)
    assert len(m) == H * (W - 1) - 1
    assert not np.any((m.points[:, 0] == 5) & (m.points[:, 1] == 5))
    np.testing.assert_array_equal(m.flows, np.tile([1, 0], (len(m), 1)))
    assert np.all((m.confidence > 0) & (m.confidence <= 1))
    # confidence falls with cost
    order = np.argsort(cost[m.points[:, 1].astype(int), m.points[:, 0].astype(int)])
    assert np.all(np.diff(m.confidence[order]) <= 0)
    s = sparse_matches(fab, fba, cost, step=2, scale=4.0)
    assert np.all(s.points % 8 == 0) and np.all(s.flows == [4, 0])
    q = sparse_matches(fab, fba, cost, cost_quantile=0.5)
    assert len(q) == pytest.approx(len(m) / 2, abs=1)


def test_no_surviving_match_is_an_empty_result():
    H, W = 6, 6
    m = sparse_matches(_const(H, W, 100, 0), _const(H, W, 0, 0))
    assert len(m) == 0 and m.points.shape == (0, 2) and m.flows.shape == (0, 2)


@pytest.mark.parametrize("args", [
    (np.zeros((4, 4, 3)), np.zeros((4, 4, 2))),
    (np.zeros((4, 4, 2)), np.full((4, 4, 2), np.nan)),
])
def test_consistency_bad_input(args):
    with pytest.raises(InputError):
        consistency_check(*args)


def test_pca_keeps_distances_of_low_rank_fields():
    g = torch.Generator().manual_seed(0)
    basis = torch.randn(6, 48, generator=g)
    a = (torch.randn(10, 12, 6, generator=g) @ basis) + 3.0
    b = (torch.randn(10, 12, 6, generator=g) @ basis) + 3.0
    ra, rb = pca_reduce(a, b, 6)
    assert ra.shape == (10, 12, 6)
    d_full = ((a[:, :, None] - b[:, None, :]) ** 2).sum(-1)
    d_red = ((ra[:, :, None] - rb[:, None, :]) ** 2).sum(-1)
    torch.testing.assert_close(d_red, d_full, rtol=1e-3, atol=1e-2)


def test_config_overrides_and_errors():
    cfg = resolve_config("fast", iterations=7)
    assert cfg.iterations == 7 and cfg.descriptor_stride == PRESETS["fast"].descriptor_stride
    with pytest.raises(InputError):
        resolve_config("fast", no_such_option=1)
    with pytest.raises(InputError):
        resolve_config("medium")
    with pytest.raises(InputError):
        resolve_config("accurate", iterations=0)
