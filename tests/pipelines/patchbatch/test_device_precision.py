"""The PatchBatch pipeline's device plumbing (descriptors, PatchMatch, consistency check on the chosen
device) and the descriptor precision choice ("auto" = bf16 only where the device runs it natively)."""
import numpy as np
import pytest
import torch

import flowmatch
from flowmatch import _ext
from flowmatch import precision as precision_mod
from flowmatch.errors import InputError
from flowmatch.pipelines.patchbatch import DescriptorConfig, consistency_check, patchbatch_flow, sparse_matches
from flowmatch.pipelines.patchbatch import descriptors as descriptors_mod
from flowmatch.pipelines.patchbatch.pipeline import check_device

pytestmark = pytest.mark.skipif(not _ext.available(), reason="flowmatch._C not built")
HAS_CUDA = torch.cuda.is_available()


def _pair(H=80, W=112, u=3, v=-2, seed=0):
    import cv2

    rng = np.random.default_rng(seed)
    big = cv2.GaussianBlur(rng.uniform(0, 255, (H + 20, W + 20)).astype(np.float32), (0, 0), 1.5)
    big = cv2.normalize(big, None, 0, 255, cv2.NORM_MINMAX)
    a, b = big[10:10 + H, 10:10 + W], big[10 - v:10 - v + H, 10 - u:10 - u + W]
    return (np.repeat(a[..., None], 3, 2).astype(np.uint8), np.repeat(b[..., None], 3, 2).astype(np.uint8))


def test_explicit_cpu_device_gives_the_default_result():
    a, b = _pair()
    ref = patchbatch_flow(a, b, preset="fast", descriptor="raw")
    np.testing.assert_array_equal(patchbatch_flow(a, b, preset="fast", descriptor="raw", device="cpu"), ref)
    np.testing.assert_array_equal(flowmatch.flow(a, b, method="patchbatch-fast", descriptor="raw",
                                                 device=torch.device("cpu")), ref)


@pytest.mark.parametrize("device", ["tpu", "cuda:x", "meta", 3.5])
def test_unknown_devices_are_input_errors(device):
    with pytest.raises(InputError):
        check_device(device)


@pytest.mark.skipif(HAS_CUDA, reason="checks the refusal on a machine without a GPU")
@pytest.mark.parametrize("device", ["cuda", "cuda:1"])
def test_cuda_without_a_gpu_is_a_named_error(device):
    a, b = _pair()
    with pytest.raises(InputError, match="no CUDA device"):
        patchbatch_flow(a, b, preset="fast", device=device)
    with pytest.raises(InputError, match="no CUDA device"):
        flowmatch.flow(a, b, method="patchbatch-fast", device=device)


@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA device")
@pytest.mark.parametrize("descriptor", ["patchbatch", "raw"])
def test_cuda_pipeline_is_close_to_the_cpu_one(descriptor):
    a, b = _pair()
    cpu = patchbatch_flow(a, b, preset="fast", descriptor=descriptor)
    gpu, st = patchbatch_flow(a, b, preset="fast", descriptor=descriptor, device="cuda", return_stages=True)
    assert st["flow_ab"].device.type == "cuda"
    inner = np.s_[12:-12, 12:-12]
    assert np.median(np.linalg.norm(gpu[inner] - np.float32([3, -2]), axis=2)) < 0.25
    assert np.median(np.linalg.norm(gpu[inner] - cpu[inner], axis=2)) < 0.25


def test_consistency_check_keeps_the_device_and_agrees_with_numpy():
    rng = np.random.default_rng(1)
    fab = rng.normal(0, 2, (20, 30, 2)).astype(np.float32)
    fba = rng.normal(0, 2, (20, 30, 2)).astype(np.float32)
    ok, err = consistency_check(torch.from_numpy(fab), torch.from_numpy(fba), 1.5)
    assert ok.device.type == "cpu" and err.dtype == torch.float32
    ys, xs = np.mgrid[0:20, 0:30]
    tx, ty = np.rint(xs + fab[..., 0]).astype(int), np.rint(ys + fab[..., 1]).astype(int)
    inside = (tx >= 0) & (tx < 30) & (ty >= 0) & (ty < 20)
    ref = np.linalg.norm(fab + fba[ty.clip(0, 19), tx.clip(0, 29)], axis=2)
    np.testing.assert_allclose(err.numpy()[inside], ref[inside], rtol=1e-6)
    assert np.isinf(err.numpy()[~inside]).all()
    np.testing.assert_array_equal(ok.numpy(), inside & (ref <= 1.5))
    if HAS_CUDA:
        ok_g, err_g = consistency_check(torch.from_numpy(fab).cuda(), torch.from_numpy(fba).cuda(), 1.5)
        assert ok_g.device.type == "cuda"
        np.testing.assert_array_equal(ok_g.cpu().numpy(), ok.numpy())
        m = sparse_matches(torch.from_numpy(fab).cuda(), torch.from_numpy(fba).cuda(), threshold=1.5)
        assert m.points.device.type == "cpu" and len(m) == int(ok.sum())


def test_descriptor_precision_option_is_checked():
    with pytest.raises(InputError, match="precision"):
        DescriptorConfig(precision="fp16")
    a, b = _pair()
    with pytest.raises(InputError, match="precision"):
        patchbatch_flow(a, b, preset="fast", precision="int8")


@pytest.mark.parametrize("fast_bf16, expected", [(False, "fp32"), (True, "bf16")])
def test_auto_descriptor_precision_follows_the_cpu(monkeypatch, fast_bf16, expected):
    """"auto" asks flowmatch.precision: fp32 on an AVX2-only CPU (this one), bf16 where native."""
    monkeypatch.setattr(precision_mod, "cpu_has_fast_bf16", lambda: fast_bf16)
    seen = []
    real = descriptors_mod.descriptors

    def spy(img, net, **kw):
        seen.append(kw["precision"])
        return real(img, net, **kw)

    monkeypatch.setattr(descriptors_mod, "descriptors", spy)
    a, b = _pair(H=72, W=72)
    da, db = descriptors_mod.compute_descriptors(a, b, DescriptorConfig(stride=4))
    assert seen == [expected, expected]
    assert da.shape == db.shape == (18, 18, da.shape[-1])
    if expected == "fp32":
        ref = real(a, None, stride=4, precision="fp32")
        torch.testing.assert_close(da, ref)
