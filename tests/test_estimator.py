"""FlowEstimator: any input size in, full-resolution flow in pixels out (padding, cropping, the ×4
upsampling and the div_flow scale), input formats, bad input, and the shipped weights."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from flowmatch.errors import InputError
from flowmatch.estimator import FlowEstimator
from flowmatch.models.flownet import FlowNetS, _FlowNetBase


class PoolStub(_FlowNetBase):
    """A stand-in network with a known output: flow2 = 4×4 average of frame-1 channels 0, 1
    (divided by div_flow), every coarser scale its further average.  It checks the plumbing."""

    kind = "flownets"

    def __init__(self) -> None:
        super().__init__(normalisation="none")
        self.dummy = torch.nn.Parameter(torch.zeros(()))
        self.seen: list[tuple[int, ...]] = []

    def forward(self, img1, img2):
        self.seen.append(tuple(img1.shape))
        f = F.avg_pool2d(img1[:, :2], 4) / self.div_flow + self.dummy
        outs = [f]
        for _ in range(4):
            outs.append(F.avg_pool2d(outs[-1], 2, ceil_mode=True))
        return tuple(outs)


def ramp(h: int, w: int) -> np.ndarray:
    """float image in [0, 1]: channel 0 a ramp in x, channel 1 a ramp in y, channel 2 constant."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    return np.stack([x / 400.0, y / 400.0, np.full_like(x, 0.5)], axis=2)


@pytest.mark.parametrize("hw", [(64, 64), (37, 53), (100, 130), (130, 65), (2, 2)])
def test_padding_and_cropping_keep_alignment(hw):
    """With the pooling stub, flow ≈ div_flow · (image ramp ÷ div_flow): the padding and the ×4
    bilinear upsampling reproduce a linear ramp exactly away from the padded border, so any
    shift, flip or wrong scale shows up."""
    h, w = hw
    stub = PoolStub()
    est = FlowEstimator(stub)
    img = ramp(h, w)
    flow = est(img, img)
    assert flow.shape == (h, w, 2) and flow.dtype == np.float32
    assert all(s[2] % 64 == 0 and s[3] % 64 == 0 for s in stub.seen)
    inner = (slice(2, max(2, h - 4)), slice(2, max(2, w - 4)))
    np.testing.assert_allclose(flow[inner], img[..., :2][inner], atol=1e-5)


def test_resize_mode_and_scale_rescale_the_flow():
    """A network answering a constant flow c (in network pixels) gives c·(input/network size)."""

    class Const(PoolStub):
        def forward(self, img1, img2):
            self.seen.append(tuple(img1.shape))
            n, _, h, w = img1.shape
            outs = [torch.full((n, 2, -(-h // 2 ** k), -(-w // 2 ** k)), 1.0) * torch.tensor([3.0, -2.0]).view(1, 2, 1, 1)
                    / self.div_flow for k in range(2, 7)]
            return tuple(outs)

    stub = Const()
    img = np.zeros((100, 150, 3), np.uint8)
    flow = FlowEstimator(stub, size_mode="resize")(img, img)
    assert stub.seen[-1][2:] == (128, 128)
    np.testing.assert_allclose(flow[..., 0], 3.0 * 150 / 128, rtol=1e-5)
    np.testing.assert_allclose(flow[..., 1], -2.0 * 100 / 128, rtol=1e-5)
    flow = FlowEstimator(stub, scale=1.25)(img, img)  # 125×188 padded to 128×192
    assert stub.seen[-1][2:] == (128, 192) and flow.shape == (100, 150, 2)
    np.testing.assert_allclose(flow[..., 0], 3.0 * 150 / 188, rtol=1e-5)
    np.testing.assert_allclose(flow[..., 1], -2.0 * 100 / 125, rtol=1e-5)
    flow = FlowEstimator(stub)(img, img)  # pad mode, no scale: c unchanged, ×div_flow undone
    np.testing.assert_allclose(flow, np.broadcast_to([3.0, -2.0], flow.shape), rtol=1e-6)


def test_input_formats_agree():
    torch.manual_seed(0)
    est = FlowEstimator(FlowNetS(width=0.125))
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (45, 70, 3), dtype=np.uint8)
    b = np.roll(a, 2, axis=1)
    ref = est(a, b)
    assert ref.shape == (45, 70, 2)
    np.testing.assert_allclose(est(a.astype(np.float32) / 255, b.astype(np.float32) / 255), ref, atol=1e-4)
    np.testing.assert_allclose(est(a.astype(np.float32), b.astype(np.float32), value_range=255), ref, atol=1e-4)
    with pytest.raises(InputError, match="value_range=255"):  # [0, 255] floats are not guessed
        est(a.astype(np.float32), b.astype(np.float32))
    np.testing.assert_allclose(est(a.astype(np.uint16) * 257, b.astype(np.uint16) * 257), ref, atol=1e-4)
    ta, tb = torch.from_numpy(a).permute(2, 0, 1), torch.from_numpy(b).permute(2, 0, 1)
    t = est(ta[None], tb[None])
    assert t.shape == (1, 2, 45, 70)
    np.testing.assert_allclose(t[0].permute(1, 2, 0).numpy(), ref, atol=1e-4)
    single = est(ta, tb)  # one C×H×W frame -> one 2×H×W flow
    assert single.shape == (2, 45, 70) and torch.allclose(single, t[0])
    batch = est(np.stack([a, b]), np.stack([b, a]))
    assert batch.shape == (2, 45, 70, 2)
    np.testing.assert_allclose(batch[0], ref, atol=1e-4)
    rgba = np.concatenate([a, np.full((45, 70, 1), 255, np.uint8)], axis=2)
    np.testing.assert_allclose(est(rgba, np.concatenate([b, rgba[..., 3:]], axis=2)), ref, atol=1e-4)
    grey = est(a[..., 0], b[..., 0])
    assert grey.shape == (45, 70, 2)


def test_bf16_autocast_on_cpu_is_close():
    torch.manual_seed(0)
    model = FlowNetS(width=0.125)
    img = ramp(64, 96)
    f32 = FlowEstimator(model, precision="fp32")(img, img[::-1].copy())
    bf16 = FlowEstimator(model, precision="bf16")(img, img[::-1].copy())
    assert bf16.dtype == np.float32
    assert np.abs(bf16 - f32).max() < 0.05 * np.abs(f32).max() + 0.05
    with pytest.raises(InputError, match="fp16"):
        FlowEstimator(model, precision="fp16")


@pytest.mark.parametrize("fast_bf16, expected", [(False, "fp32"), (True, "bf16")])
def test_auto_precision_is_bf16_only_on_cpus_that_run_it_natively(monkeypatch, fast_bf16, expected):
    from flowmatch import precision

    monkeypatch.setattr(precision, "cpu_has_fast_bf16", lambda: fast_bf16)
    model = FlowNetS(width=0.125)
    assert FlowEstimator(model).precision == expected  # "auto" is the default
    assert FlowEstimator(model, precision="fp32").precision == "fp32"
    from flowmatch.methods.registry import get_method

    assert get_method("flownets").defaults["precision"] == "auto"


@pytest.mark.parametrize("bad1, bad2, match", [
    (np.zeros((40, 50, 3), np.uint8), np.zeros((40, 51, 3), np.uint8), "same shape"),
    (np.zeros((0, 50, 3), np.uint8), np.zeros((0, 50, 3), np.uint8), "pixels"),
    (np.zeros((1, 1, 3), np.uint8), np.zeros((1, 1, 3), np.uint8), "pixels"),
    (np.zeros((40, 50, 2), np.uint8), np.zeros((40, 50, 2), np.uint8), "channels"),
    (torch.zeros(1, 5, 40, 50), torch.zeros(1, 5, 40, 50), "channels"),
    (np.full((40, 50, 3), np.nan, np.float32), np.zeros((40, 50, 3), np.float32), "NaN"),
    (np.zeros((2, 3, 4, 5, 3)), np.zeros((2, 3, 4, 5, 3)), "shape"),
    ([[1, 2]], [[1, 2]], "numpy array or a torch tensor"),
    (np.zeros((40, 50, 3), np.uint8), None, "two frames"),
])
def test_bad_input_is_a_named_error(bad1, bad2, match):
    est = FlowEstimator(FlowNetS(width=0.125))
    with pytest.raises(InputError, match=match):
        est(bad1, bad2)


def test_bad_settings():
    model = FlowNetS(width=0.125)
    for kwargs in ({"size_mode": "crop"}, {"precision": "fp64"}, {"scale": 0}, {"scale": "2"}):
        with pytest.raises(InputError):
            FlowEstimator(model, **kwargs)
    with pytest.raises(InputError):
        FlowEstimator(torch.nn.Conv2d(3, 3, 1))


# Each shipped model at a frame size and motion range it handles (FlowNetS 256×192, up to 40 px; FlowNetC
# 192×128, up to 30 px): procedural pairs, which the photo-trained weights never saw.
SHIPPED_EVAL = {"flownets": (192, 256, 40.0), "flownetc": (128, 192, 30.0)}


@pytest.mark.parametrize("kind", ["flownets", "flownetc"])
def test_shipped_weights_beat_zero_flow(kind):
    """The shipped model on held-out procedural pairs beats zero flow clearly."""
    from flowmatch._paths import FLOWNET_WEIGHTS as SHIPPED
    from flowmatch._paths import weights_path
    from flowmatch.train.flownet import heldout_pairs
    import flowmatch

    if not os.path.isfile(weights_path(SHIPPED[kind])):
        pytest.skip(f"{kind} weights not shipped")
    h, w, motion = SHIPPED_EVAL[kind]
    pairs = heldout_pairs(3, h, w, seed=777, max_motion=motion, noise=2.0, illumination=0.1)
    ours, zero = [], []
    for p in pairs:
        flow = flowmatch.flow(p.img1, p.img2, method=kind)
        assert flow.shape == p.flow.shape
        ours.append(np.linalg.norm(flow - p.flow, axis=2).mean())
        zero.append(np.linalg.norm(p.flow, axis=2).mean())
    assert np.mean(ours) < 0.75 * np.mean(zero)
