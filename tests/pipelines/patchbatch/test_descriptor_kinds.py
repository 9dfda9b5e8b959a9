"""The descriptor kinds of the pipeline's first stage: DAISY and the combined network + raw patches."""
import numpy as np
import pytest
import torch

from flowmatch.errors import InputError
from flowmatch.pipelines.patchbatch.config import DescriptorConfig
from flowmatch.pipelines.patchbatch.descriptors import combine, daisy_descriptors, raw_patch_descriptors


def test_combined_distance_is_the_weighted_sum():
    g = torch.Generator().manual_seed(0)
    la, lb = torch.randn(5, 7, 32, generator=g) * 30, torch.randn(5, 7, 32, generator=g) * 30
    ra, rb = (torch.nn.functional.normalize(torch.randn(5, 7, 81, generator=g), dim=-1) for _ in range(2))
    w = 0.3
    ca, cb = combine(la, ra, w), combine(lb, rb, w)
    unit = lambda t: t / (t.norm(dim=-1, keepdim=True) + 1e-6)  # noqa: E731
    expected = (1 - w) * ((unit(la) - unit(lb)) ** 2).sum(-1) + w * ((ra - rb) ** 2).sum(-1)
    assert torch.allclose(((ca - cb) ** 2).sum(-1), expected, atol=1e-5)


def test_daisy_matches_scikit_image_inside_and_covers_every_pixel():
    from skimage.feature import daisy

    rng = np.random.default_rng(0)
    img = (rng.random((60, 70)) * 255).astype(np.uint8)
    d = daisy_descriptors(img, stride=1)
    assert d.shape == (60, 70, 104)
    assert torch.allclose(d.norm(dim=-1), torch.ones(60, 70), atol=1e-4)
    g = (img - img.mean()) / img.std()
    ref = daisy(g.astype(np.float32), step=1, radius=8, rings=2, histograms=6, orientations=8, normalization="l2")
    # scikit-image's own output at pixel (8 + i, 8 + j) is ours at the same pixel; the padding only
    # changes the smoothed orientation maps near the border.
    assert np.allclose(d[8:-8, 8:-8].numpy()[15:-15, 15:-15], ref[15:-15, 15:-15], atol=1e-4)
    assert daisy_descriptors(img, stride=2).shape == (30, 35, 104)
    # the stride grid is computed directly: the same values as every pixel, subsampled (odd sizes too)
    odd = img[:59, :69]
    torch.testing.assert_close(daisy_descriptors(odd, stride=3), daisy_descriptors(odd, stride=1)[::3, ::3])


def test_descriptor_kind_is_checked():
    with pytest.raises(InputError, match="descriptor must be one of"):
        DescriptorConfig(kind="sift")
    with pytest.raises(InputError, match="raw_weight"):
        DescriptorConfig(kind="combined", raw_weight=1.5)
    with pytest.raises(InputError, match="combine_with"):
        DescriptorConfig(kind="combined", combine_with="sift")
    assert raw_patch_descriptors(np.zeros((20, 20), np.uint8)).shape == (20, 20, 81)


def _raw_reference(img: np.ndarray, stride: int, r: int = 4) -> np.ndarray:
    """Raw patches by explicit loops in float64: 3×3 box blur (replicate edges), reflect-101 padding,
    then each (2r+1)² window of the stride grid minus its mean over its norm (+1e-3)."""
    g = (img - img.mean()) / img.std()
    e = np.pad(g, 1, mode="edge")
    box = sum(e[i:i + g.shape[0], j:j + g.shape[1]] for i in range(3) for j in range(3)) / 9.0
    p = np.pad(box, r, mode="reflect")  # numpy "reflect" is reflect-101
    k = 2 * r + 1
    out = np.empty((-(-g.shape[0] // stride), -(-g.shape[1] // stride), k * k))
    for i, y in enumerate(range(0, g.shape[0], stride)):
        for j, x in enumerate(range(0, g.shape[1], stride)):
            v = p[y:y + k, x:x + k].ravel()
            v = v - v.mean()
            out[i, j] = v / (np.linalg.norm(v) + 1e-3)
    return out


@pytest.mark.parametrize("stride", [1, 2, 3, 5])
@pytest.mark.parametrize("shape", [(23, 31), (9, 10), (40, 17)])
def test_raw_patches_match_an_explicit_loop(stride, shape):
    rng = np.random.default_rng(stride)
    img = (rng.random(shape) * 255).astype(np.uint8)
    d = raw_patch_descriptors(img, stride=stride)
    np.testing.assert_allclose(d.numpy(), _raw_reference(img.astype(np.float64), stride), atol=2e-5)


def test_upsampled_field_keeps_samples_and_interpolates_linearly():
    from flowmatch.pipelines.patchbatch.descriptors import upsample_field

    g = torch.Generator().manual_seed(0)
    f = torch.randn(4, 5, 3, generator=g)
    for factor, size in ((2, (7, 9)), (2, (8, 10)), (4, (13, 17)), (3, (10, 12))):
        u = upsample_field(f, factor, size)
        assert u.shape == (*size, 3)
        # independent reference: numpy's 1-D linear interpolation along each axis (edges held)
        ys, xs = np.arange(size[0]) / factor, np.arange(size[1]) / factor
        a = f.numpy()
        rows = np.stack([np.stack([np.interp(ys, np.arange(4), a[:, j, c]) for j in range(5)], 1)
                         for c in range(3)], -1)
        ref = np.stack([np.stack([np.interp(xs, np.arange(5), rows[i, :, c]) for i in range(size[0])], 0)
                        for c in range(3)], -1)
        np.testing.assert_allclose(u.numpy(), ref, atol=1e-5)
        n = min(4, -(-size[0] // factor)), min(5, -(-size[1] // factor))
        assert torch.equal(u[::factor, ::factor][: n[0], : n[1]], f[: n[0], : n[1]])


def test_network_on_a_coarser_grid_than_patchmatch():
    from flowmatch.pipelines.patchbatch.descriptors import compute_descriptors, upsample_field
    from flowmatch.pipelines.patchbatch.network import descriptors, load_descriptor_model

    with pytest.raises(InputError, match="multiple of descriptor_stride"):
        DescriptorConfig(stride=2, net_stride=3)
    rng = np.random.default_rng(0)
    a, b = ((rng.random((70, 90, 3)) * 255).astype(np.uint8) for _ in range(2))
    net = load_descriptor_model()
    # fp32 pinned: "auto" is bf16 on a CPU with AVX-512 BF16, and this test is about the grids, not precision
    da, _ = compute_descriptors(a, b, DescriptorConfig(kind="patchbatch", stride=2, net_stride=4, precision="fp32"), net)
    assert da.shape == (35, 45, net.dim)
    coarse = descriptors(a, net, stride=4)
    torch.testing.assert_close(da, upsample_field(coarse, 2, (35, 45)))
    torch.testing.assert_close(da[::2, ::2], coarse)


@pytest.mark.parametrize("factor", [1, 2, 4])
def test_combined_pca_keeps_the_distances_of_the_explicit_combined_field(factor):
    """A combined field of rank 5 (learned part rank 3, raw part rank 2): its 5-D PCA, computed without
    building the field, keeps every distance between the explicitly built fields of the two frames."""
    from flowmatch.pipelines.patchbatch.descriptors import combined_pca, upsample_field

    g = torch.Generator().manual_seed(factor)
    bl, br = torch.randn(3, 32, generator=g), torch.randn(2, 81, generator=g)
    h, w = 13, 17
    hn, wn = -(-h // factor), -(-w // factor)
    learned = [torch.randn(hn, wn, 3, generator=g) @ bl + 0.5 * bl[0] for _ in range(2)]
    raw = [torch.nn.functional.normalize(torch.randn(h, w, 2, generator=g) @ br, dim=-1) for _ in range(2)]
    wt = 0.4
    unit = [l / (l.norm(dim=-1, keepdim=True) + 1e-6) for l in learned]
    full = [torch.cat([(1 - wt) ** 0.5 * upsample_field(u, factor, (h, w)), wt ** 0.5 * r], -1)
            for u, r in zip(unit, raw)]
    ya, yb = combined_pca(learned, raw, factor, wt, 5, seed=3)
    assert ya.shape == yb.shape == (h, w, 5)
    d_full = torch.cdist(full[0].reshape(-1, 113), full[1].reshape(-1, 113))
    d_red = torch.cdist(ya.reshape(-1, 5), yb.reshape(-1, 5))
    torch.testing.assert_close(d_red, d_full, atol=2e-4, rtol=1e-4)


def test_combined_with_daisy_is_the_weighted_sum_of_network_and_daisy_distances():
    """combine_with="daisy": the combined field's squared distances are (1-w)·(unit network) + w·(DAISY),
    with both parts computed independently here."""
    from flowmatch.pipelines.patchbatch.descriptors import compute_descriptors
    from flowmatch.pipelines.patchbatch.network import descriptors, load_descriptor_model

    rng = np.random.default_rng(2)
    a, b = ((rng.random((48, 64, 3)) * 255).astype(np.uint8) for _ in range(2))
    net = load_descriptor_model()
    w = 0.4
    ca, cb = compute_descriptors(a, b, DescriptorConfig(kind="combined", combine_with="daisy", stride=2, raw_weight=w,
                                                        precision="fp32"), net)
    assert ca.shape == (24, 32, net.dim + 104)
    na, nb = (torch.nn.functional.normalize(descriptors(x, net, stride=2), dim=-1) for x in (a, b))
    ya, yb = daisy_descriptors(a, stride=2), daisy_descriptors(b, stride=2)
    expected = (1 - w) * ((na - nb) ** 2).sum(-1) + w * ((ya - yb) ** 2).sum(-1)
    torch.testing.assert_close(((ca - cb) ** 2).sum(-1), expected, atol=1e-4, rtol=1e-4)
