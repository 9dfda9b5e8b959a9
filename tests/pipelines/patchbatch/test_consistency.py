"""PatchBatch stage 3 (consistency check, sparse matches), stage 1's PCA, and the stage configs."""
import numpy as np
import pytest
import torch

from flowmatch.errors import InputError
from flowmatch.pipelines.patchbatch import (PRESETS, MatchingConfig, PipelineConfig, consistency_check, flat_options,
                                            resolve_config, sparse_matches)
from flowmatch.pipelines.patchbatch.descriptors import pca_reduce


def _numpy(m):
    """A Matches' torch fields as numpy arrays (points, flows, confidence)."""
    return m.points.numpy(), m.flows.numpy(), m.confidence.numpy()


def _const(H, W, u, v):
    f = np.zeros((H, W, 2), np.float32)
    f[..., 0], f[..., 1] = u, v
    return f


def test_consistency_of_opposite_translations():
    H, W = 12, 16
    fab, fba = _const(H, W, 3, -2), _const(H, W, -3, 2)
    ok, err = (t.numpy() for t in consistency_check(fab, fba, threshold=0.5))
    ys, xs = np.mgrid[0:H, 0:W]
    inside = (xs + 3 < W) & (ys - 2 >= 0)  # targets that stay in B
    np.testing.assert_array_equal(ok, inside)
    assert np.all(err[inside] == 0) and np.all(np.isinf(err[~inside]))


def test_round_trip_error_matches_a_direct_computation():
    rng = np.random.default_rng(0)
    H, W = 10, 14
    fab = rng.uniform(-3, 3, (H, W, 2)).astype(np.float32)
    fba = rng.uniform(-3, 3, (H, W, 2)).astype(np.float32)
    ok, err = (t.numpy() for t in consistency_check(fab, fba, threshold=1.5))
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
    points, flows, conf = _numpy(m)
    assert not np.any((points[:, 0] == 5) & (points[:, 1] == 5))
    np.testing.assert_array_equal(flows, np.tile([1, 0], (len(m), 1)))
    assert np.all((conf > 0) & (conf <= 1))
    # confidence falls with cost: exp(-cost / median cost), numpy's median
    c = cost[points[:, 1].astype(int), points[:, 0].astype(int)]
    np.testing.assert_allclose(conf, np.exp(-c / np.median(c)), rtol=1e-6)
    order = np.argsort(c)
    assert np.all(np.diff(conf[order]) <= 0)
    s = sparse_matches(torch.from_numpy(fab), torch.from_numpy(fba), torch.from_numpy(cost), step=2, scale=4.0)
    points, flows, _ = _numpy(s)
    assert np.all(points % 8 == 0) and np.all(flows == [4, 0])
    q = sparse_matches(fab, fba, cost, cost_quantile=0.5)
    assert len(q) == pytest.approx(len(m) / 2, abs=1)
    ok = consistency_check(fab, fba, 1.0)[0].numpy()
    for quantile in (0.1, 0.37, 0.9):  # exactly numpy's quantile rule
        kept = ok & (cost <= np.quantile(cost[ok], quantile))
        assert len(sparse_matches(fab, fba, cost, cost_quantile=quantile)) == kept.sum()


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
    cfg = resolve_config("fast", iterations=7, refine=False, seed=3)
    assert cfg.matching.iterations == 7 and cfg.descriptors.stride == PRESETS["fast"].descriptors.stride
    assert not cfg.refinement.enabled and cfg.seed == 3
    assert cfg.consistency == PRESETS["fast"].consistency  # the other stages are untouched
    with pytest.raises(InputError):
        resolve_config("fast", no_such_option=1)
    with pytest.raises(InputError):
        resolve_config("medium")
    with pytest.raises(InputError):
        resolve_config("accurate", iterations=0)


# the method options users had before the stages got their own configs
OPTIONS = ("descriptor descriptor_model descriptor_stride descriptor_net_stride pca_dim half iterations radius window seed coarse_factor "
           "coarse_window coarse_radius coarse_iterations subpixel consistency cost_quantile saliency_th seed_step nn "
           "coef_kernel affine pref_nn pref_th edge_scale edge_sigma refine refine_dis dis_max_change dis_finest_scale dis_patch_stride dis_iterations refine_iterations "
           "refine_alpha threads raw_weight combine_with precision interpolator downscale downscale_min_side").split()


def test_flat_options_round_trip_through_the_stage_configs():
    for cfg in PRESETS.values():
        opts = flat_options(cfg)
        assert sorted(opts) == sorted(OPTIONS) and resolve_config(PipelineConfig(), **opts) == cfg
    with pytest.raises(InputError):
        MatchingConfig(radius=-1)
    with pytest.raises(InputError):
        MatchingConfig(iterations=True)


def test_threads_option_is_scoped():
    from flowmatch._threads import torch_threads

    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError), torch_threads(1):
        raise RuntimeError("boom")
    assert torch.get_num_threads() == before
