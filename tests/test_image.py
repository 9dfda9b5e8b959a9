"""flowmatch.image: the one place where frames, flows and masks are converted and checked."""
import cv2
import numpy as np
import pytest
import torch

from flowmatch.errors import InputError
from flowmatch.image import as_flow, as_image, as_mask, check_shape, frame_to_numpy, gray_u8, to_batch, to_gray


def test_check_shape_binds_names_and_rejects_mismatches():
    assert check_shape(np.zeros((4, 5, 2)), ("H", "W", 2), "flow") == {"H": 4, "W": 5}
    assert check_shape(torch.zeros(3, 3), ("N", "N"), "square") == {"N": 3}
    for shape, dims in (((4, 5, 3), ("H", "W", 2)), ((4, 5), ("H", "W", 2)), ((3, 4), ("N", "N"))):
        with pytest.raises(InputError, match="must be"):
            check_shape(np.zeros(shape), dims, "x")


def test_as_flow_and_as_mask():
    f = torch.arange(24, dtype=torch.float64).reshape(3, 4, 2)
    out = as_flow(f, "flow")
    assert out.dtype == np.float32 and np.array_equal(out, f.numpy().astype(np.float32))
    for bad in (np.zeros((3, 4, 3)), np.zeros((0, 4, 2)), np.zeros((3, 4, 2), bool).astype(object)):
        with pytest.raises(InputError):
            as_flow(bad, "flow")
    with pytest.raises(InputError, match="NaN"):
        as_flow(np.full((2, 2, 2), np.nan), "flow", finite=True)
    assert as_mask(None, (2, 3)) is None
    assert as_mask(None, (2, 3), default=True).all()
    assert as_mask(np.array([[0, 2, 0]]), (1, 3)).tolist() == [[False, True, False]]
    with pytest.raises(InputError, match="H×W"):
        as_mask(np.zeros((3, 1)), (1, 3))


def test_frame_layouts_and_value_ranges():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (5, 6, 3)).astype(np.uint8)
    chw = torch.from_numpy(rgb).permute(2, 0, 1)
    assert np.array_equal(frame_to_numpy(chw, "img"), rgb)
    ref = rgb.astype(np.float32)
    assert np.array_equal(as_image(rgb, "img"), ref)
    assert np.array_equal(as_image(chw, "img"), ref)
    assert np.allclose(as_image(rgb / 255.0, "img"), ref, atol=1e-4)         # [0, 1] floats (the default)
    assert np.allclose(as_image(rgb.astype(np.uint16) * 257, "img"), ref, atol=1e-3)  # 16 bit
    assert as_image(rgb[..., 0], "img").shape == (5, 6, 3)                     # grey -> 3 channels
    with pytest.raises(InputError, match="2×2"):
        as_image(np.zeros((1, 5)), "img")
    with pytest.raises(InputError, match="numpy array or torch tensor"):
        as_image([[1, 2], [3, 4]], "img")


def test_gray_u8_is_opencvs_own_conversion():
    rgb = np.random.default_rng(1).integers(0, 256, (32, 40, 3)).astype(np.uint8)
    ref = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    assert np.array_equal(gray_u8(rgb.astype(np.float32)), ref)          # as_image output of 8-bit frames
    assert np.array_equal(gray_u8(as_image(rgb, "img")), ref)
    assert np.array_equal(gray_u8(rgb), ref)
    # values that are not whole numbers: OpenCV's float conversion, rounded to nearest
    f = rgb.astype(np.float32) + 0.25
    assert np.array_equal(gray_u8(f), np.clip(np.rint(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY)), 0, 255).astype(np.uint8))
    assert np.abs(to_gray(rgb) * 255 - ref).max() <= 1


def test_to_batch_numpy_and_torch_layouts_agree():
    rgb = np.random.default_rng(2).integers(0, 256, (2, 5, 6, 3)).astype(np.uint8)
    a, batched_a, was_np = to_batch(rgb, "img")
    b, batched_b, was_np_b = to_batch(torch.from_numpy(rgb).permute(0, 3, 1, 2), "img")
    assert a.shape == (2, 3, 5, 6) and batched_a and batched_b and was_np and not was_np_b
    assert torch.equal(a, b) and float(a.max()) <= 1.0
    with pytest.raises(InputError, match="channels"):
        to_batch(np.zeros((5, 6, 2)), "img")


def test_full_scale_is_the_one_value_range_rule():
    from flowmatch.image import full_scale

    assert full_scale(np.zeros(3, np.uint8)) == (0, 255) and full_scale(torch.zeros(3, dtype=torch.uint8)) == (0, 255)
    assert full_scale(np.zeros(3, np.uint16)) == (0, 65535)
    # floats: [0, 1] whatever their values (no per-frame guess), unless the call says otherwise
    assert full_scale(np.array([0.2, 1.5])) == (0, 1) and full_scale(torch.tensor([0.0, 200.0])) == (0, 1)
    assert full_scale(np.array([0.2, 200.0]), 255) == (0, 255)
    assert full_scale(np.zeros(3, np.uint16), (0, 4095)) == (0, 4095)
    for bad in (0, -1, float("nan"), (5, 5), (0, float("inf")), "255", True, (1, 2, 3)):
        with pytest.raises(InputError, match="value_range"):
            full_scale(np.zeros(3), bad)


def test_value_range_is_explicit_and_per_call():
    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, (6, 7, 3)).astype(np.float32)
    # a [0, 255] float frame is refused by the default [0, 1] rule, with the fix in the message
    with pytest.raises(InputError, match="value_range=255"):
        as_image(rgb, "img")
    assert np.array_equal(as_image(rgb, "img", value_range=255), rgb)
    assert np.allclose(as_image(rgb / 255, "img"), rgb, atol=1e-4)
    # a dark frame of a [0, 255] fade (max 1.2) gets the call's range, not a guess of its own
    dark = np.full((4, 4, 3), 1.2, np.float32)
    assert np.allclose(as_image(dark, "img", value_range=255), 1.2)
    assert np.allclose(as_image(dark, "img"), 1.2 * 255)
    # 12-bit data in uint16, and a (black, white) pair
    twelve = np.full((3, 3), 4095, np.uint16)
    assert np.allclose(as_image(twelve, "img", value_range=4095), 255)
    assert np.allclose(as_image(np.zeros((3, 3)), "img", value_range=(-1, 1)), 127.5)
    with pytest.raises(InputError, match="far outside"):
        as_image(np.full((3, 3), 70000.0), "img", value_range=255)
    t, _, _ = to_batch(torch.full((3, 4, 4), 100.0), "img", value_range=255)
    assert torch.allclose(t, torch.full_like(t, 100 / 255))
    with pytest.raises(InputError, match="value_range=255"):
        to_batch(torch.full((3, 4, 4), 100.0), "img")
    with pytest.raises(InputError, match="value_range=255"):
        to_gray(rgb)
    assert np.allclose(to_gray(rgb, value_range=255), to_gray(rgb.astype(np.uint8)), atol=1e-6)


def test_flow_layouts_and_frame_batches():
    from flowmatch.image import as_flows, flow_in_layout, split_frames

    f = np.random.default_rng(4).standard_normal((5, 6, 2)).astype(np.float32)
    chw = torch.from_numpy(f).permute(2, 0, 1)
    for x in (f, chw, chw[None], f[None], torch.from_numpy(f)):
        assert np.array_equal(as_flow(x), f)
    batch, batched = as_flows(torch.stack([chw, -chw]))
    assert batched and np.array_equal(batch, np.stack([f, -f]))
    assert np.array_equal(as_flows(f)[0], f[None]) and not as_flows(f)[1]
    with pytest.raises(InputError, match="one flow"):
        as_flow(np.zeros((3, 5, 6, 2)))
    with pytest.raises(InputError, match="H×W×2 or 2×H×W"):
        as_flow(np.zeros((3, 5, 6)))
    frames, layout = split_frames(torch.zeros(2, 3, 5, 6), "img")
    assert len(frames) == 2 and layout.torch and layout.batched
    out = flow_in_layout([f, f], layout)
    assert isinstance(out, torch.Tensor) and out.shape == (2, 2, 5, 6) and torch.equal(out[0], chw)
    frames, layout = split_frames(torch.zeros(3, 5, 6), "img")
    assert flow_in_layout([f], layout).shape == (2, 5, 6)
    frames, layout = split_frames(np.zeros((5, 6, 3)), "img")
    assert np.array_equal(flow_in_layout([f], layout), f)
    frames, layout = split_frames(np.zeros((2, 5, 6, 3)), "img")
    assert flow_in_layout([f, f], layout).shape == (2, 5, 6, 2)
