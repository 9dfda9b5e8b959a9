"""flowmatch.viz.figures: legend wheel, quiver arrows, error figure and side-by-side panels (matplotlib)."""
from __future__ import annotations

import colorsys
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import flowmatch.viz as V
from flowmatch._paths import REPO_DIR
from flowmatch.errors import InputError, MethodUnavailableError
from flowmatch.viz.figures import BAR_PX, GAP_PX, TITLE_PX, _epe_text

RNG = np.random.default_rng(11)


def _hue(rgb) -> float:
    return colorsys.rgb_to_hsv(*(np.asarray(rgb, float) / 255))[0] * 360


def _hue_gap(a: float, b: float) -> float:
    d = abs(a - b) % 360
    return min(d, 360 - d)


def _outside_legend(h: int, w: int) -> np.ndarray:
    """Pixels clear of the legend wheel and of its label below it."""
    x, y, s = V.legend_box(h, w)
    keep = np.ones((h, w), bool)
    keep[: y + s + 24, max(x + s - 60, 0):] = False  # the label is right-aligned under the wheel
    return keep


def test_sizes_and_layouts():
    h, w = 40, 56
    flow = RNG.normal(0, 3, (h, w, 2)).astype(np.float32)
    for pic in (V.flow_figure(flow), V.flow_figure(flow, legend=False, quiver=8),
                V.flow_figure(torch.from_numpy(flow).permute(2, 0, 1)[None], quiver=4)):  # torch N×2×H×W
        assert pic.shape == (h, w, 3) and pic.dtype == np.uint8
    assert V.error_figure(flow, flow * 0).shape == (TITLE_PX + h, w + BAR_PX, 3)
    frame = RNG.integers(0, 255, (h, w, 3)).astype(np.uint8)
    assert V.side_by_side(frame, flow).shape == (TITLE_PX + h, 2 * w + GAP_PX, 3)
    assert V.side_by_side(frame, flow, flow * 0).shape == (TITLE_PX + h, 3 * w + 2 * GAP_PX + BAR_PX, 3)


def test_flow_colours_are_the_plain_coding_outside_the_legend():
    h, w = 48, 64
    flow = RNG.normal(0, 4, (h, w, 2)).astype(np.float32)
    valid = RNG.random((h, w)) > 0.1
    pic = V.flow_figure(flow, valid, max_radius=6.0)
    plain = V.flow_to_color(flow, 6.0, valid)
    keep = _outside_legend(h, w)
    np.testing.assert_array_equal(pic[keep], plain[keep])
    x, y, s = V.legend_box(h, w)
    np.testing.assert_array_equal(pic[y:y + s, x:x + s], V.legend_wheel(s))  # pasted, not resampled


@pytest.mark.parametrize("angle", [0, 45, 90, 135, 180, 225, 270, 315, 30, 200])
def test_legend_hue_at_known_angles_matches_flow_to_color(angle):
    h, w = 156, 200   # a 39 px wheel: odd, so the centre is a pixel and the axes' offsets are exact
    pic = V.flow_figure(np.zeros((h, w, 2), np.float32), max_radius=10.0)
    x, y, s = V.legend_box(h, w)
    assert s == 39
    c = (s - 1) / 2
    a = np.deg2rad(angle)
    px, py = int(round(x + c + 0.8 * c * np.cos(a))), int(round(y + c + 0.8 * c * np.sin(a)))
    got = pic[py, px]
    want = V.flow_to_color(np.array([[[8.0 * np.cos(a), 8.0 * np.sin(a)]]]), max_radius=10.0)[0, 0]
    assert _hue_gap(_hue(got), _hue(want)) < 6, (angle, got, want)
    assert abs(int(got.min()) - int(want.min())) < 25  # about the same saturation (0.8 of the radius)
    assert (pic[y + s // 2, x + s // 2] > 240).all()      # zero motion in the middle: white


def test_quiver_arrows_drawn_where_flow_is_nonzero_and_valid():
    h, w, step = 64, 96, 8
    flow = np.zeros((h, w, 2), np.float32)
    flow[:, :32, 0] = 5.0                       # left third moves right
    flow[:, 64:, 1] = -3.0                      # right third moves up, but is invalid
    valid = np.ones((h, w), bool)
    valid[:, 64:] = False
    white = np.full((h, w, 3), 255, np.uint8)
    pic = V.flow_figure(flow, valid, legend=False, quiver=step, background=white)
    ink = (pic < 200).any(axis=2)
    assert ink[:, :32].sum() > 50                 # arrows on the moving part
    assert not ink[:, 48:].any()                  # none on the still part, none on the invalid part
    # arrows point right: tails on the grid (x = 4, 12, 20, 28), ink reaches up to `step` px to their right
    cols = np.nonzero(ink.any(axis=0))[0]
    assert cols.min() >= 2 and cols.max() >= 28 + step - 2
    rows = np.nonzero(ink.any(axis=1))[0]
    assert set(range(step // 2, h, step)) <= set(rows)   # one arrow on every grid row
    # true length: quiver_scale=1 gives 5 px arrows, shorter than the default (longest = step)
    short = (V.flow_figure(flow, valid, legend=False, quiver=step, quiver_scale=1.0, background=white) < 200).any(2)
    assert 0 < short.sum() < ink.sum()


def test_error_figure_value_at_known_pixels_and_epe():
    h, w = 30, 40
    gt = RNG.normal(0, 5, (h, w, 2))
    flow = gt.copy()
    flow[10, 12, 0] += 2.9                        # bin [1.5, 3)
    flow[20, 30, 1] -= 100.0                      # bin >= 48
    valid = np.ones((h, w), bool)
    valid[5, 5] = False
    pic = V.error_figure(flow, gt, valid)
    m = pic[TITLE_PX:, :w]
    np.testing.assert_array_equal(m, V.error_map(flow, gt, valid))   # the map itself is exact
    assert tuple(m[10, 12]) == tuple(V.ERROR_COLORS[4])
    assert tuple(m[20, 30]) == tuple(V.ERROR_COLORS[-1])
    assert tuple(m[0, 0]) == tuple(V.ERROR_COLORS[0]) and tuple(m[5, 5]) == (0, 0, 0)
    assert (pic[:TITLE_PX] < 128).any()           # the EPE line is printed in the title band
    assert (pic[TITLE_PX:, w:] != 255).any(axis=2).sum() > 100   # the colour bar
    expected = (2.9 + 100.0) / (h * w - 1)        # independent of flowmatch.metrics
    assert _epe_text(flow, gt, valid) == f"EPE {expected:.3f} px"
    assert "n/a" in _epe_text(flow, gt, np.zeros((h, w), bool))


def test_side_by_side_tiles():
    h, w = 48, 64
    frame = RNG.integers(0, 255, (h, w, 3)).astype(np.uint8)
    gt = RNG.normal(0, 4, (h, w, 2)).astype(np.float32)
    flow = gt + RNG.normal(0, 1, gt.shape).astype(np.float32)
    valid = RNG.random((h, w)) > 0.2
    pic = V.side_by_side(frame, flow, gt, valid)
    rows = slice(TITLE_PX, TITLE_PX + h)
    np.testing.assert_array_equal(pic[rows, :w], frame)
    radius = float(np.hypot(gt[..., 0], gt[..., 1])[valid].max())  # flow on the ground truth's scale
    keep = _outside_legend(h, w)
    np.testing.assert_array_equal(pic[rows, w + GAP_PX:2 * w + GAP_PX][keep], V.flow_to_color(flow, radius)[keep])
    x0 = 2 * (w + GAP_PX)
    np.testing.assert_array_equal(pic[rows, x0:x0 + w], V.error_map(flow, gt, valid))
    gray = RNG.integers(0, 255, (h, w)).astype(np.uint8)       # grey frames are shown as RGB
    np.testing.assert_array_equal(V.side_by_side(gray, flow, legend=False)[rows, :w], np.repeat(gray[..., None], 3, 2))


def test_bad_arguments_raise_named_errors():
    flow = np.zeros((40, 40, 2), np.float32)
    for kw in ({"quiver": 0}, {"quiver": 2.5}, {"quiver": True}, {"quiver": 4, "quiver_scale": -1.0},
               {"max_radius": -1.0}, {"max_radius": float("nan")}, {"background": np.zeros((30, 40, 3), np.uint8)}):
        with pytest.raises(InputError):
            V.flow_figure(flow, **kw)
    with pytest.raises(InputError, match="too small"):
        V.flow_figure(np.zeros((32, 200, 2), np.float32), legend=True)
    assert V.flow_figure(np.zeros((33, 33, 2), np.float32)).shape == (33, 33, 3)  # the smallest with a legend
    with pytest.raises(InputError, match="differ in size"):
        V.error_figure(flow, np.zeros((40, 41, 2)))
    with pytest.raises(InputError):
        V.side_by_side(np.zeros((41, 40, 3), np.uint8), flow)
    with pytest.raises(InputError):
        V.flow_figure(np.zeros((40, 40, 3)))       # not a flow
    with pytest.raises(InputError):
        V.legend_wheel(2)


def _python(code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": REPO_DIR}
    # generous timeout: only a hang must fail, not a loaded machine
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=900)


def test_importing_flowmatch_does_not_load_matplotlib():
    res = _python("import sys, flowmatch, flowmatch.viz as V\n"
                  "V.flow_to_color(__import__('numpy').zeros((2, 2, 2)))\n"
                  "assert 'matplotlib' not in sys.modules, 'loaded'\nprint('ok')")
    assert res.returncode == 0 and "ok" in res.stdout, res.stderr


def test_missing_matplotlib_is_a_named_error():
    res = _python("import sys; sys.modules['matplotlib'] = None\n"
                  "import numpy as np, flowmatch.viz as V\n"
                  "from flowmatch.errors import MethodUnavailableError\n"
                  "try:\n    V.flow_figure(np.zeros((40, 40, 2)))\n"
                  "except MethodUnavailableError as e:\n    print('named:', e)\n")
    assert res.returncode == 0 and "pip install matplotlib" in res.stdout, res.stderr
    assert issubclass(MethodUnavailableError, Exception)
