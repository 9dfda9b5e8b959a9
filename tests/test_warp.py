"""flowmatch.warp: backward warping (numpy and torch) and forward-backward consistency."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from flowmatch.errors import InputError
from flowmatch.warp import backward_warp, consistency_mask

RNG = np.random.default_rng(7)


def test_integer_shift_is_exact():
    img = RNG.integers(0, 255, (8, 10, 3)).astype(np.uint8)
    flow = np.zeros((8, 10, 2), np.float32)
    flow[..., 0], flow[..., 1] = 2, -1
    warped, inside = backward_warp(img, flow)
    # warped[y, x] = img[y - 1, x + 2] where that exists
    expected_inside = np.zeros((8, 10), bool)
    expected_inside[1:, :-2] = True
    np.testing.assert_array_equal(inside, expected_inside)
    np.testing.assert_array_equal(warped[1:, :-2], img[:-1, 2:].astype(np.float32))
    assert (warped[~inside] == 0).all()


def test_bilinear_is_exact_on_a_linear_image():
    h, w = 9, 11
    yy, xx = np.mgrid[:h, :w].astype(np.float64)
    img = 3 * xx - 5 * yy + 7
    flow = RNG.uniform(-3, 3, (h, w, 2))
    warped, inside = backward_warp(img, flow)
    ref = 3 * (xx + flow[..., 0]) - 5 * (yy + flow[..., 1]) + 7
    np.testing.assert_allclose(warped[inside], ref[inside], atol=1e-4)
    tx, ty = xx + flow[..., 0], yy + flow[..., 1]
    np.testing.assert_array_equal(inside, (tx >= 0) & (tx <= w - 1) & (ty >= 0) & (ty <= h - 1))


def test_torch_matches_numpy():
    h, w = 12, 15
    img = RNG.uniform(0, 255, (h, w, 3)).astype(np.float32)
    flow = RNG.uniform(-4, 4, (h, w, 2)).astype(np.float32)
    ref, ref_in = backward_warp(img, flow)
    t_img = torch.from_numpy(img).permute(2, 0, 1)[None].repeat(2, 1, 1, 1)
    t_flow = torch.from_numpy(flow).permute(2, 0, 1)[None].repeat(2, 1, 1, 1)
    out, inside = backward_warp(t_img, t_flow)
    assert out.shape == (2, 3, h, w) and inside.shape == (2, h, w) and inside.dtype == torch.bool
    np.testing.assert_array_equal(inside[1].numpy(), ref_in)
    np.testing.assert_allclose(out[1].permute(1, 2, 0).numpy(), ref, atol=2e-3)
    out3, inside3 = backward_warp(t_img[0], t_flow[0])  # C×H×W with 2×H×W
    assert torch.equal(out3, out[0]) and torch.equal(inside3, inside[0])


def test_torch_gradients():
    torch.manual_seed(0)
    h, w = 5, 6
    img = torch.rand(1, 2, h, w, dtype=torch.float64, requires_grad=True)
    # stay inside the frame and away from integer sample positions (where bilinear has kinks)
    flow = torch.rand(1, 2, h, w, dtype=torch.float64) * 0.8 + 0.1
    flow[:, 0, :, -1] -= 1.0   # the last column samples to its left, the last row upwards
    flow[:, 1, -1, :] -= 1.0
    flow.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda i, f: backward_warp(i, f)[0], (img, flow), eps=1e-6, atol=1e-6)


def test_consistency_mask():
    h, w = 6, 8
    fw = np.zeros((h, w, 2), np.float32)
    fw[..., 0] = 3
    bw = -fw
    ok = consistency_mask(fw, bw)
    expected = np.zeros((h, w), bool)
    expected[:, : w - 3] = True   # the last 3 columns leave the frame
    np.testing.assert_array_equal(ok, expected)
    bad_bw = bw.copy()
    bad_bw[..., 0] = -1.5         # |3 - 1.5| = 1.5 > 1
    assert not consistency_mask(fw, bad_bw).any()
    assert consistency_mask(fw, bad_bw, threshold=1.6).sum() == expected.sum()
    # relative term: 1.5^2 <= 1 + 0.2 * (9 + 2.25)
    np.testing.assert_array_equal(consistency_mask(fw, bad_bw, relative=0.2), expected)
    t = consistency_mask(torch.from_numpy(fw).permute(2, 0, 1)[None], torch.from_numpy(bad_bw).permute(2, 0, 1)[None],
                         relative=0.2)
    np.testing.assert_array_equal(t[0].numpy(), expected)


def test_consistency_random_torch_equals_numpy():
    fw = RNG.uniform(-2, 2, (10, 12, 2)).astype(np.float32)
    bw = RNG.uniform(-2, 2, (10, 12, 2)).astype(np.float32)
    ref = consistency_mask(fw, bw, threshold=1.5)
    got = consistency_mask(torch.from_numpy(fw).permute(2, 0, 1), torch.from_numpy(bw).permute(2, 0, 1), threshold=1.5)
    assert 0 < ref.sum() < ref.size
    assert (got.numpy() != ref).sum() <= 1  # float32 vs float64 rounding at the threshold


def test_bad_input():
    with pytest.raises(InputError, match="H×W×2"):
        backward_warp(np.zeros((4, 4)), np.zeros((4, 4, 3)))
    with pytest.raises(InputError, match="like the flow"):
        backward_warp(np.zeros((5, 4)), np.zeros((4, 4, 2)))
    nan = np.zeros((4, 4, 2))
    nan[1, 1, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        backward_warp(np.zeros((4, 4)), nan)
    with pytest.raises(InputError, match="NaN"):
        backward_warp(torch.zeros(1, 1, 4, 4), torch.from_numpy(nan).permute(2, 0, 1)[None])
    with pytest.raises(InputError, match="both"):
        backward_warp(np.zeros((4, 4)), torch.zeros(2, 4, 4))
    with pytest.raises(InputError, match="shape"):
        consistency_mask(np.zeros((4, 4, 2)), np.zeros((4, 5, 2)))


# --------------------------------------------------------------- the numpy path against the former one

def _reference_warp(image: np.ndarray, flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The former numpy implementation (explicit corner gathers in float64), kept as the independent
    reference of the grid_sample-based one."""
    h, w = flow.shape[:2]
    flow = flow.astype(np.float64)
    xs = np.arange(w, dtype=np.float64)[None, :] + flow[..., 0]
    ys = np.arange(h, dtype=np.float64)[:, None] + flow[..., 1]
    in_frame = (xs >= 0) & (xs <= w - 1) & (ys >= 0) & (ys <= h - 1)
    xc, yc = np.clip(xs, 0, w - 1), np.clip(ys, 0, h - 1)
    x0 = np.minimum(np.floor(xc).astype(np.int64), max(w - 2, 0))
    y0 = np.minimum(np.floor(yc).astype(np.int64), max(h - 2, 0))
    x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
    fx, fy = xc - x0, yc - y0
    img = image.astype(np.float64)
    if img.ndim == 3:
        fx, fy = fx[..., None], fy[..., None]
    top = img[y0, x0] * (1 - fx) + img[y0, x1] * fx
    bottom = img[y1, x0] * (1 - fx) + img[y1, x1] * fx
    out = top * (1 - fy) + bottom * fy
    out[~in_frame] = 0
    return out, in_frame


@pytest.mark.parametrize("h,w,c,dtype", [(13, 17, 3, np.float32), (9, 11, None, np.uint8), (6, 7, 5, np.float64),
                                         (1, 8, 2, np.uint16), (8, 1, None, np.int32), (1, 1, 3, np.float32)])
def test_numpy_warp_equals_the_former_implementation(h, w, c, dtype):
    rng = np.random.default_rng(h * 100 + w)
    shape = (h, w) if c is None else (h, w, c)
    img = (rng.uniform(0, 255, shape) if dtype in (np.float32, np.float64) else rng.integers(0, 255, shape)).astype(dtype)
    flow = rng.uniform(-3, 3, (h, w, 2))
    # points exactly on the border, the last row/column, integer positions and just outside
    yy, xx = np.mgrid[:h, :w]
    flow[0, :, 0] = -xx[0]                     # x = 0
    flow[-1, :, 0] = (w - 1) - xx[-1]          # x = W-1
    flow[:, 0, 1] = (h - 1) - yy[:, 0]         # y = H-1
    if w > 2:
        flow[h // 2, 1, 0] = -1 - 1e-9         # x just below 0: out of frame
        flow[h // 2, 2, 0] = np.round(flow[h // 2, 2, 0])
    got, inside = backward_warp(img, flow.astype(np.float32))
    ref, ref_in = _reference_warp(img, flow.astype(np.float32))
    assert got.dtype == np.float32 and got.shape == img.shape and inside.dtype == bool
    np.testing.assert_array_equal(inside, ref_in)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-4)
    assert (got[~inside] == 0).all()


def test_numpy_warp_float64_for_consistency_and_nan_images():
    from flowmatch.warp import _warp_numpy

    rng = np.random.default_rng(3)
    img = rng.normal(0, 1, (10, 12, 2))
    flow = rng.uniform(-4, 4, (10, 12, 2))
    got, inside = _warp_numpy(img, flow, dtype=np.float64)
    ref, ref_in = _reference_warp(img, flow)
    assert got.dtype == np.float64 and 0 < inside.sum() < inside.size
    np.testing.assert_array_equal(inside, ref_in)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-12)
    img[...] = np.nan                           # out-of-frame pixels stay 0, whatever the image holds
    got, inside = backward_warp(img, flow)
    assert (got[~inside] == 0).all() and np.isnan(got[inside]).all()
    with pytest.raises(InputError, match="real numbers"):
        backward_warp(np.array([["a"] * 4] * 4), np.zeros((4, 4, 2)))
