"""Stage 5 (refinement): the DIS settings of RefinementConfig reach OpenCV, checked against the
OpenCV calls written out by hand."""
import cv2
import numpy as np
import pytest

from flowmatch.errors import InputError
from flowmatch.pipelines.patchbatch.config import RefinementConfig
from flowmatch.pipelines.patchbatch.refinement import refine


def _pair(H=96, W=128, shift=(2.5, -1.5), seed=3):
    rng = np.random.default_rng(seed)
    big = cv2.GaussianBlur(rng.uniform(0, 255, (H + 16, W + 16)).astype(np.float32), (0, 0), 2.0)
    g1 = big[8:8 + H, 8:8 + W]
    xs, ys = np.meshgrid(np.arange(W, dtype=np.float32), np.arange(H, dtype=np.float32))
    # frame 2 at x + u shows what frame 1 shows at x: sample frame 1 at x - u
    g2 = cv2.remap(big, xs + 8 - shift[0], ys + 8 - shift[1], cv2.INTER_LINEAR)
    # whole grey values: refine's grey conversion is then the identity, as in _by_hand
    return tuple(np.repeat(np.rint(g)[..., None], 3, 2).astype(np.float32) for g in (g1, g2))


def _by_hand(flow, img1, img2, cfg):
    g1, g2 = img1[..., 0].astype(np.uint8), img2[..., 0].astype(np.uint8)
    d = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    d.setFinestScale(cfg.dis_finest_scale)
    d.setPatchStride(cfg.dis_patch_stride)
    d.setGradientDescentIterations(cfg.dis_iterations)
    dis = d.calc(g1, g2, flow.copy())
    near = np.linalg.norm(dis - flow, axis=2) < cfg.dis_max_change
    out = np.where(near[..., None], dis, flow).astype(np.float32)
    vr = cv2.VariationalRefinement_create()
    vr.setFixedPointIterations(cfg.iterations)
    vr.setSorIterations(5)
    vr.setAlpha(cfg.alpha)
    vr.setDelta(5.0)
    vr.setGamma(10.0)
    return vr.calc(g1, g2, out)


@pytest.mark.parametrize("settings", [{}, {"dis_finest_scale": 0, "dis_patch_stride": 6, "dis_iterations": 12},
                                      {"dis_finest_scale": 2, "dis_patch_stride": 8, "dis_iterations": 1}])
def test_refine_equals_the_opencv_calls(settings):
    a, b = _pair()
    start = np.zeros(a.shape[:2] + (2,), np.float32)
    start[..., 0] = 2.0  # a rough guess, as the interpolation hands over
    cfg = RefinementConfig(**settings)
    np.testing.assert_array_equal(refine(start, a, b, cfg), _by_hand(start, a, b, cfg))


def test_full_size_dis_recovers_a_subpixel_shift_better():
    """DIS at full size (finest scale 0) resolves the fractional part of the shift that half size blurs."""
    a, b = _pair(shift=(2.5, -1.5))
    start = np.zeros(a.shape[:2] + (2,), np.float32)
    errs = {}
    for fs in (0, 1):
        flow = refine(start, a, b, RefinementConfig(dis_finest_scale=fs, iterations=0))
        errs[fs] = np.linalg.norm(flow[16:-16, 16:-16] - np.float32([2.5, -1.5]), axis=2).mean()
    assert errs[0] < 0.2 and errs[0] <= errs[1]


@pytest.mark.parametrize("bad", [{"dis_patch_stride": 9}, {"dis_patch_stride": 0}, {"dis_finest_scale": -1},
                                 {"dis_iterations": 0}, {"dis_finest_scale": 1.5}])
def test_bad_dis_settings_are_named(bad):
    with pytest.raises(InputError, match=next(iter(bad))):
        RefinementConfig(**bad)
