"""FlowAugment: the augmented flow still maps augmented img1 onto augmented img2; exact special cases."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from flowmatch.data.augment import FlowAugment
from flowmatch.data.datasets import FlowSample
from flowmatch.data.synthetic import generate_pair
from flowmatch.errors import InputError

# geometry only, exactly given parameters (a range (x, x) draws x)
NO_PHOTO = dict(photometric=False)


def _warp_error(img1: np.ndarray, img2: np.ndarray, flow: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    """Mean |img1 − img2(p + flow)| over mask and the same without flow (reference warp: cv2.remap)."""
    h, w = flow.shape[:2]
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    warped = cv2.remap(img2.astype(np.float32), xs + flow[..., 0], ys + flow[..., 1], cv2.INTER_LINEAR,
                       borderMode=cv2.BORDER_REPLICATE)
    e = np.abs(warped - img1).mean(axis=2)[mask]
    e0 = np.abs(img2.astype(np.float32) - img1).mean(axis=2)[mask]
    return float(e.mean()), float(e0.mean())


@pytest.fixture(scope="module")
def pair():
    return generate_pair(128, 160, 3, max_motion=10.0)


@pytest.mark.parametrize("kwargs", [
    dict(),                                              # FlowNet ranges
    dict(relative=(0.03, 3.0, (0.95, 1.05))),             # img2 transformed differently
    dict(keep_inside=False, scale=(0.8, 1.2)),            # parts outside the original frame
])
def test_augmented_flow_maps_img1_onto_img2(pair, kwargs):
    aug = FlowAugment(crop=(96, 128), **NO_PHOTO, **kwargs)
    for seed in range(3):
        out = aug(pair, np.random.default_rng(seed))
        assert out.img1.shape == (96, 128, 3) and out.flow.shape == (96, 128, 2)
        vis = out.valid & ~out.occlusion
        assert vis.mean() > 0.5
        err, err0 = _warp_error(out.img1, out.img2, out.flow, vis)
        assert err < 3.0 and err < 0.2 * err0, (seed, err, err0)


def test_sparse_splatting_keeps_correspondences(pair):
    rng = np.random.default_rng(0)
    sparse_valid = rng.random(pair.valid.shape) < 0.3  # KITTI-like: 30 % of the pixels known
    sample = FlowSample(pair.img1, pair.img2, np.where(sparse_valid[..., None], pair.flow, 0).astype(np.float32),
                        sparse_valid, pair.occlusion)
    aug = FlowAugment(crop=(96, 128), **NO_PHOTO)
    out = aug(sample, np.random.default_rng(4))
    n_in = sparse_valid.sum() * (96 * 128) / (128 * 160)
    # splatting neither invents nor loses many points (zoom > 1 merges a few)
    assert 0.15 * n_in < out.valid.sum() <= sparse_valid.sum()
    vis = out.valid & ~out.occlusion
    err, err0 = _warp_error(out.img1, out.img2, out.flow, vis)
    assert err < 3.5 and err < 0.25 * err0
    # the dense path on the full flow agrees at the splatted pixels (up to the sub-pixel snap)
    dense = FlowAugment(crop=(96, 128), sparse=False, **NO_PHOTO)(pair, np.random.default_rng(4))
    both = out.valid & dense.valid & ~out.occlusion
    d = np.linalg.norm(out.flow[both] - dense.flow[both], axis=1)
    assert np.median(d) < 0.05 and np.percentile(d, 90) < 0.6


def test_sparse_auto_detection(pair):
    sparse_valid = np.zeros(pair.valid.shape, bool)
    sparse_valid[::3, ::3] = True
    sample = FlowSample(pair.img1, pair.img2, pair.flow, sparse_valid, None)
    out = FlowAugment(**NO_PHOTO, rotate=0.0, translate=0.0, scale=(2.0, 2.0), keep_inside=False)(sample, 0)
    # bilinear resampling at zoom 2 would mark whole 2×2 neighbourhoods valid; splatting cannot
    assert out.valid.mean() <= sparse_valid.mean() * 4 * 1.01
    assert out.valid.mean() < 0.5


def test_rotation_by_90_degrees_of_constant_flow():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (33, 33, 3), dtype=np.uint8)
    flow = np.broadcast_to(np.float32([3.0, 1.0]), (33, 33, 2)).copy()
    sample = FlowSample(img, img.copy(), flow, np.ones((33, 33), bool))
    aug = FlowAugment(rotate=(90.0, 90.0), translate=0.0, scale=(1.0, 1.0), keep_inside=False, **NO_PHOTO)
    out = aug(sample, rng)
    # rotating the picture by +90° (x right, y down: clockwise on screen) = np.rot90(k=-1)
    np.testing.assert_array_equal(out.img1, np.rot90(img, -1))
    np.testing.assert_allclose(out.flow[out.valid], np.broadcast_to([-1.0, 3.0], (out.valid.sum(), 2)), atol=1e-4)
    assert out.valid.all()


@pytest.mark.parametrize("s", [0.5, 2.0])
def test_scale_scales_flow(s):
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
    flow = np.broadcast_to(np.float32([-2.0, 0.5]), (40, 48, 2)).copy()
    sample = FlowSample(img, img, flow, np.ones((40, 48), bool))
    out = FlowAugment(rotate=0.0, translate=0.0, scale=(s, s), keep_inside=False, **NO_PHOTO)(sample, rng)
    assert out.valid.any()
    np.testing.assert_allclose(out.flow[out.valid], np.broadcast_to([-2.0 * s, 0.5 * s], (out.valid.sum(), 2)),
                               atol=1e-4)
    if s < 1:  # shrinking: the border comes from outside the original frame and is invalid
        assert not out.valid.all()


def test_out_of_frame_source_is_invalid():
    img = np.full((20, 40, 3), 128, np.uint8)
    flow = np.zeros((20, 40, 2), np.float32)
    sample = FlowSample(img, img, flow, np.ones((20, 40), bool))
    # view shifted by half the size in x and y: p = q + (20, 10), so only q < (20, 10) has a source
    out = FlowAugment(translate=(0.5, 0.5), rotate=0.0, scale=(1.0, 1.0), keep_inside=False, **NO_PHOTO)(sample, 0)
    expect = np.zeros((20, 40), bool)
    expect[:10, :20] = True
    np.testing.assert_array_equal(out.valid, expect)
    assert (out.flow[~out.valid] == 0).all()


def test_invalidate_out_of_frame_targets():
    img = np.full((20, 40, 3), 128, np.uint8)
    flow = np.zeros((20, 40, 2), np.float32)
    flow[..., 0] = 10.0
    sample = FlowSample(img, img, flow, np.ones((20, 40), bool))
    geo = dict(translate=0.0, rotate=0.0, scale=(1.0, 1.0), **NO_PHOTO)
    assert FlowAugment(**geo)(sample, 0).valid.all()
    out = FlowAugment(invalidate_out_of_frame=True, **geo)(sample, 0)
    assert out.valid[:, :30].all() and not out.valid[:, 30:].any()


def test_deterministic_given_generator(pair):
    aug = FlowAugment(crop=(64, 96))
    a = aug(pair, np.random.default_rng(7))
    b = aug(pair, np.random.default_rng(7))
    c = aug(pair, np.random.default_rng(8))
    for f in ("img1", "img2", "flow", "valid", "occlusion"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f))
    assert not np.array_equal(a.img1, c.img1)


def test_photometric_only_keeps_flow_and_treats_both_images_alike(pair):
    aug = FlowAugment(geometric=False, noise=(0.0, 0.0))
    same = FlowSample(pair.img1, pair.img1.copy(), pair.flow, pair.valid, pair.occlusion)
    out = aug(same, np.random.default_rng(2))
    np.testing.assert_array_equal(out.flow, pair.flow)
    np.testing.assert_array_equal(out.valid, pair.valid)
    np.testing.assert_array_equal(out.img1, out.img2)  # shared parameters
    assert np.abs(out.img1.astype(int) - pair.img1).mean() > 1.0
    ind = FlowAugment(geometric=False, noise=(0.0, 0.0), independent=True)(same, np.random.default_rng(2))
    assert not np.array_equal(ind.img1, ind.img2)


def test_photometric_identity_and_gamma():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    sample = FlowSample(img, img, None, None)
    ident = dict(geometric=False, colour=(1.0, 1.0), gamma=(1.0, 1.0), contrast=(0.0, 0.0), brightness=0.0,
                 noise=(0.0, 0.0))
    np.testing.assert_array_equal(FlowAugment(**ident)(sample, rng).img1, img)
    out = FlowAugment(**{**ident, "gamma": (2.0, 2.0)})(sample, rng).img1
    expect = np.clip(np.round(255.0 * (img / 255.0) ** 2), 0, 255)
    assert np.abs(out.astype(int) - expect).max() <= 1
    # the same factor on every channel changes nothing: pixels keep their channel sum
    np.testing.assert_array_equal(FlowAugment(**{**ident, "colour": (2.0, 2.0)})(sample, rng).img1, img)
    # distinct factors: hue changes, the channel sum stays (FlowNet's brightness-compensated colour)
    m = np.array([0.5, 1.0, 2.0])
    params = {"colour": m.astype(np.float32), "gamma": 1.0, "brightness": 0.0, "contrast": 0.0, "noise": 0.0}
    out = FlowAugment._apply_photometric(img, params, rng)
    x = img / 255.0
    expect = x * m * (x.sum(2) / ((x * m).sum(2) + 0.01))[..., None]
    expect = np.clip(np.round(np.clip(expect, 0, 1) * 255.0), 0, 255)
    assert np.abs(out.astype(int) - expect).max() <= 1
    unclipped = (expect < 255).all(axis=2)
    sums = np.abs(out.astype(int).sum(2) - img.astype(int).sum(2))[unclipped]
    assert sums.max() <= 4  # 3 roundings and the +0.01 guard
    # contrast: a factor 1 + c about mid-grey
    out = FlowAugment._apply_photometric(img, {**params, "colour": np.ones(3, np.float32), "contrast": -0.5}, rng)
    assert np.abs(out.astype(int) - np.round(127.5 + (img.astype(float) - 127.5) * 0.5)).max() <= 1


def test_noise_level():
    img = np.full((64, 64, 3), 128, np.uint8)
    aug = FlowAugment(geometric=False, colour=(1.0, 1.0), gamma=(1.0, 1.0), contrast=(0.0, 0.0), brightness=0.0,
                      noise=(0.04, 0.04))
    out = aug(FlowSample(img, img, None, None), 0)
    assert abs(out.img1.astype(np.float32).std() / 255.0 - 0.04) < 0.005
    assert not np.array_equal(out.img1, out.img2)  # noise is drawn per image


def test_random_crop_without_geometry(pair):
    out = FlowAugment(crop=(64, 80), geometric=False, photometric=False)(pair, 3)
    t = out.meta["augment"]["t1"]
    np.testing.assert_allclose(t[:2, :2], np.eye(2))
    ox, oy = -t[0, 2], -t[1, 2]
    # a plain crop: pixels of the crop are the original ones at the drawn offset (integer offsets exact)
    if float(ox).is_integer() and float(oy).is_integer():
        np.testing.assert_array_equal(out.img1, pair.img1[int(oy):int(oy) + 64, int(ox):int(ox) + 80])
    np.testing.assert_allclose(out.flow[out.valid],
                               cv2.warpAffine(pair.flow, t[:2], (80, 64), flags=cv2.INTER_LINEAR)[out.valid],
                               atol=1e-3)
    assert out.valid.all()


@pytest.mark.parametrize("kwargs", [dict(crop=(0, 10)), dict(crop=(10,)), dict(scale=(0.0, 1.0)),
                                    dict(scale=(2.0, 1.0)), dict(contrast=(-1.5, 0.0)), dict(brightness=-1.0),
                                    dict(noise=(-0.1, 0.0)), dict(rotate="x"), dict(sparse="maybe"),
                                    dict(relative=(0.1, 2.0))])
def test_bad_options(kwargs):
    with pytest.raises(InputError):
        FlowAugment(**kwargs)


def test_bad_samples(pair):
    aug = FlowAugment()
    with pytest.raises(InputError, match="differ"):
        aug(FlowSample(pair.img1, pair.img2[:-1], None, None), 0)
    with pytest.raises(InputError, match="uint8"):
        aug(FlowSample(pair.img1.astype(np.float32), pair.img2, None, None), 0)
    with pytest.raises(InputError, match="flow"):
        aug(FlowSample(pair.img1, pair.img2, pair.flow[..., :1], None), 0)
    with pytest.raises(InputError, match="valid"):
        aug(FlowSample(pair.img1, pair.img2, pair.flow, pair.valid.astype(np.uint8)), 0)
    bad = pair.flow.copy()
    bad[0, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        aug(FlowSample(pair.img1, pair.img2, bad, np.ones_like(pair.valid)), 0)
    with pytest.raises(InputError):
        aug(object(), 0)


def test_keep_inside_redraws_until_the_crop_fits(pair):
    aug = FlowAugment(crop=(96, 128), **NO_PHOTO)
    fits = [aug(pair, np.random.default_rng(s)).valid.all() for s in range(8)]
    assert all(fits)
    loose = FlowAugment(crop=(96, 128), keep_inside=False, **NO_PHOTO)
    assert not all(loose(pair, np.random.default_rng(s)).valid.all() for s in range(8))


@given(angle=st.floats(-180, 180), scale=st.floats(0.5, 2.5), u=st.floats(-20, 20), v=st.floats(-20, 20),
       sparse=st.booleans())
def test_constant_flow_transforms_like_a_vector(angle, scale, u, v, sparse):
    """Under a shared similarity transform a constant flow f becomes s·R(angle)·f, dense or splatted."""
    img = np.zeros((24, 32, 3), np.uint8)
    flow = np.broadcast_to(np.float32([u, v]), (24, 32, 2)).copy()
    sample = FlowSample(img, img, flow, np.ones((24, 32), bool))
    aug = FlowAugment(rotate=(angle, angle), scale=(scale, scale), translate=0.0, keep_inside=False,
                      sparse=sparse, **NO_PHOTO)
    out = aug(sample, 0)
    a = np.radians(angle)
    expect = scale * np.array([np.cos(a) * u - np.sin(a) * v, np.sin(a) * u + np.cos(a) * v])
    assert out.valid.any()
    np.testing.assert_allclose(out.flow[out.valid], np.broadcast_to(expect, (out.valid.sum(), 2)),
                               atol=1e-3 * (1 + abs(expect).max()))
    assert (out.flow[~out.valid] == 0).all()


def test_fallback_to_a_centre_crop_when_nothing_fits(pair):
    # zooming out by 2 never fits inside the original: the sample is only centre-cropped
    aug = FlowAugment(crop=(96, 128), scale=(0.5, 0.5), max_tries=5, **NO_PHOTO)
    out = aug(pair, 0)
    np.testing.assert_array_equal(out.img1, pair.img1[16:112, 16:144])
    np.testing.assert_allclose(out.flow, pair.flow[16:112, 16:144], atol=1e-4)
    assert out.valid.all()
