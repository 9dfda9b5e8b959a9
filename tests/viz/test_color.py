"""flowmatch.viz.color: colour wheel, flow colouring, error map and the plain panels."""
from __future__ import annotations

import colorsys

import numpy as np
import pytest

import flowmatch.io as fio
import flowmatch.viz as V
from flowmatch.errors import InputError


def _hue(rgb) -> float:
    return colorsys.rgb_to_hsv(*(np.asarray(rgb, float) / 255))[0] * 360


def _one(u: float, v: float, **kw) -> np.ndarray:
    return V.flow_to_color(np.array([[[u, v]]], np.float32), **kw)[0, 0]


def test_wheel_has_55_colours_with_primaries_at_segment_starts():
    wheel = V.color_wheel()
    assert wheel.shape == (55, 3)
    starts = {0: (1, 0, 0), 15: (1, 1, 0), 21: (0, 1, 0), 25: (0, 1, 1), 36: (0, 0, 1), 49: (1, 0, 1)}
    for idx, rgb in starts.items():
        np.testing.assert_allclose(wheel[idx], rgb, err_msg=f"wheel[{idx}]")
    assert (wheel.max(axis=1) == 1).all() and (wheel.min(axis=1) == 0).all()  # fully saturated


@pytest.mark.parametrize("u,v,lo,hi", [
    (1, 0, -10, 10),      # right: red
    (0, 1, 45, 60),       # down: yellow-orange (wheel position 13.5 in red->yellow)
    (-1, 0, 180, 200),    # left: cyan-blue (position 27 in cyan->blue)
    (0, -1, 250, 270),    # up: blue-violet (position 40.5 in blue->magenta)
])
def test_directions_map_to_expected_hues(u, v, lo, hi):
    rgb = _one(u, v, max_radius=1.0)
    hue = _hue(rgb)
    hue = hue - 360 if hue > 180 and lo < 0 else hue
    assert lo <= hue <= hi, (rgb, hue)
    assert rgb.min() == 0 and rgb.max() == 255  # full saturation at the maximum radius


def test_zero_is_white_invalid_is_black_and_saturation_grows():
    np.testing.assert_array_equal(_one(0, 0), [255, 255, 255])
    flow = np.array([[[0.0, 0.0], [1.0, 0.0], [2.0, 0.0], [4.0, 0.0], [np.nan, 0.0]]], np.float32)
    valid = np.array([[True, True, True, False, True]])
    out = V.flow_to_color(flow, max_radius=2.0, valid=valid)
    np.testing.assert_array_equal(out[0, 3], [0, 0, 0])   # invalid
    np.testing.assert_array_equal(out[0, 4], [0, 0, 0])   # NaN
    # red hue: G and B fall from 255 (white) to 0 as |flow| reaches max_radius
    assert out[0, 0, 1] == 255 and 120 <= out[0, 1, 1] <= 135 and out[0, 2, 1] == 0
    over = V.flow_to_color(flow[:, 3:4], max_radius=2.0)[0, 0]
    np.testing.assert_array_equal(over, [191, 0, 0])       # beyond max_radius: darkened to 75 %


def test_auto_radius_uses_largest_valid_vector():
    flow = np.array([[[3.0, 0.0], [100.0, 0.0]]], np.float32)
    auto = V.flow_to_color(flow, valid=np.array([[True, False]]))
    np.testing.assert_array_equal(auto[0, 0], _one(3, 0, max_radius=3.0))
    with pytest.raises(InputError, match="max_radius"):
        V.flow_to_color(flow, max_radius=0)


def test_error_map_bins():
    gt = np.zeros((1, 5, 2), np.float32)
    flow = np.array([[[0.0, 0], [0.2, 0], [2.9, 0], [3.1, 0], [100, 0]]], np.float32)
    valid = np.array([[True, True, True, True, False]])
    out = V.error_map(flow, gt, valid)
    colors = [tuple(c) for c in V.ERROR_COLORS]
    assert tuple(out[0, 0]) == colors[0]
    assert tuple(out[0, 1]) == colors[1]   # 0.1875 <= 0.2 < 0.375
    assert tuple(out[0, 2]) == colors[4]   # 1.5 <= 2.9 < 3
    assert tuple(out[0, 3]) == colors[5]   # 3 <= 3.1 < 6
    assert tuple(out[0, 4]) == (0, 0, 0)   # invalid
    assert tuple(V.error_map(flow[:, 4:], gt[:, 4:])[0, 0]) == colors[-1]


def test_save_panel(tmp_path):
    h, w = 20, 30
    img = np.random.default_rng(0).integers(0, 255, (h, w, 3)).astype(np.uint8)
    flow = np.random.default_rng(1).normal(0, 3, (h, w, 2)).astype(np.float32)
    V.save_panel(tmp_path / "p.png", img, flow, gt=flow * 0.5, valid=np.ones((h, w), bool))
    panel = fio.read_image(tmp_path / "p.png")
    assert panel.shape == (2 * h, 2 * w, 3) and panel.dtype == np.uint8
    V.save_panel(tmp_path / "q.png", img[..., 0], flow)
    assert fio.read_image(tmp_path / "q.png").shape == (h, 2 * w, 3)
    with pytest.raises(InputError):
        V.save_panel(tmp_path / "r.png", img[:10], flow)


def _reference_coding(flow: np.ndarray, max_radius: float) -> np.ndarray:
    """The Middlebury coding written out in float64 (numpy's arctan2), pixel by pixel in spirit."""
    wheel = V.color_wheel().astype(np.float64)
    n = len(wheel)
    u, v = flow[..., 0].astype(np.float64), flow[..., 1].astype(np.float64)
    fk = (np.arctan2(-v, -u) / np.pi + 1) / 2 * (n - 1)
    k0 = np.floor(fk).astype(int)
    frac = (fk - k0)[..., None]
    col = (1 - frac) * wheel[k0] + frac * wheel[(k0 + 1) % n]
    r = (np.hypot(u, v) / max_radius)[..., None]
    col = np.where(r <= 1, 1 - r * (1 - col), 0.75 * col)
    return np.floor(255 * np.clip(col, 0, 1)).astype(np.uint8)


def test_coding_matches_a_float64_reference_within_one_level():
    flow = np.random.default_rng(3).normal(0, 4, (64, 80, 2)).astype(np.float32)
    got = V.flow_to_color(flow, max_radius=6.0)
    diff = np.abs(got.astype(int) - _reference_coding(flow, 6.0))
    assert diff.max() <= 1 and (diff > 0).mean() < 0.01
    auto = V.flow_to_color(flow)  # auto radius: the largest magnitude
    diff = np.abs(auto.astype(int) - _reference_coding(flow, float(np.hypot(flow[..., 0], flow[..., 1]).max())))
    assert diff.max() <= 1


def test_coding_leaves_its_input_alone():
    flow = np.array([[[np.nan, 1.0]]], np.float32)
    V.flow_to_color(flow, valid=np.array([[True]]))
    assert np.isnan(flow[0, 0, 0]) and flow[0, 0, 1] == 1.0
