"""Edge-aware sparse-to-dense interpolation: exactness on models it can represent, edges, bad input."""
import numpy as np
import pytest
import torch

from flowmatch import _ext
from flowmatch.errors import InputError
from flowmatch.ops.interpolation import NoMatchesWarning, edge_aware_interpolate, edge_cost_map

pytestmark = pytest.mark.skipif(not _ext.available(), reason="flowmatch._C not built")


def _grid(H, W, step, offset=1):
    ys, xs = np.mgrid[offset:H:step, offset:W:step]
    return np.stack([xs.ravel(), ys.ravel()], 1).astype(np.float32)


def _affine(pts, A, t):
    return (pts @ np.asarray(A, np.float32).T + np.asarray(t, np.float32)).astype(np.float32)


def test_constant_flow_on_grid_matches_is_reproduced():
    # OpenCV's EdgeAwareInterpolator returns zeros for exactly this input.
    H, W = 40, 60
    pts = _grid(H, W, 4)
    flows = np.tile(np.float32([2.5, -1.25]), (len(pts), 1))
    out = edge_aware_interpolate(pts, flows, np.full((H, W), 0.01, np.float32))
    np.testing.assert_allclose(out, np.broadcast_to([2.5, -1.25], out.shape), atol=1e-4)


@pytest.mark.parametrize("seed", [0, 1])
def test_affine_field_is_exact_with_local_affine_fit(seed):
    rng = np.random.default_rng(seed)
    H, W = 50, 70
    A, t = rng.normal(0, 0.05, (2, 2)), rng.normal(0, 3, 2)
    pts = np.unique(rng.integers(0, [W, H], (300, 2)), axis=0).astype(np.float32)
    cost = rng.uniform(0.001, 1.0, (H, W)).astype(np.float32)  # any cost: an affine field is exact
    out = edge_aware_interpolate(pts, _affine(pts, A, t), cost, nn=30, pref_nn=0)
    ys, xs = np.mgrid[0:H, 0:W]
    ref = _affine(np.stack([xs, ys], -1).reshape(-1, 2).astype(np.float32), A, t).reshape(H, W, 2)
    np.testing.assert_allclose(out, ref, atol=2e-3)


def test_regions_separated_by_an_edge_keep_their_own_flow():
    H, W = 40, 80
    img = np.zeros((H, W), np.float32)
    img[:, 40:] = 255.0
    cost = edge_cost_map(img, scale=50.0)
    pts = _grid(H, W, 3)
    left = pts[:, 0] < 39.5
    flows = np.where(left[:, None], np.float32([4.0, 0.0]), np.float32([-3.0, 2.0])).astype(np.float32)
    for affine in (True, False):
        out = edge_aware_interpolate(pts, flows, cost, nn=20, affine=affine, coef_kernel=2.0, pref_nn=0)
        np.testing.assert_allclose(out[:, :36], np.broadcast_to([4.0, 0.0], out[:, :36].shape), atol=1e-3)
        np.testing.assert_allclose(out[:, 44:], np.broadcast_to([-3.0, 2.0], out[:, 44:].shape), atol=1e-3)


def test_prefilter_drops_an_outlier():
    H, W = 30, 30
    pts = _grid(H, W, 3)
    flows = np.tile(np.float32([1.0, 1.0]), (len(pts), 1))
    bad = len(pts) // 2
    flows[bad] = [40.0, -30.0]
    out, kept = edge_aware_interpolate(pts, flows, np.full((H, W), 0.01, np.float32), nn=20, pref_nn=8,
                                       pref_th=3.0, return_kept=True)
    assert not kept[bad] and kept.sum() == len(pts) - 1
    np.testing.assert_allclose(out, np.ones((H, W, 2)), atol=1e-4)


def test_more_than_32767_matches():
    H, W = 200, 220
    pts = _grid(H, W, 1, offset=0)[::1]
    assert len(pts) > 32767
    flows = np.tile(np.float32([0.5, 0.25]), (len(pts), 1))
    out = edge_aware_interpolate(pts, flows, np.full((H, W), 0.01, np.float32), nn=8, pref_nn=0)
    np.testing.assert_allclose(out, np.broadcast_to([0.5, 0.25], out.shape), atol=1e-5)


def test_no_matches_warns_and_returns_zero_flow():
    with pytest.warns(NoMatchesWarning):
        out = edge_aware_interpolate(np.zeros((0, 2)), np.zeros((0, 2)), np.ones((5, 6), np.float32))
    assert out.shape == (5, 6, 2) and not out.any()


def test_thread_count_does_not_change_the_result():
    rng = np.random.default_rng(3)
    H, W = 60, 60
    pts = np.unique(rng.integers(0, 60, (500, 2)), axis=0).astype(np.float32)
    flows = rng.normal(0, 5, (len(pts), 2)).astype(np.float32)
    cost = rng.uniform(0.001, 1, (H, W)).astype(np.float32)
    a = edge_aware_interpolate(pts, flows, cost, nn=25)
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        b = edge_aware_interpolate(pts, flows, cost, nn=25)
    finally:
        torch.set_num_threads(old)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("case", ["outside", "nan_flow", "neg_cost", "nan_cost", "shape", "nn", "cost_dims"])
def test_bad_input_raises_input_error(case):
    pts, flows = np.float32([[1, 1], [3, 2]]), np.float32([[0, 0], [1, 1]])
    cost = np.ones((5, 5), np.float32)
    kw = {}
    if case == "outside":
        pts = np.float32([[1, 1], [9, 2]])
    elif case == "nan_flow":
        flows = np.float32([[0, np.nan], [1, 1]])
    elif case == "neg_cost":
        cost[2, 2] = -1
    elif case == "nan_cost":
        cost[2, 2] = np.nan
    elif case == "shape":
        flows = flows[:1]
    elif case == "nn":
        kw = {"nn": 0}
    elif case == "cost_dims":
        cost = np.ones(5, np.float32)
    with pytest.raises(InputError):
        edge_aware_interpolate(pts, flows, cost, **kw)


def test_raw_op_checks_instead_of_crashing():
    xy = torch.tensor([[10, 10]], dtype=torch.int32)
    with pytest.raises(RuntimeError, match="outside"):
        torch.ops.flowmatch.edge_aware_interpolate(xy, torch.zeros(1, 2), torch.ones(5, 5), 5, 0.8, True, 0, 5.0)


def test_fake_kernel_shapes():
    import flowmatch.ops  # noqa: F401  (registers the fake kernels)
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():
        xy = torch.zeros(17, 2, dtype=torch.int32)
        fl = torch.zeros(17, 2)
        cost = torch.ones(9, 13)
        flow, kept = torch.ops.flowmatch.edge_aware_interpolate(xy, fl, cost, 5, 0.8, True, 0, 5.0)
        assert flow.shape == (9, 13, 2) and flow.dtype == torch.float32
        assert kept.shape == (17,) and kept.dtype == torch.bool
