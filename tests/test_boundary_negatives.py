"""Motion-boundary negatives of the patch sampler: anchors with another motion in their context, the
negative where that motion would carry the anchor (flowmatch.data.patch_pairs)."""
import numpy as np
import pytest

from flowmatch.data.patch_pairs import PatchPairSampler, patch_offsets
from flowmatch.errors import InputError
from flowmatch.train.patchbatch import PatchBatchTrainConfig

P = 21
R = patch_offsets(P)[0]  # context radius searched for the other motion


def two_motion_pair(h=90, w=120, split=60, left=(2.0, 1.0), right=(-12.0, 3.0), seed=0):
    """A frame whose columns < split move by `left` and the rest by `right` (px, x first)."""
    rng = np.random.default_rng(seed)
    img1 = rng.integers(0, 256, (h, w)).astype(np.uint8)
    img2 = rng.integers(0, 256, (h, w)).astype(np.uint8)
    flow = np.zeros((h, w, 2), np.float32)
    flow[:, :split] = left
    flow[:, split:] = right
    return img1, img2, flow


def brute_force_context_motions(flow, x, y, r, neg_max):
    """Every p + flow(q) for q in p's (2r+1)² context whose flow differs from p's by more than neg_max
    and lands inside the frame: the set a boundary negative must come from."""
    h, w = flow.shape[:2]
    out = set()
    for qy in range(max(0, y - r), min(h, y + r + 1)):
        for qx in range(max(0, x - r), min(w, x + r + 1)):
            if np.linalg.norm(flow[qy, qx] - flow[y, x]) > neg_max:
                nx, ny = x + flow[qy, qx, 0], y + flow[qy, qx, 1]
                if 0 <= nx <= w - 1 and 0 <= ny <= h - 1:
                    out.add((round(float(nx), 4), round(float(ny), 4)))
    return out


def test_boundary_anchors_are_near_the_other_motion_and_negatives_follow_it():
    img1, img2, flow = two_motion_pair()
    s = PatchPairSampler([(img1, img2, flow)], patch_size=P, augment=False, seed=0, boundary_negatives=1.0)
    fr = s.frames[0]
    # the boundary anchors are exactly the usable pixels within R columns of the split
    ys, xs = np.divmod(fr.boundary, flow.shape[1])
    assert set(np.unique(xs)) == set(range(60 - R, 60 + R))
    t = s.sample(300, np.random.default_rng(1))
    assert (np.abs(t.xy1[:, 0] - 59.5) <= R + 0.5).all()
    followed = 0
    for i in range(300):
        x, y = t.xy1[i].astype(int)
        allowed = brute_force_context_motions(flow, x, y, R, 8.0)
        if (round(float(t.xyn[i, 0]), 4), round(float(t.xyn[i, 1]), 4)) in allowed:
            # the other motion is farther from the true match than any near negative
            assert np.linalg.norm(t.xyn[i] - t.xy2[i]) > 8.0
            followed += 1
        else:
            # no other motion found by the random search (or it would carry p out of img2, bottom
            # rows): an ordinary near negative, never anything else
            assert np.linalg.norm(t.xyn[i] - t.xy2[i]) <= 8.0 + 1e-4
    assert followed > 250


def test_shares_of_boundary_far_and_near_negatives():
    img1, img2, flow = two_motion_pair(w=200, split=100)
    s = PatchPairSampler([(img1, img2, flow)], patch_size=P, augment=False, seed=0, far_negatives=0.2,
                         boundary_negatives=0.3)
    t = s.sample(4000, np.random.default_rng(2))
    d = np.linalg.norm(t.xyn - t.xy2, axis=1)
    offset = flow[t.xy1[:, 1].astype(int), t.xy1[:, 0].astype(int)]
    # a boundary negative sits exactly at p + the other layer's motion
    other = np.where((offset == [2.0, 1.0]).all(1)[:, None], [-12.0, 3.0], [2.0, 1.0])
    is_bnd = np.linalg.norm(t.xyn - (t.xy1 + other), axis=1) < 1e-4
    assert abs(is_bnd.mean() - 0.3) < 0.03
    near = d <= 8.0 + 1e-4
    assert abs(near.mean() - 0.5) < 0.04  # what is neither boundary nor far (far ones may land near, rarely)


def test_no_motion_boundary_gives_near_negatives_and_zero_share_keeps_the_stream():
    img1, img2, flow = two_motion_pair(right=(2.0, 1.0))  # one motion everywhere
    s = PatchPairSampler([(img1, img2, flow)], patch_size=P, augment=False, seed=0, boundary_negatives=0.5)
    assert s.frames[0].boundary.size == 0
    t = s.sample(200, np.random.default_rng(0))
    d = np.linalg.norm(t.xyn - t.xy2, axis=1)
    inside = ((t.xyn > 0) & (t.xyn < np.array([119, 89]))).all(1)
    assert (d[inside] >= 1 - 1e-4).all() and (d[inside] <= 8 + 1e-4).all()
    # share 0 draws the very same triplets as a sampler without the option (old runs resume unchanged)
    img1, img2, flow = two_motion_pair()
    a = PatchPairSampler([(img1, img2, flow)], patch_size=P, far_negatives=0.1, seed=0).sample(
        64, np.random.default_rng(5))
    b = PatchPairSampler([(img1, img2, flow)], patch_size=P, far_negatives=0.1, seed=0,
                         boundary_negatives=0.0).sample(64, np.random.default_rng(5))
    np.testing.assert_array_equal(a.xyn, b.xyn)
    np.testing.assert_array_equal(a.anchor.numpy(), b.anchor.numpy())


def test_invalid_pixels_are_not_anchors_and_nan_flow_is_never_a_negative():
    img1, img2, flow = two_motion_pair()
    flow[:, 70:] = np.nan  # the right layer's flow unknown: no other motion can be read from it
    valid = np.isfinite(flow).all(2)
    s = PatchPairSampler([(img1, img2, flow, valid)], patch_size=P, augment=False, seed=0, boundary_negatives=1.0)
    t = s.sample(300, np.random.default_rng(3))
    assert np.isfinite(t.xyn).all() and np.isfinite(t.anchor.numpy()).all()
    assert (t.xy1[:, 0] < 70).all()


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan"), "0.3"])
def test_bad_boundary_share_is_a_named_error(bad):
    img1, img2, flow = two_motion_pair()
    with pytest.raises(InputError, match="boundary_negatives"):
        PatchPairSampler([(img1, img2, flow)], patch_size=P, boundary_negatives=bad)


def test_shares_summing_above_one_are_refused():
    img1, img2, flow = two_motion_pair()
    with pytest.raises(InputError, match="at most 1"):
        PatchPairSampler([(img1, img2, flow)], patch_size=P, far_negatives=0.6, boundary_negatives=0.5)
    with pytest.raises(InputError, match="boundary-negatives"):
        PatchBatchTrainConfig(boundary_negatives=1.2).validate()
    with pytest.raises(InputError, match="at most 1"):
        PatchBatchTrainConfig(far_negatives=0.5, boundary_negatives=0.6).validate()
    assert "boundary_negatives" in PatchBatchTrainConfig.FIXED  # a resume may not change the batches
