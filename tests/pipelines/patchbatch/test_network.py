"""Dense descriptor extraction equals the network's own per-patch output at every pixel."""
import numpy as np
import pytest
import torch

import flowmatch
from flowmatch._paths import DESCRIPTOR_WEIGHTS
from flowmatch.pipelines.patchbatch import network as dd
from flowmatch.checkpoint import save_checkpoint
from flowmatch.image import normalize_gray, to_gray
from flowmatch.errors import CheckpointError, InputError
from flowmatch.models.patchbatch import PatchBatchNet


def random_net(variant="dense", width=0.25, seed=0):
    """A random network with random eval-mode BN statistics (so folding BN is really exercised)."""
    torch.manual_seed(seed)
    net = PatchBatchNet(variant, width=width)
    if variant == "dense":
        for bn in net.bns:
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 2.0)
            bn.weight.data.uniform_(0.5, 1.5)
            bn.bias.data.uniform_(-0.3, 0.3)
    return net.eval()


def independent_patches(img, coords, p):
    """62×62 (or P×P) neighbourhoods cut with NumPy: reflect-101 border, rows y-(P-1)//2 .. ."""
    before = (p - 1) // 2
    g = np.pad(normalize_gray(to_gray(img)), ((before, p - 1 - before),) * 2, mode="reflect")
    return torch.from_numpy(np.stack([g[y:y + p, x:x + p] for y, x in coords]))[:, None]


def test_dense_equals_per_patch_forward_at_every_pixel():
    net = random_net(width=0.125)
    img = np.random.default_rng(0).integers(0, 256, (35, 50, 3)).astype(np.uint8)
    got = flowmatch.descriptors(img, net, tile=32)  # several tiles, neither side a multiple of 16
    assert got.shape == (35, 50, net.dim) and got.dtype == torch.float32
    coords = [(y, x) for y in range(35) for x in range(50)]
    with torch.no_grad():
        ref = net(independent_patches(img, coords, 62)).reshape(35, 50, -1)
    torch.testing.assert_close(got, ref, atol=2e-5, rtol=1e-4)


def test_per_patch_mode_matches_independent_cut_for_paper_variant():
    net = random_net("paper", width=0.125)
    img = np.random.default_rng(1).random((30, 34)).astype(np.float32)
    got = dd.descriptors(img, net, mode="patch", stride=3, chunk=50)
    coords = [(y, x) for y in range(0, 30, 3) for x in range(0, 34, 3)]
    with torch.no_grad():
        ref = net(independent_patches(img, coords, 51)).reshape(10, 12, -1)
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("stride", [2, 3, 4, 8, 16])
def test_output_stride(stride):
    net = random_net(width=0.125)
    img = np.random.default_rng(2).integers(0, 256, (40, 45)).astype(np.uint8)
    full = dd.descriptors(img, net, tile=32)
    got = dd.descriptors(img, net, tile=32, stride=stride)
    assert got.shape == (-(-40 // stride), -(-45 // stride), net.dim)
    torch.testing.assert_close(got, full[::stride, ::stride], atol=2e-5, rtol=1e-4)


def test_half_output_and_tile_independence():
    net = random_net(width=0.125)
    img = np.random.default_rng(3).integers(0, 256, (48, 64)).astype(np.uint8)
    a = dd.descriptors(img, net, tile=16)
    b = dd.descriptors(img, net, tile=1000)
    torch.testing.assert_close(a, b, atol=2e-5, rtol=1e-4)
    h = dd.descriptors(img, net, tile=32, half=True)
    assert h.dtype == torch.float16
    torch.testing.assert_close(h.float(), a, atol=2e-2, rtol=2e-3)


def test_tiles_bound_the_work_per_call(monkeypatch):
    """Memory is bounded by the tile: no tile input exceeds (tile + 61)² pixels."""
    seen = []
    real = dd._dense_tile
    monkeypatch.setattr(dd, "_dense_tile", lambda x, *a: (seen.append(tuple(x.shape)), real(x, *a))[1])
    dd.descriptors(np.zeros((100, 130), np.uint8) + np.arange(130, dtype=np.uint8), random_net(width=0.125),
                   tile=32)
    assert len(seen) == 4 * 5 and max(s[2] for s in seen) <= 93 and max(s[3] for s in seen) <= 93


def test_bad_inputs():
    dense, paper = random_net(width=0.125), random_net("paper", width=0.125)
    img = np.zeros((40, 40), np.uint8)
    with pytest.raises(InputError, match="dense variant"):
        dd.descriptors(img, paper)
    with pytest.raises(InputError, match="at least 32×32"):
        dd.descriptors(np.zeros((20, 40), np.uint8), dense)
    with pytest.raises(InputError, match="stride"):
        dd.descriptors(img, dense, stride=0)
    with pytest.raises(InputError, match="tile"):
        dd.descriptors(img, dense, tile=8)
    with pytest.raises(InputError, match="mode"):
        dd.descriptors(img, dense, mode="fast")
    with pytest.raises(InputError, match="H×W or H×W×3"):
        dd.descriptors(np.zeros((40, 40, 5)), dense)
    with pytest.raises(InputError, match="PatchBatchNet"):
        dd.descriptors(img, torch.nn.Linear(2, 2))


def test_load_descriptor_model_roundtrip_and_errors(tmp_path):
    net = random_net(width=0.125)
    path = tmp_path / "w.safetensors"
    save_checkpoint(path, "patchbatch", net.config(), net.state_dict(), half=True)
    loaded = dd.load_descriptor_model(str(path))
    assert not loaded.training and loaded.config() == net.config()
    img = np.random.default_rng(4).integers(0, 256, (32, 32)).astype(np.uint8)
    torch.testing.assert_close(dd.descriptors(img, loaded), dd.descriptors(img, net), atol=0.05, rtol=0.02)
    with pytest.raises(CheckpointError, match="does not exist"):
        dd.load_descriptor_model(str(tmp_path / "missing.safetensors"))
    save_checkpoint(tmp_path / "other.safetensors", "flownets", {}, {"w": torch.zeros(1)})
    with pytest.raises(CheckpointError, match="flownets"):
        dd.load_descriptor_model(str(tmp_path / "other.safetensors"))


def test_shipped_weights_load():
    if not __import__("os").path.isfile(__import__("flowmatch._paths")._paths.weights_path(DESCRIPTOR_WEIGHTS["dense"])):
        pytest.skip("no shipped dense weights")
    net = dd.load_descriptor_model()
    assert net.variant == "dense"
    out = dd.descriptors(np.random.default_rng(5).integers(0, 256, (40, 48, 3)).astype(np.uint8), net)
    assert out.shape == (40, 48, net.dim) and torch.isfinite(out).all()


def test_bf16_precision_is_close_to_fp32():
    net = random_net(width=0.125)
    img = np.random.default_rng(6).integers(0, 256, (40, 40)).astype(np.uint8)
    ref = dd.descriptors(img, net)
    low = dd.descriptors(img, net, precision="bf16")
    assert low.dtype == torch.float32 and low.shape == ref.shape
    assert float((low - ref).norm() / ref.norm()) < 0.03
    with pytest.raises(InputError, match="precision"):
        dd.descriptors(img, net, precision="fp8")
    with pytest.raises(InputError, match="bf16"):
        dd.descriptors(img, net, mode="patch", precision="bf16")


def test_shipped_width_one_dense_net_is_the_papers_512_d_and_dense_evaluable():
    """The "dense-512" weights load by name as the 512-D dense net; its dense field equals the network's own
    forward on one patch per pixel at sampled pixels."""
    path = __import__("flowmatch._paths")._paths.weights_path(DESCRIPTOR_WEIGHTS["dense-512"])
    if not __import__("os").path.isfile(path):
        pytest.skip("no shipped dense-512 weights")
    net = dd.load_descriptor_model("dense-512")
    assert (net.variant, net.width, net.dim) == ("dense", 1.0, 512)
    img = np.random.default_rng(5).integers(0, 256, (40, 44)).astype(np.uint8)
    field = dd.descriptors(img, net, precision="fp32")
    assert field.shape == (40, 44, 512) and torch.isfinite(field).all()
    per_patch = dd.descriptors(img, net, mode="patch", stride=9)
    torch.testing.assert_close(field[::9, ::9], per_patch, atol=2e-3, rtol=2e-3)
