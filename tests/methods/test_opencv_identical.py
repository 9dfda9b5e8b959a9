"""The OpenCV baselines give OpenCV's own result, bit for bit, for the same file (issue 14 item 2).

The reference is what a user of OpenCV writes: cv2.imread, cv2.cvtColor(..., COLOR_BGR2GRAY), the
solver with its default parameters.  flowmatch is called on the file's path."""
import os

import cv2
import numpy as np
import pytest

import flowmatch


def _gray_pair(d: str, crop: tuple[int, int] | None = None):
    a, b = (cv2.cvtColor(cv2.imread(os.path.join(d, f)), cv2.COLOR_BGR2GRAY) for f in ("img1.png", "img2.png"))
    return (a, b) if crop is None else tuple(np.ascontiguousarray(x[:crop[0], :crop[1]]) for x in (a, b))


@pytest.fixture(scope="module")
def market(real_data):
    return os.path.join(real_data, "sintel", "market_5_final_0009")


def test_dis_medium_equals_opencv_on_the_sintel_file(market):
    ga, gb = _gray_pair(market)
    ref = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM).calc(ga, gb, None)
    ours = flowmatch.flow(os.path.join(market, "img1.png"), os.path.join(market, "img2.png"), method="dis-medium")
    assert ours.dtype == np.float32 and np.array_equal(ours, ref)


def test_dis_presets_and_farneback_equal_opencv_on_rgb_arrays(market, tmp_path):
    ga, gb = _gray_pair(market, (200, 320))
    rgb = [cv2.cvtColor(cv2.imread(os.path.join(market, f)), cv2.COLOR_BGR2RGB)[:200, :320] for f in ("img1.png", "img2.png")]
    for name, preset in (("dis-ultrafast", cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST), ("dis-fast", cv2.DISOPTICAL_FLOW_PRESET_FAST)):
        ref = cv2.DISOpticalFlow_create(preset).calc(ga, gb, None)
        assert np.array_equal(flowmatch.flow(*rgb, method=name), ref), name
    ref = cv2.calcOpticalFlowFarneback(ga, gb, None, 0.5, 5, 15, 3, 5, 1.2, 0)
    assert np.array_equal(flowmatch.flow(*rgb, method="farneback"), ref)
    # the same frames as a torch C×H×W pair and as [0, 1] floats are the same 8-bit data
    import torch
    t = [torch.from_numpy(x).permute(2, 0, 1) for x in rgb]
    assert np.array_equal(flowmatch.flow(*t, method="farneback").permute(1, 2, 0).numpy(), ref)


def test_deepflow_equals_opencv(market):
    if not hasattr(cv2, "optflow"):
        pytest.skip("cv2.optflow (opencv-contrib) is not installed")
    ga, gb = _gray_pair(market, (96, 128))
    ref = cv2.optflow.createOptFlow_DeepFlow().calc(ga, gb, None)
    a, b = (np.repeat(g[..., None], 3, axis=2) for g in (ga, gb))
    assert np.array_equal(flowmatch.flow(a, b, method="deepflow"), ref)
