"""The patch-triplet sampler: positives at p + flow(p), negatives 1-8 px away, masks respected."""
import numpy as np
import pytest

from flowmatch.data.patch_pairs import PatchPairSampler, patch_offsets
from flowmatch.image import normalize_gray, to_gray
from flowmatch.errors import InputError


def shifted_pair(h=80, w=90, dx=3, dy=-2, seed=0):
    """img2(x + dx, y + dy) = img1(x, y): a global integer translation with known flow."""
    rng = np.random.default_rng(seed)
    big = rng.integers(0, 256, (h + 20, w + 20)).astype(np.uint8)
    img1 = big[10:10 + h, 10:10 + w]
    img2 = big[10 - dy:10 - dy + h, 10 - dx:10 - dx + w]
    flow = np.zeros((h, w, 2), np.float32)
    flow[..., 0], flow[..., 1] = dx, dy
    return img1, img2, flow


def reference_patch(gray, x, y, p):
    """The P×P patch of the image normalised by its mean/std, reflect-101 padded, around (x, y)."""
    before, after = patch_offsets(p)
    pad = np.pad(normalize_gray(gray), ((before, after), (before, after)), mode="reflect")
    return pad[y:y + p, x:x + p]


def test_positive_equals_anchor_on_a_translation_and_negatives_are_near():
    img1, img2, flow = shifted_pair()
    s = PatchPairSampler([(img1, img2, flow)], patch_size=21, augment=False, seed=3)
    t = s.sample(200)
    np.testing.assert_allclose(t.xy2, t.xy1 + np.array([3, -2], np.float32))
    g1 = to_gray(img1)
    for i in range(0, 200, 17):
        x, y = t.xy1[i].astype(int)
        np.testing.assert_allclose(t.anchor[i, 0].numpy(), reference_patch(g1, x, y, 21), atol=1e-4)
    # Interior anchors: img2 around the match is exactly img1 around the anchor.
    inner = ((t.xy2 >= 11) & (t.xy2 <= np.array([90 - 12, 80 - 12]))).all(1) & \
            ((t.xy1 >= 11) & (t.xy1 <= np.array([90 - 12, 80 - 12]))).all(1)
    assert inner.sum() > 50
    # Both frames share the same mean/std up to the shifted border, so compare after re-normalising.
    a, p = t.anchor[inner].numpy(), t.positive[inner].numpy()
    st1, st2 = s.frames[0].stats1, s.frames[0].stats2
    np.testing.assert_allclose(a * st1[1] + st1[0], p * st2[1] + st2[0], atol=1e-4)
    dist = np.hypot(*(t.xyn - t.xy2).T)
    inside = ((t.xyn > 0) & (t.xyn < np.array([89, 79]))).all(1)  # not clipped at the border
    assert (dist[inside] >= 1 - 1e-4).all() and (dist[inside] <= 8 + 1e-4).all()
    assert dist[inside].max() > 6 and dist[inside].min() < 3


def test_subpixel_positive_is_bilinear():
    rng = np.random.default_rng(1)
    img1 = rng.random((40, 50)).astype(np.float32)
    flow = np.full((40, 50, 2), [0.25, 0.5], np.float32)
    s = PatchPairSampler([(img1, img1, flow)], patch_size=5, augment=False, seed=0)
    t = s.sample(30)
    g = normalize_gray(img1)
    for i in range(30):
        x, y = t.xy1[i].astype(int)
        if not (3 <= x <= 45 and 3 <= y <= 35):
            continue
        patch = g[y - 2:y + 4, x - 2:x + 4]  # 6×6 around, bilinear at +0.25, +0.5
        ref = (0.75 * 0.5 * patch[:-1, :-1] + 0.25 * 0.5 * patch[:-1, 1:]
               + 0.75 * 0.5 * patch[1:, :-1] + 0.25 * 0.5 * patch[1:, 1:])
        np.testing.assert_allclose(t.positive[i, 0].numpy(), ref, atol=1e-4)


def test_masks_restrict_anchors_and_far_negatives():
    img1, img2, flow = shifted_pair()
    valid = np.zeros(flow.shape[:2], bool)
    valid[20:40, 30:60] = True
    occ = np.zeros_like(valid)
    occ[20:30, 30:60] = True
    s = PatchPairSampler([{"img1": img1, "img2": img2, "flow": flow, "valid": valid, "occlusion": occ}],
                         patch_size=11, far_negatives=1.0, seed=1)
    t = s.sample(300)
    x, y = t.xy1[:, 0].astype(int), t.xy1[:, 1].astype(int)
    assert (valid[y, x] & ~occ[y, x]).all()
    assert (np.hypot(*(t.xyn - t.xy2).T) > 8).all()


def test_weights_choose_frames():
    img1, img2, flow = shifted_pair()
    s = PatchPairSampler([(img1, img2, flow)] * 3, patch_size=11, weights=[0, 1, 3], seed=0)
    counts = np.bincount(s.sample(400).frame, minlength=3)
    assert counts[0] == 0 and 60 < counts[1] < 140


def test_augmentation_changes_patches_but_not_positions():
    img1, img2, flow = shifted_pair()
    import numpy.random as npr
    a = PatchPairSampler([(img1, img2, flow)], patch_size=11, augment=True).sample(50, npr.default_rng(5))
    b = PatchPairSampler([(img1, img2, flow)], patch_size=11, augment=False).sample(50, npr.default_rng(5))
    np.testing.assert_array_equal(a.xy1, b.xy1)
    assert not np.allclose(a.positive.numpy(), b.positive.numpy(), atol=1e-3)


def test_works_on_generator_pairs():
    from flowmatch.data.synthetic import generate_pair

    pair = generate_pair(96, 96, seed=4)
    s = PatchPairSampler([pair], patch_size=51, seed=0)
    t = s.sample(16)
    assert t.anchor.shape == t.positive.shape == t.negative.shape == (16, 1, 51, 51)
    x, y = t.xy1[:, 0].astype(int), t.xy1[:, 1].astype(int)
    assert not pair.occlusion[y, x].any()
    np.testing.assert_allclose(t.xy2, t.xy1 + pair.flow[y, x], atol=1e-5)


def test_works_on_real_cases(real_data):
    from flowmatch.train.patchbatch_data import heldout_real_frames

    cases = [c for c in heldout_real_frames(real_data) if "kitti" in c.name or "alley_1_clean" in c.name]
    assert len(cases) == 2
    s = PatchPairSampler(cases, patch_size=62, augment=False, seed=0)
    t = s.sample(64)
    for i in range(64):
        c = cases[t.frame[i]]
        x, y = t.xy1[i].astype(int)
        assert c.valid[y, x] and (c.occlusion is None or not c.occlusion[y, x])


def test_bad_inputs():
    img1, img2, flow = shifted_pair()
    with pytest.raises(InputError, match="no valid"):
        PatchPairSampler([(img1, img2, flow, np.zeros(flow.shape[:2], bool))])
    with pytest.raises(InputError, match="share H×W"):
        PatchPairSampler([(img1, img2[:-1], flow)])
    with pytest.raises(InputError, match="too small"):
        PatchPairSampler([(img1[:30, :30], img2[:30, :30], flow[:30, :30])], patch_size=51)
    with pytest.raises(InputError, match="empty"):
        PatchPairSampler([])
    with pytest.raises(InputError, match="neg_min"):
        PatchPairSampler([(img1, img2, flow)], neg_min=5, neg_max=2)
    with pytest.raises(InputError, match="weights"):
        PatchPairSampler([(img1, img2, flow)], patch_size=11, weights=[-1])


def test_works_on_sintel_and_kitti_readers(tmp_path):
    """Tiny Sintel and KITTI 2012 layouts written from generated pairs, read by flowmatch.data.datasets."""
    from flowmatch import io
    from flowmatch.data.synthetic import generate_pair
    from flowmatch.data.sources import TrainingSources

    pairs = [generate_pair(64, 80, seed=s) for s in range(2)]
    sintel = tmp_path / "sintel" / "training"
    for sub in ("clean/s1", "flow/s1", "occlusions/s1"):
        (sintel / sub).mkdir(parents=True)
    io.write_image(sintel / "clean/s1/frame_0001.png", pairs[0].img1)
    io.write_image(sintel / "clean/s1/frame_0002.png", pairs[0].img2)
    io.write_flow(sintel / "flow/s1/frame_0001.flo", pairs[0].flow)
    io.write_mask(sintel / "occlusions/s1/frame_0001.png", pairs[0].occlusion)
    kitti = tmp_path / "kitti" / "training"
    for sub in ("colored_0", "flow_occ", "flow_noc"):
        (kitti / sub).mkdir(parents=True)
    io.write_image(kitti / "colored_0/000000_10.png", pairs[1].img1)
    io.write_image(kitti / "colored_0/000000_11.png", pairs[1].img2)
    sparse = np.zeros((64, 80), bool)
    sparse[::3, ::2] = True
    for sub in ("flow_occ", "flow_noc"):
        io.write_flow(kitti / sub / "000000_10.png", pairs[1].flow, sparse)
    src = TrainingSources.from_specs([f"sintel:{tmp_path / 'sintel'}", f"kitti2012:{tmp_path / 'kitti'}"])
    drawn = {}
    for k in range(20):  # two sources of weight 1: both come up
        f = src.draw(np.random.default_rng(k))
        drawn[f.name] = f
    frames = sorted(drawn.values(), key=lambda f: f.name)
    assert len(frames) == 2
    s = PatchPairSampler(frames, patch_size=21, augment=False, seed=0)
    t = s.sample(200)
    for i in range(200):
        x, y = t.xy1[i].astype(int)
        p = pairs[0] if frames[t.frame[i]].name.startswith("s1") else pairs[1]
        np.testing.assert_allclose(t.xy2[i], t.xy1[i] + p.flow[y, x], atol=1 / 64 + 1e-5)  # KITTI PNG: 1/64 px
        if p is pairs[0]:
            assert not p.occlusion[y, x]
        else:
            assert sparse[y, x]
