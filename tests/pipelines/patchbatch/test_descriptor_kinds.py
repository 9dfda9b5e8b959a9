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


def test_descriptor_kind_is_checked():
    with pytest.raises(InputError, match="descriptor must be one of"):
        DescriptorConfig(kind="sift")
    with pytest.raises(InputError, match="raw_weight"):
        DescriptorConfig(kind="combined", raw_weight=1.5)
    assert raw_patch_descriptors(np.zeros((20, 20), np.uint8)).shape == (20, 20, 81)
