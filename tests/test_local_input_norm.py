"""Locally contrast-normalised network input (PatchBatchNet input_norm="local"): the normalisation
against a SciPy reference, its invariances, the dense pass and the training sampler seeing the same
image, and the setting travelling with the weights."""
import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

import flowmatch
from flowmatch.checkpoint import load_checkpoint, save_checkpoint
from flowmatch.data.patch_pairs import PatchPairSampler, patch_offsets
from flowmatch.errors import CheckpointError, InputError
from flowmatch.image import (LOCAL_NORM_FLOOR, LOCAL_NORM_SIGMA, local_normalize, normalize_gray, normalized_gray,
                             to_gray)
from flowmatch.models.patchbatch import PatchBatchNet
from flowmatch.pipelines.patchbatch.network import load_descriptor_model
from flowmatch.train.common import load_init_weights


def scipy_reference(gray, sigma=LOCAL_NORM_SIGMA, floor=LOCAL_NORM_FLOOR):
    """The same definition with SciPy's Gaussian (mode "mirror" = reflect-101), in float64."""
    g = normalize_gray(gray).astype(np.float64)
    # OpenCV sizes a float kernel to 4 sigma each side (65 taps for sigma 8); SciPy truncate=4 is the same support
    blur = lambda x: gaussian_filter(x, sigma, mode="mirror", truncate=4.0)  # noqa: E731
    c = g - blur(g)
    return c / np.sqrt(blur(c * c) + floor * floor)


def test_local_normalize_matches_scipy():
    img = np.random.default_rng(0).random((70, 90)).astype(np.float32)
    img = gaussian_filter(img, 1.5) * np.linspace(0.05, 1.0, 90)[None]  # contrast fading to the left
    got = normalized_gray(img, norm="local")
    np.testing.assert_allclose(got, scipy_reference(img), atol=2e-3)


def test_local_normalize_is_invariant_to_gain_and_offset_and_evens_out_contrast():
    rng = np.random.default_rng(1)
    g = gaussian_filter(rng.random((80, 160)), 1.0).astype(np.float32)
    np.testing.assert_allclose(normalized_gray(3.0 * g + 7.0, norm="local"), normalized_gray(g, norm="local"),
                               atol=1e-4)
    # left half at a tenth of the contrast (haze, shade): after local normalisation both halves have
    # about the same spread away from the seam, before it they differ tenfold
    faded = g.copy()
    faded[:, :80] = 0.5 + 0.1 * (faded[:, :80] - 0.5)
    glob, loc = normalized_gray(faded), normalized_gray(faded, norm="local")
    assert glob[:, 10:60].std() < 0.2 * glob[:, 100:150].std()
    assert 0.8 < loc[:, 10:60].std() / loc[:, 100:150].std() < 1.25


def test_bad_norm_names_are_input_errors():
    with pytest.raises(InputError):
        normalized_gray(np.zeros((20, 20)), norm="lokal")
    for bad in ({"sigma": 0.0}, {"sigma": 1e6}, {"floor": 0.0}, {"floor": float("nan")}):
        with pytest.raises(InputError):
            local_normalize(np.zeros((20, 20), np.float32), **bad)
    with pytest.raises(InputError):
        local_normalize(np.zeros((4, 20, 20), np.float32))
    with pytest.raises(InputError):
        PatchBatchNet("dense", width=0.125, input_norm="per-patch")
    with pytest.raises(InputError):
        PatchPairSampler([(np.zeros((80, 80)), np.zeros((80, 80)), np.zeros((80, 80, 2), np.float32))],
                         patch_size=21, input_norm="x")


def _local_net(seed=0):
    torch.manual_seed(seed)
    net = PatchBatchNet("dense", width=0.125, input_norm="local")
    for bn in net.bns:  # random eval-mode BN, as tests/pipelines/patchbatch/test_network.py does
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.data.uniform_(0.5, 1.5)
        bn.bias.data.uniform_(-0.3, 0.3)
    return net.eval()


def test_dense_pass_of_a_local_net_is_its_forward_on_locally_normalised_patches():
    net = _local_net()
    # contrast fading to the left, so that local and global normalisation differ
    fade = np.linspace(0.1, 1.0, 48)[None, :, None]
    img = (128 + (np.random.default_rng(2).random((40, 48, 3)) - 0.5) * 255 * fade).astype(np.uint8)
    got = flowmatch.descriptors(img, net, tile=32)
    before, after = patch_offsets(62)
    ref_img = normalized_gray(img, norm="local")  # checked against SciPy above
    pad = np.pad(ref_img, ((before, after),) * 2, mode="reflect")
    coords = [(y, x) for y in range(0, 40, 5) for x in range(0, 48, 5)]
    patches = torch.from_numpy(np.stack([pad[y:y + 62, x:x + 62] for y, x in coords]).astype(np.float32))[:, None]
    with torch.no_grad():
        ref = net(patches)
    torch.testing.assert_close(got[::5, ::5].reshape(-1, net.dim), ref, atol=2e-5, rtol=1e-4)
    # and a global net on the same image sees something else
    glob = PatchBatchNet("dense", width=0.125)
    glob.load_state_dict(net.state_dict())
    spread = got.reshape(-1, net.dim).std(0).mean()
    assert (flowmatch.descriptors(img, glob.eval(), tile=32) - got).abs().max() > 3 * spread


def test_sampler_cuts_training_patches_from_the_same_image_as_the_dense_pass():
    rng = np.random.default_rng(3)
    img1 = (gaussian_filter(rng.random((90, 100)), 1.0) * 255).astype(np.uint8)
    img2 = np.roll(img1, (2, -3), axis=(0, 1))
    flow = np.zeros((90, 100, 2), np.float32)
    flow[..., 0], flow[..., 1] = -3, 2
    s = PatchPairSampler([(img1, img2, flow)], patch_size=21, augment=False, input_norm="local", seed=0)
    xy = np.array([[10, 12], [50, 40], [99, 89], [0, 0]], np.float32)
    before, after = patch_offsets(21)
    for image, src in ((1, img1), (2, img2)):
        pad = np.pad(scipy_reference(to_gray(src)), ((before, after),) * 2, mode="reflect")
        ref = np.stack([pad[y:y + 21, x:x + 21] for x, y in xy.astype(int)])
        np.testing.assert_allclose(s.patches_at(0, xy, image)[:, 0].numpy(), ref, atol=2e-3)
    # augmented anchors are the clean crop under an affine change plus small noise: no gamma, which
    # would need intensities and would clip the negative half of normalised values
    aug = PatchPairSampler([(img1, img2, flow)], patch_size=21, input_norm="local", seed=0)
    t = aug.sample(64)
    clean = aug.patches_at(0, t.xy1, 1).reshape(64, -1).double()
    got = t.anchor.reshape(64, -1).double()
    for c, g in zip(clean, got):
        design = torch.stack([c, torch.ones_like(c)], 1)
        fit = torch.linalg.lstsq(design, g[:, None]).solution
        assert float((g - (design @ fit)[:, 0]).std()) < 0.04  # noise sigma <= 0.025 for anchors


def test_input_norm_travels_with_the_weights_and_old_files_stay_global(tmp_path):
    net = _local_net()
    path = tmp_path / "local.safetensors"
    save_checkpoint(str(path), "patchbatch", net.config(), net.state_dict(), half=True)
    assert load_descriptor_model(str(path)).input_norm == "local"
    glob = PatchBatchNet("dense", width=0.125)
    assert "input_norm" not in glob.config()  # files from before the option still describe global nets
    gpath = tmp_path / "global.safetensors"
    save_checkpoint(str(gpath), "patchbatch", glob.config(), glob.state_dict())
    assert load_descriptor_model(str(gpath)).input_norm == "global"
    # --init may change the input normalisation, never the tensors' shapes
    fresh = PatchBatchNet("dense", width=0.125, input_norm="local")
    load_init_weights(str(gpath), "patchbatch", fresh, fresh.config(), "--width", ignore=("input_norm",))
    assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), glob.state_dict().values()))
    with pytest.raises(CheckpointError):
        load_init_weights(str(gpath), "patchbatch", fresh, fresh.config(), "--width")
    wide = PatchBatchNet("dense", width=0.25, input_norm="local")
    with pytest.raises(CheckpointError):
        load_init_weights(str(gpath), "patchbatch", wide, wide.config(), "--width", ignore=("input_norm",))
    assert load_checkpoint(str(path), "patchbatch").config["input_norm"] == "local"
