"""The procedural pair generator: exact flow (checked by warping), occlusions, determinism, options."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from flowmatch.data.synthetic import gaussian_noise, generate_pair, generate_sequence
from flowmatch.errors import InputError


def _backward_warp(img: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Reference warp, independent of flowmatch.warp: out(p) = img(p + flow(p)), bilinear."""
    h, w = flow.shape[:2]
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(img.astype(np.float32), xs + flow[..., 0], ys + flow[..., 1], cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE)


def _photometric_errors(img1: np.ndarray, img2: np.ndarray, flow: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    """Mean |img1 - warp(img2, flow)| and mean |img1 - img2| over mask, grey levels."""
    warped = _backward_warp(img2, flow)
    e = np.abs(warped - img1.astype(np.float32)).mean(axis=2)
    e0 = np.abs(img2.astype(np.float32) - img1.astype(np.float32)).mean(axis=2)
    return float(e[mask].mean()), float(e0[mask].mean())


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_flow_warps_img2_onto_img1(seed):
    p = generate_pair(96, 128, seed, max_motion=12.0)
    vis = ~p.occlusion
    assert vis.mean() > 0.5
    err, err0 = _photometric_errors(p.img1, p.img2, p.flow, vis)
    # interpolation and rounding only: a few grey levels, far below the unwarped difference
    assert err < 3.0
    assert err < 0.2 * err0


def test_flow_exact_at_full_size_and_large_motion():
    p = generate_pair(384, 512, 11)  # default max_motion 40
    assert np.abs(p.flow).max() > 10.0
    err, err0 = _photometric_errors(p.img1, p.img2, p.flow, ~p.occlusion)
    assert err < 2.0 and err < 0.1 * err0
    # the wrong flow (off by one pixel) must be much worse: the check has teeth
    wrong, _ = _photometric_errors(p.img1, p.img2, p.flow + np.float32([1.0, 0.0]), ~p.occlusion)
    assert wrong > 2.0 * err


def test_sequence_flows_chain():
    seq = generate_sequence(80, 112, 5, frames=4, max_motion=8.0)
    assert len(seq.frames) == 4 and len(seq.flows) == 3 and len(seq.occlusions) == 3
    for k in range(3):
        err, err0 = _photometric_errors(seq.frames[k], seq.frames[k + 1], seq.flows[k], ~seq.occlusions[k])
        assert err < 3.0 and err < 0.2 * err0
    # constant motion: a pixel on the same layer in frames 0 and 1 keeps its layer's affine flow,
    # so for the background (layer 0, global affine) consecutive flows agree where both are background
    bg = (seq.layers[0] == 0) & (seq.layers[1] == 0)
    np.testing.assert_allclose(seq.flows[0][bg], seq.flows[1][bg], atol=1e-3)


def test_pair_is_first_step_of_sequence():
    p = generate_pair(40, 56, 9)
    s = generate_sequence(40, 56, 9, frames=2)
    np.testing.assert_array_equal(p.img1, s.frames[0])
    np.testing.assert_array_equal(p.img2, s.frames[1])
    np.testing.assert_array_equal(p.flow, s.flows[0])


def test_deterministic_by_seed():
    a, b, c = generate_pair(64, 80, 7), generate_pair(64, 80, 7), generate_pair(64, 80, 8)
    for f in ("img1", "img2", "flow", "occlusion", "valid"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f))
    assert not np.array_equal(a.img1, c.img1)
    assert not np.array_equal(a.flow, c.flow)
    g1, g2 = np.random.default_rng(3), np.random.default_rng(3)
    np.testing.assert_array_equal(generate_pair(32, 32, g1).img2, generate_pair(32, 32, g2).img2)


@pytest.mark.parametrize("h,w", [(4, 4), (5, 300), (17, 23), (300, 7), (33, 64)])
def test_sizes_and_types(h, w):
    p = generate_pair(h, w, 1)
    assert p.img1.shape == p.img2.shape == (h, w, 3) and p.img1.dtype == np.uint8
    assert p.flow.shape == (h, w, 2) and p.flow.dtype == np.float32 and np.isfinite(p.flow).all()
    assert p.occlusion.shape == p.valid.shape == (h, w)
    assert p.occlusion.dtype == p.valid.dtype == np.bool_ and p.valid.all()


def test_textured_enough_for_matching():
    p = generate_pair(96, 128, 4)
    gray = p.img1.astype(np.float32).mean(axis=2)
    gx = np.abs(np.diff(gray, axis=1))
    # most 8×8 blocks carry gradient (no flat areas where matching would be ambiguous)
    blocks = gx[:, :120].reshape(12, 8, 15, 8).mean(axis=(1, 3))
    assert (blocks > 1.0).mean() > 0.9


def test_no_motion_gives_identical_frames():
    p = generate_pair(48, 64, 2, max_motion=0.0, max_rotation=0.0, max_scale=0.0)
    assert np.abs(p.flow).max() < 1e-4
    np.testing.assert_array_equal(p.img1, p.img2)
    assert not p.occlusion.any()


def test_background_only_is_affine_and_out_of_frame_occludes():
    h, w = 60, 90
    p = generate_pair(h, w, 3, num_shapes=0, max_motion=20.0, background_motion=1.0)
    assert (p.layers == 0).all()
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    design = np.stack([xs.ravel(), ys.ravel(), np.ones(h * w)], 1)
    for c in range(2):
        coef, *_ = np.linalg.lstsq(design, p.flow[..., c].ravel().astype(np.float64), rcond=None)
        assert np.abs(design @ coef - p.flow[..., c].ravel()).max() < 1e-3
    tx, ty = xs + p.flow[..., 0], ys + p.flow[..., 1]
    outside = (tx < 0) | (tx > w - 1) | (ty < 0) | (ty > h - 1)
    assert outside.any()
    np.testing.assert_array_equal(p.occlusion, outside)


def test_shape_covering_background_occludes_it():
    seq = generate_sequence(120, 160, 21, frames=2, num_shapes=(3, 3), max_motion=15.0)
    lab0, lab1, flow, occ = seq.layers[0], seq.layers[1], seq.flows[0], seq.occlusions[0]
    h, w = lab0.shape
    ys, xs = np.mgrid[0:h, 0:w]
    tx = np.clip(np.rint(xs + flow[..., 0]).astype(int), 0, w - 1)
    ty = np.clip(np.rint(ys + flow[..., 1]).astype(int), 0, h - 1)
    # deep inside a shape in frame 2 (eroded, so rounding at the edges cannot matter)
    inner = cv2.erode((lab1 > 0).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    covered = (lab0 == 0) & inner[ty, tx]
    assert covered.sum() > 20
    assert occ[covered].all()
    # background landing deep inside background (in frame) stays visible
    bg_inner = cv2.erode((lab1 == 0).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    tx_f, ty_f = xs + flow[..., 0], ys + flow[..., 1]
    inside = (tx_f >= 0) & (tx_f <= w - 1) & (ty_f >= 0) & (ty_f <= h - 1)
    free = (lab0 == 0) & bg_inner[ty, tx] & inside
    assert free.sum() > 100 and not occ[free].any()


def test_noise_and_illumination_change_images_not_flow():
    base = generate_pair(64, 80, 5)
    noisy = generate_pair(64, 80, 5, noise=5.0)
    lit = generate_pair(64, 80, 5, illumination=0.3)
    np.testing.assert_array_equal(base.flow, noisy.flow)
    np.testing.assert_array_equal(base.flow, lit.flow)
    d = noisy.img1.astype(np.float32) - base.img1
    assert 3.0 < d.std() < 7.0  # sigma 5 grey levels (a little less where clipped)
    np.testing.assert_array_equal(base.img1, lit.img1)  # only later frames change brightness
    assert np.abs(lit.img2.astype(np.float32).mean() - base.img2.astype(np.float32).mean()) > 0.5


@pytest.mark.parametrize("shape", [(200, 300), (200, 300, 1), (200, 300, 3), (60, 60, 6)])
def test_gaussian_noise(shape):
    a = gaussian_noise(np.random.default_rng(0), shape, 3.0)
    assert a.shape == shape and a.dtype == np.float32
    np.testing.assert_array_equal(a, gaussian_noise(np.random.default_rng(0), shape, 3.0))
    rng = np.random.default_rng(0)
    assert not np.array_equal(gaussian_noise(rng, shape, 3.0), gaussian_noise(rng, shape, 3.0))
    per_channel = a.reshape(-1, shape[2] if len(shape) == 3 else 1)
    np.testing.assert_allclose(per_channel.std(axis=0), 3.0, rtol=0.05)  # every channel, not just the first
    np.testing.assert_allclose(per_channel.mean(axis=0), 0.0, atol=0.1)


def test_shape_count_and_motion_bound():
    p = generate_pair(64, 96, 6, num_shapes=5, max_motion=3.0, max_rotation=0.0, max_scale=0.0)
    assert p.meta["num_shapes"] == 5
    assert p.layers.max() <= 5
    # pure translations of at most 3 px per axis (background: 0.3 of that)
    assert np.abs(p.flow).max() <= 3.0 + 1e-4


@pytest.mark.parametrize("kwargs", [
    dict(height=3, width=10), dict(height=10, width=2.5), dict(height=True, width=10),
    dict(height=10, width=10, num_shapes=-1), dict(height=10, width=10, num_shapes=(3, 1)),
    dict(height=10, width=10, noise=-1.0), dict(height=10, width=10, max_motion=float("nan")),
    dict(height=10, width=10, illumination=2.0), dict(height=10, width=10, max_scale=1.0),
])
def test_bad_arguments_raise_input_error(kwargs):
    with pytest.raises(InputError):
        generate_pair(seed=0, **kwargs)


@pytest.mark.parametrize("seed", [-1, 1.5, "7", None])
def test_bad_seed(seed):
    with pytest.raises(InputError, match="seed"):
        generate_pair(16, 16, seed)


def test_bad_frame_count():
    with pytest.raises(InputError, match="frames"):
        generate_sequence(16, 16, 0, frames=1)


@given(h=st.integers(4, 48), w=st.integers(4, 48), seed=st.integers(0, 2 ** 32), n=st.integers(0, 6),
       motion=st.floats(0, 30))
def test_flow_and_occlusion_follow_the_layer_motions(h, w, seed, n, motion):
    """flow(p) = A_l·p − p for the frontmost layer l; occluded iff the target leaves the frame or a
    nearer layer is there in the next frame (recomputed here from meta and the layer maps)."""
    seq = generate_sequence(h, w, seed, frames=2, num_shapes=n, max_motion=motion)
    lab0, lab1, flow, occ = seq.layers[0], seq.layers[1], seq.flows[0], seq.occlusions[0]
    motions = seq.meta["motions"].astype(np.float64)  # L×2×3, layer 0 = background
    assert motions.shape == (n + 1, 2, 3) and lab0.max() <= n
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    a = motions[lab0]  # H×W×2×3
    expect_u = a[..., 0, 0] * xs + a[..., 0, 1] * ys + a[..., 0, 2] - xs
    expect_v = a[..., 1, 0] * xs + a[..., 1, 1] * ys + a[..., 1, 2] - ys
    np.testing.assert_allclose(flow[..., 0], expect_u, atol=1e-3)
    np.testing.assert_allclose(flow[..., 1], expect_v, atol=1e-3)
    tx, ty = xs + flow[..., 0], ys + flow[..., 1]
    outside = (tx < 0) | (tx > w - 1) | (ty < 0) | (ty > h - 1)
    ix = np.clip(np.floor(tx + 0.5).astype(int), 0, w - 1)
    iy = np.clip(np.floor(ty + 0.5).astype(int), 0, h - 1)
    expect_occ = outside | (lab1[iy, ix] > lab0)
    # nearest-neighbour ties (targets exactly half-way between pixels) may round either way
    tie = (np.abs(tx - np.floor(tx) - 0.5) < 1e-3) | (np.abs(ty - np.floor(ty) - 0.5) < 1e-3)
    np.testing.assert_array_equal(occ[~tie], expect_occ[~tie])


def test_backward_flow():
    p = generate_pair(96, 128, 12, max_motion=10.0, backward=True)
    assert p.flow_bw.shape == (96, 128, 2) and p.occlusion_bw.dtype == np.bool_
    err, err0 = _photometric_errors(p.img2, p.img1, p.flow_bw, ~p.occlusion_bw)
    assert err < 3.0 and err < 0.2 * err0
    # forward then backward returns home for visible pixels away from layer edges
    bw_at_target = _backward_warp(p.flow_bw, p.flow)[..., :2]
    interior = cv2.erode((~p.occlusion).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    assert interior.mean() > 0.5
    cycle = np.linalg.norm(p.flow + bw_at_target, axis=2)[interior]
    assert np.median(cycle) < 1e-2 and np.percentile(cycle, 95) < 0.1
    q = generate_pair(96, 128, 12, max_motion=10.0)
    assert q.flow_bw is None and q.occlusion_bw is None
    np.testing.assert_array_equal(q.flow, p.flow)  # asking for it changes nothing else


def test_extreme_options_stay_cheap_and_valid():
    p = generate_pair(32, 40, 1, max_motion=1e4, num_shapes=250, max_rotation=180.0, max_scale=0.9)
    assert np.isfinite(p.flow).all() and p.layers.max() <= 250
    # almost everything leaves the frame, and what leaves is occluded
    tx = np.arange(40)[None, :] + p.flow[..., 0]
    ty = np.arange(32)[:, None] + p.flow[..., 1]
    outside = (tx < 0) | (tx > 39) | (ty < 0) | (ty > 31)
    assert p.occlusion[outside].all()
