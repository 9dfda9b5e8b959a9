"""flowmatch.metrics against hand-computed cases and independent references."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import flowmatch.metrics as M
from flowmatch.errors import InputError


def _f(*vectors) -> np.ndarray:
    """A 1×N×2 flow from (u, v) pairs."""
    return np.array([vectors], dtype=np.float32)


# ----------------------------------------------------------------------------- single image

def test_epe_hand_computed():
    flow = _f((3, 4), (0, 0), (1, 1))
    gt = _f((0, 0), (0, 0), (1, 0))
    np.testing.assert_allclose(M.epe_map(flow, gt), [[5, 0, 1]])
    np.testing.assert_allclose(M.epe_map(flow, gt, np.array([[True, False, True]])), [[5, np.nan, 1]])
    assert M.epe(flow, gt) == pytest.approx(2.0)
    assert M.epe(flow, gt, valid=np.array([[False, True, True]])) == pytest.approx(0.5)
    assert math.isnan(M.epe(flow, gt, valid=np.zeros((1, 3), bool)))


def test_angular_error_hand_computed():
    # (1,0,1) vs (0,0,1): 45 degrees.  (0,0) vs (0,0): 0.  (1,0) vs (-1,0): acos(0) = 90.
    flow = _f((1, 0), (0, 0), (1, 0))
    gt = _f((0, 0), (0, 0), (-1, 0))
    assert M.angular_error(flow, gt, valid=np.array([[True, False, False]])) == pytest.approx(45.0)
    assert M.angular_error(flow, gt) == pytest.approx((45 + 0 + 90) / 3)


def test_outlier_rate_strict_threshold_and_relative():
    flow = _f((3, 0), (3.5, 0), (104, 0), (14, 0))
    gt = _f((0, 0), (0, 0), (100, 0), (10, 0))
    # EPE 3 (not > 3), 3.5, 4, 4
    assert M.outlier_rate(flow, gt) == pytest.approx(75.0)
    # relative 5 %: 3.5 > 0 yes; 4 > 5 no (|gt| = 100); 4 > 0.5 yes
    assert M.outlier_rate(flow, gt, relative=0.05) == pytest.approx(50.0)
    assert M.outlier_rate(flow, gt, threshold=1.0, valid=np.array([[True, False, False, False]])) == 100.0


def test_nan_prediction_raises_nan_gt_is_ignored():
    flow, gt = _f((1, 0), (2, 0)), _f((0, 0), (0, 0))
    bad = flow.copy()
    bad[0, 1, 1] = np.nan
    with pytest.raises(InputError, match="NaN"):
        M.epe(bad, gt)
    gt_nan = gt.copy()
    gt_nan[0, 1, 0] = np.inf
    assert M.epe(flow, gt_nan) == pytest.approx(1.0)


def test_bad_shapes_raise():
    with pytest.raises(InputError, match="H×W×2"):
        M.epe(np.zeros((2, 2)), np.zeros((2, 2)))
    with pytest.raises(InputError, match="differ"):
        M.epe(np.zeros((2, 2, 2)), np.zeros((2, 3, 2)))
    with pytest.raises(InputError, match="valid"):
        M.epe(np.zeros((2, 2, 2)), np.zeros((2, 2, 2)), valid=np.ones((3, 2), bool))


@given(arrays(np.float32, (4, 5, 2), elements=st.floats(-1e3, 1e3, width=32)),
       arrays(np.float32, (4, 5, 2), elements=st.floats(-1e3, 1e3, width=32)),
       arrays(bool, (4, 5)))
def test_epe_and_outliers_match_reference(flow, gt, valid):
    ref = np.linalg.norm(flow.astype(np.float64) - gt, axis=2)
    got = M.epe(flow, gt, valid)
    if valid.any():
        assert got == pytest.approx(ref[valid].mean(), rel=1e-9, abs=1e-9)
        assert M.outlier_rate(flow, gt, valid, 3.0) == pytest.approx(100 * (ref[valid] > 3).mean())
    else:
        assert math.isnan(got)


def test_torch_inputs_accepted():
    import torch

    flow, gt = _f((3, 4)), _f((0, 0))
    assert M.epe(torch.from_numpy(flow), torch.from_numpy(gt)) == pytest.approx(5.0)


# ----------------------------------------------------------------------------- accumulators

def _two_images():
    """Image A: one valid pixel, an outlier (EPE 10).  Image B: three valid pixels, no outlier (EPE 1)."""
    a_flow, a_gt = _f((10, 0), (50, 0)), _f((0, 0), (0, 0))
    a_valid = np.array([[True, False]])
    b_flow, b_gt = _f((1, 0), (0, 1), (1, 0)), _f((0, 0), (0, 0), (0, 0))
    return (a_flow, a_gt, a_valid), (b_flow, b_gt, None)


def test_kitti2012_per_image_vs_kitti2015_pooled_differ():
    k12, k15 = M.Kitti2012Metrics(), M.Kitti2015Metrics()
    for flow, gt, valid in _two_images():
        k12.add(flow, gt, valid)
        k15.add(flow, gt, valid)
    r12, r15 = k12.result(), k15.result()
    assert r12["Out-All-3"] == pytest.approx(50.0)       # (100 % + 0 %) / 2 images
    assert r15["Fl-all"] == pytest.approx(25.0)          # 1 outlier / 4 pixels
    assert r12["Avg-All"] == pytest.approx((10 + 1) / 2)  # per image
    assert r15["EPE-all"] == pytest.approx((10 + 3) / 4)  # pooled
    assert r12["images"] == r15["images"] == 2


def test_kitti2012_thresholds_and_noc():
    flow = _f((1.5, 0), (2.5, 0), (3.5, 0), (4.5, 0), (5.5, 0))
    gt = np.zeros_like(flow)
    noc = np.array([[True, True, False, False, False]])
    k = M.Kitti2012Metrics()
    k.add(flow, gt, None, noc_valid=noc)
    r = k.result()
    assert [r[f"Out-All-{t}"] for t in (2, 3, 4, 5)] == pytest.approx([80, 60, 40, 20])
    assert [r[f"Out-Noc-{t}"] for t in (2, 3, 4, 5)] == pytest.approx([50, 0, 0, 0])
    assert r["Avg-Noc"] == pytest.approx(2.0) and r["Avg-All"] == pytest.approx(3.5)


def test_kitti2015_fg_bg_and_noc():
    # EPE 4 everywhere; |gt| = 100 on the first two pixels (not outliers under the 5 % rule).
    gt = _f((100, 0), (100, 0), (10, 0), (0, 0))
    flow = gt + np.array([4, 0], np.float32)
    obj = np.array([[0, 1, 1, 0]])
    noc = np.array([[True, True, True, False]])
    k = M.Kitti2015Metrics()
    k.add(flow, gt, None, obj_map=obj, noc_valid=noc)
    r = k.result()
    assert r["Fl-all"] == pytest.approx(50.0)
    assert r["Fl-bg"] == pytest.approx(50.0)   # pixels 0 (no), 3 (yes)
    assert r["Fl-fg"] == pytest.approx(50.0)   # pixels 1 (no), 2 (yes)
    assert r["Fl-all-noc"] == pytest.approx(100 / 3)
    assert r["Fl-bg-noc"] == pytest.approx(0.0)
    assert r["EPE-all"] == pytest.approx(4.0)


def test_sintel_pooled_regions_and_bins():
    gt = _f((0, 0), (9.9, 0), (10, 0), (39, 0), (40, 0), (100, 0))
    err = np.array([1, 2, 3, 4, 5, 6], np.float32)
    flow = gt.copy()
    flow[0, :, 1] += err
    occ = np.array([[False, False, False, True, True, True]])
    s = M.SintelMetrics()
    s.add(flow, gt, None, occlusion=occ)
    s.add(_f((2, 0)), _f((0, 0)))   # a second image without occlusion mask: pooled into "all"
    r = s.result()
    assert r["EPE-all"] == pytest.approx((21 + 2) / 7)
    assert r["EPE-matched"] == pytest.approx(2.0) and r["EPE-unmatched"] == pytest.approx(5.0)
    assert r["EPE-s0-10"] == pytest.approx((1 + 2 + 2) / 3)
    assert r["EPE-s10-40"] == pytest.approx(3.5) and r["EPE-s40+"] == pytest.approx(5.5)
    # the boundary lies between columns 2 and 3: both are at distance 0, the rest within 10 px
    assert r["n-d0-10"] == 6 and r["EPE-d0-10"] == pytest.approx(3.5)
    assert r["n-d10-60"] == 0 and math.isnan(r["EPE-d10-60"])


def test_boundary_distance_matches_brute_force():
    rng = np.random.default_rng(3)
    occ = np.zeros((20, 30), bool)
    occ[5:12, 8:19] = True
    occ[rng.random(occ.shape) > 0.97] = True
    dist = M.boundary_distance(occ)
    edge = np.zeros_like(occ)
    for dy, dx in ((0, 1), (0, -1), (1, 0), (-1, 0)):
        shifted = np.roll(occ, (dy, dx), axis=(0, 1))
        inside = np.ones_like(occ)
        if dy == 1:
            inside[0] = False
        if dy == -1:
            inside[-1] = False
        if dx == 1:
            inside[:, 0] = False
        if dx == -1:
            inside[:, -1] = False
        edge |= inside & (shifted != occ)
    ey, ex = np.nonzero(edge)
    yy, xx = np.mgrid[:20, :30]
    ref = np.sqrt((yy[..., None] - ey) ** 2 + (xx[..., None] - ex) ** 2).min(axis=2)
    np.testing.assert_allclose(dist, ref, atol=1e-3)
    assert np.isinf(M.boundary_distance(np.zeros((3, 3), bool))).all()


@pytest.mark.parametrize("cls", [M.SintelMetrics, M.Kitti2012Metrics, M.Kitti2015Metrics])
def test_state_merge_equals_single_run(cls):
    rng = np.random.default_rng(1)
    images = []
    for i in range(5):
        gt = rng.normal(0, 8, (6, 7, 2)).astype(np.float32)
        flow = gt + rng.normal(0, 3, gt.shape).astype(np.float32)
        valid = rng.random((6, 7)) > 0.3 * (i % 3)
        images.append((flow, gt, valid))
    single = cls()
    for im in images:
        single.add(*im)
    parts = [cls(), cls()]
    for i, im in enumerate(images):
        parts[i % 2].add(*im)
    # states must survive a trip through JSON (plain numbers and lists)
    states = [json.loads(json.dumps(p.state())) for p in parts]
    merged = cls.from_states(states)
    a, b = single.result(), merged.result()
    assert a.keys() == b.keys()
    for key in a:
        assert a[key] == pytest.approx(b[key], nan_ok=True), key
    with pytest.raises(InputError, match="merge"):
        cls().merge([{"bogus": 1}])
