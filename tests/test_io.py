"""flowmatch.io: round trips, header checks, fuzzing and atomic writes."""
from __future__ import annotations

import os
import struct
import tracemalloc
import zlib

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import flowmatch.io as fio
from flowmatch.errors import FlowFormatError, InputError

RNG = np.random.default_rng(0)


def _flow(h: int = 7, w: int = 9, scale: float = 20.0) -> np.ndarray:
    return (RNG.standard_normal((h, w, 2)) * scale).astype(np.float32)


# ----------------------------------------------------------------------------- round trips

def test_flo_round_trip_with_unknown(tmp_path):
    flow = _flow()
    valid = RNG.random(flow.shape[:2]) > 0.3
    path = tmp_path / "a.flo"
    fio.write_flow(path, flow, valid)
    assert os.path.getsize(path) == 12 + 8 * flow.shape[0] * flow.shape[1]
    got, got_valid = fio.read_flow(path)
    assert got.dtype == np.float32 and got.shape == flow.shape
    np.testing.assert_array_equal(got_valid, valid)
    np.testing.assert_array_equal(got[valid], flow[valid])
    assert (got[~valid] == 0).all()


def test_flo_layout_matches_spec(tmp_path):
    """Bytes written by hand per the Middlebury spec are read as (u, v) row-major."""
    h, w = 2, 3
    flow = np.arange(h * w * 2, dtype=np.float32).reshape(h, w, 2)
    raw = struct.pack("<fii", 202021.25, w, h) + struct.pack(f"<{h * w * 2}f", *flow.ravel())
    (tmp_path / "m.flo").write_bytes(raw)
    got, valid = fio.read_flo(tmp_path / "m.flo")
    np.testing.assert_array_equal(got, flow)
    assert got[1, 2, 0] == 10 and got[1, 2, 1] == 11 and valid.all()
    fio.write_flo(tmp_path / "m2.flo", flow)
    assert (tmp_path / "m2.flo").read_bytes() == raw


def test_flo_large_and_nan_values_are_unknown(tmp_path):
    h, w = 2, 2
    vals = [0.5, 1.0, 2e9, 0.0, -3.0, float("nan"), 1e9, -1e9]
    (tmp_path / "u.flo").write_bytes(struct.pack("<fii", 202021.25, w, h) + struct.pack("<8f", *vals))
    flow, valid = fio.read_flo(tmp_path / "u.flo")
    np.testing.assert_array_equal(valid, [[True, False], [False, True]])
    np.testing.assert_array_equal(flow[1, 1], [1e9, -1e9])  # exactly 1e9 is still known
    assert (flow[~valid] == 0).all()


def test_kitti_round_trip_and_encoding(tmp_path):
    flow = (np.rint(_flow(5, 6) * 64) / 64).astype(np.float32)  # representable values
    valid = RNG.random(flow.shape[:2]) > 0.5
    path = tmp_path / "k.png"
    fio.write_flow(path, flow, valid)
    got, got_valid = fio.read_flow(path)
    np.testing.assert_array_equal(got_valid, valid)
    np.testing.assert_array_equal(got[valid], flow[valid])
    # independent decoding of the stored channels: R = u*64 + 2^15, G = v*64 + 2^15, B = valid
    import cv2

    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert raw.dtype == np.uint16
    np.testing.assert_array_equal(raw[..., 2][valid], (flow[..., 0] * 64 + 32768)[valid])
    np.testing.assert_array_equal(raw[..., 1][valid], (flow[..., 1] * 64 + 32768)[valid])
    np.testing.assert_array_equal(raw[..., 0] > 0, valid)


def test_kitti_quantises_to_1_64_and_clips(tmp_path):
    flow = np.array([[[0.01, -0.3]], [[600.0, -700.0]]], dtype=np.float32)
    fio.write_kitti_flow(tmp_path / "q.png", flow)
    got, _ = fio.read_kitti_flow(tmp_path / "q.png")
    assert np.abs(got[0, 0] - flow[0, 0]).max() <= 1 / 128 + 1e-6
    np.testing.assert_allclose(got[1, 0], [(65535 - 32768) / 64, -512.0])


def test_kitti_rejects_8bit_png(tmp_path):
    fio.write_image(tmp_path / "eight.png", np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(FlowFormatError, match="16-bit"):
        fio.read_flow(tmp_path / "eight.png")


def test_pfm_round_trips(tmp_path):
    one = RNG.standard_normal((4, 5)).astype(np.float32)
    three = RNG.standard_normal((4, 5, 3)).astype(np.float32)
    fio.write_pfm(tmp_path / "one.pfm", one)
    fio.write_pfm(tmp_path / "three.pfm", three)
    np.testing.assert_array_equal(fio.read_pfm(tmp_path / "one.pfm"), one)
    np.testing.assert_array_equal(fio.read_pfm(tmp_path / "three.pfm"), three)
    flow, valid = _flow(4, 5), np.ones((4, 5), bool)
    valid[0, 0] = False
    fio.write_flow(tmp_path / "f.pfm", flow, valid)
    got, got_valid = fio.read_flow(tmp_path / "f.pfm")
    np.testing.assert_array_equal(got_valid, valid)
    np.testing.assert_array_equal(got[valid], flow[valid])


def test_pfm_big_endian_bottom_up(tmp_path):
    """A hand-written big-endian PFM (positive scale) with rows stored bottom to top."""
    img = np.array([[1, 2, 3], [4, 5, 6]], dtype=np.float32)
    raw = b"Pf\n3 2\n1.0\n" + img[::-1].astype(">f4").tobytes()
    (tmp_path / "be.pfm").write_bytes(raw)
    np.testing.assert_array_equal(fio.read_pfm(tmp_path / "be.pfm"), img)


@pytest.mark.parametrize("ext,channels", [(".png", 1), (".png", 3), (".ppm", 3), (".pgm", 1), (".tif", 1),
                                          (".tif", 3)])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_image_round_trip(tmp_path, ext, dtype, channels):
    hi = 255 if dtype == np.uint8 else 65535
    shape = (6, 7) if channels == 1 else (6, 7, 3)
    img = RNG.integers(0, hi + 1, size=shape).astype(dtype)
    path = tmp_path / f"i{ext}"
    fio.write_image(path, img)
    got = fio.read_image(path)
    assert got.dtype == dtype and got.shape == img.shape
    np.testing.assert_array_equal(got, img)


def test_image_is_rgb_order(tmp_path):
    img = np.zeros((2, 2, 3), np.uint8)
    img[..., 0] = 200  # red
    fio.write_image(tmp_path / "r.png", img)
    import imageio.v3 as iio

    np.testing.assert_array_equal(iio.imread(tmp_path / "r.png"), img)  # independent reader
    np.testing.assert_array_equal(fio.read_image(tmp_path / "r.png"), img)


def test_mask_round_trip_and_nonzero(tmp_path):
    mask = RNG.random((5, 8)) > 0.5
    fio.write_mask(tmp_path / "m.png", mask)
    np.testing.assert_array_equal(fio.read_mask(tmp_path / "m.png"), mask)
    ones = mask.astype(np.uint8)  # Sintel-style 0/1 values also count as True
    fio.write_image(tmp_path / "o.png", ones)
    np.testing.assert_array_equal(fio.read_mask(tmp_path / "o.png"), mask)


# ----------------------------------------------------------------------------- bad input

def test_missing_and_unknown_extension(tmp_path):
    with pytest.raises(FlowFormatError, match="does not exist"):
        fio.read_flow(tmp_path / "nope.flo")
    (tmp_path / "x.txt").write_bytes(b"hello")
    with pytest.raises(FlowFormatError, match="extension"):
        fio.read_flow(tmp_path / "x.txt")
    with pytest.raises(FlowFormatError, match="extension"):
        fio.write_flow(tmp_path / "x.txt", _flow())


def test_writers_validate_arguments(tmp_path):
    with pytest.raises(InputError, match="H×W×2"):
        fio.write_flow(tmp_path / "a.flo", np.zeros((3, 4, 3), np.float32))
    bad = _flow()
    bad[0, 0, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        fio.write_flow(tmp_path / "a.flo", bad)
    valid = np.ones(bad.shape[:2], bool)
    valid[0, 0] = False
    fio.write_flow(tmp_path / "a.flo", bad, valid)  # NaN at an invalid pixel is fine
    with pytest.raises(InputError, match="valid"):
        fio.write_flow(tmp_path / "a.flo", _flow(), np.ones((2, 2), bool))
    with pytest.raises(InputError, match="uint8 or uint16"):
        fio.write_image(tmp_path / "f.png", np.zeros((3, 3), np.float32))
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())  # no stray temp files


def test_flo_value_checks_respect_the_mask(tmp_path):
    """Values above 1e9 px (.flo's unknown) or NaN are refused only at valid pixels; the caller's
    array is left as it was, and an all-invalid field is written as all unknown."""
    flow = _flow()
    flow[1, 2, 1] = 2e9
    flow[3, 4, 0] = np.inf
    before = flow.copy()
    with pytest.raises(InputError, match="above"):
        fio.write_flow(tmp_path / "a.flo", np.where(np.isfinite(flow), flow, 0))
    valid = np.ones(flow.shape[:2], bool)
    valid[3, 4] = False
    with pytest.raises(InputError, match="above"):
        fio.write_flow(tmp_path / "a.flo", flow, valid)
    valid[1, 2] = False
    fio.write_flow(tmp_path / "a.flo", flow, valid)
    got, got_valid = fio.read_flow(tmp_path / "a.flo")
    np.testing.assert_array_equal(got_valid, valid)
    np.testing.assert_array_equal(got[valid], before[valid])
    np.testing.assert_array_equal(flow, before)
    fio.write_flow(tmp_path / "b.flo", flow, np.zeros(flow.shape[:2], bool))
    assert not fio.read_flow(tmp_path / "b.flo")[1].any()
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())


def _flo_header(w: int, h: int) -> bytes:
    return struct.pack("<fii", 202021.25, w, h)


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


@pytest.mark.parametrize("name,raw", [
    ("huge.flo", _flo_header(2**31 - 1, 2**31 - 1) + b"\0" * 64),
    ("neg.flo", _flo_header(-5, 3)),
    ("huge.pfm", b"PF\n999999999 999999999\n-1.0\n" + b"\0" * 64),
    ("huge.png", b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", 60000, 60000, 16, 2, 0, 0, 0))
     + _png_chunk(b"IDAT", zlib.compress(b"\0" * 100)) + _png_chunk(b"IEND", b"")),
    ("huge.ppm", b"P6\n60000 60000\n255\n" + b"\0" * 64),
])
def test_lying_headers_are_rejected_without_allocating(tmp_path, name, raw):
    path = tmp_path / name
    path.write_bytes(raw)
    reader = fio.read_image if name.endswith(".ppm") else fio.read_flow
    tracemalloc.start()
    try:
        with pytest.raises(FlowFormatError, match=name):
            reader(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20, f"{peak} bytes allocated while rejecting {name}"


def test_truncated_files(tmp_path):
    fio.write_flow(tmp_path / "t.flo", _flow())
    fio.write_flow(tmp_path / "t.png", _flow())
    fio.write_flow(tmp_path / "t.pfm", _flow())
    for name in ("t.flo", "t.png", "t.pfm"):
        data = (tmp_path / name).read_bytes()
        for cut in (0, 5, len(data) // 2, len(data) - 1):
            (tmp_path / name).write_bytes(data[:cut])
            with pytest.raises(FlowFormatError):
                fio.read_flow(tmp_path / name)


def _valid_bytes(ext: str) -> bytes:
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "v" + ext)
        fio.write_flow(path, (np.rint(_flow(3, 4) * 64) / 64).astype(np.float32))
        with open(path, "rb") as fh:
            return fh.read()


VALID = {ext: _valid_bytes(ext) for ext in (".flo", ".png", ".pfm")}
VALID[".ppm"] = b"P6\n4 3\n65535\n" + np.arange(72, dtype=">u2").tobytes()


def _read_fuzzed(tmp_path, ext: str, data: bytes) -> None:
    path = tmp_path / ("fuzz" + ext)
    path.write_bytes(data)
    tracemalloc.start()
    try:
        if ext == ".ppm":
            img = fio.read_image(path)
            assert img.dtype in (np.uint8, np.uint16) and img.ndim in (2, 3)
            return
        flow, valid = fio.read_flow(path)
    except FlowFormatError as exc:
        assert str(path) in str(exc)
        return
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak < (64 << 20), f"{peak} bytes allocated for a {len(data)}-byte file"
    assert flow.dtype == np.float32 and flow.ndim == 3 and flow.shape[2] == 2
    assert valid.shape == flow.shape[:2] and valid.dtype == bool
    assert np.isfinite(flow).all()


@given(ext=st.sampled_from([".flo", ".png", ".pfm"]), data=st.binary(max_size=300))
def test_fuzz_random_bytes(tmp_path_factory, ext, data):
    _read_fuzzed(tmp_path_factory.mktemp("fz"), ext, data)


@given(ext=st.sampled_from([".flo", ".png", ".pfm", ".ppm"]), data=st.data())
def test_fuzz_mutated_and_truncated(tmp_path_factory, ext, data):
    raw = bytearray(VALID[ext])
    n_mut = data.draw(st.integers(0, 4))
    for _ in range(n_mut):
        # mostly hit the header, where the sizes live
        pos = data.draw(st.integers(0, min(len(raw) - 1, 40)) | st.integers(0, len(raw) - 1))
        raw[pos] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(raw)))
    _read_fuzzed(tmp_path_factory.mktemp("fz"), ext, bytes(raw[:cut]))


# ----------------------------------------------------------------------------- atomic writes

def _interrupted_encoder(fh, *args, **kwargs):
    fh.write(b"partial data")
    raise RuntimeError("simulated crash mid-write")


@pytest.mark.parametrize("ext,encoder,writer", [
    (".flo", "_encode_flo", lambda p: fio.write_flow(p, _flow())),
    (".png", "_encode_png", lambda p: fio.write_flow(p, _flow())),
    (".pfm", "_encode_pfm", lambda p: fio.write_flow(p, _flow())),
    (".jpg", "_encode_png", lambda p: fio.write_image(p, np.zeros((4, 4, 3), np.uint8))),
])
def test_interrupted_write_keeps_previous_file(tmp_path, monkeypatch, ext, encoder, writer):
    path = tmp_path / ("out" + ext)
    writer(path)
    before = path.read_bytes()
    monkeypatch.setattr(fio, encoder, _interrupted_encoder)
    with pytest.raises(RuntimeError, match="simulated"):
        writer(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary left behind
    # a first write that fails leaves no file at all
    with pytest.raises(RuntimeError):
        writer(tmp_path / ("new" + ext))
    assert not (tmp_path / ("new" + ext)).exists()
