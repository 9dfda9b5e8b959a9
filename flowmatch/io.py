"""Reading and writing flow fields, images and masks.

Flow is a float32 numpy array H×W×2 in pixels, x (u) first, plus a bool H×W `valid` mask.
Formats (chosen by file extension in `read_flow` / `write_flow`):

- ``.flo`` Middlebury: float32 tag 202021.25, int32 width, int32 height, then row-major
  interleaved (u, v) float32, little-endian.  Components with |x| > 1e9 (or NaN) mean "unknown".
- ``.png`` KITTI: 16-bit RGB, u = (R - 2^15) / 64, v = (G - 2^15) / 64, valid = B > 0.
- ``.pfm`` Portable float map: "PF" (3 channels) or "Pf" (1 channel), width height, scale
  (negative = little-endian), rows stored bottom to top.  Flow uses the first two channels.

Every reader checks the header against the file length *before* allocating, and raises
FlowFormatError naming the path and the problem.  Every writer goes through
flowmatch._atomic, so an interrupted write leaves the previous file untouched.
"""
from __future__ import annotations

import os
import re
from typing import IO, Any

import numpy as np

from ._atomic import atomic_open
from ._image_headers import decode_image_bytes, png_header
from .errors import FlowFormatError, InputError
from .image import as_flow, as_mask, to_numpy

FLO_TAG = 202021.25
FLO_UNKNOWN = 1e10          # what we write for invalid pixels (readers treat |x| > 1e9 as unknown)
FLO_UNKNOWN_THRESHOLD = 1e9
KITTI_SCALE = 64.0
KITTI_OFFSET = 2.0 ** 15
IMAGE_EXTENSIONS = (".png", ".ppm", ".pgm", ".pnm", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


# ----------------------------------------------------------------------------- helpers

def _file_size(path: str | os.PathLike) -> int:
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FlowFormatError(f"{path!r} does not exist")
    if not os.path.isfile(path):
        raise FlowFormatError(f"{path!r} is not a regular file")
    return os.path.getsize(path)


def _read_bytes(path: str | os.PathLike) -> bytes:
    _file_size(path)
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError as exc:
        raise FlowFormatError(f"cannot read {os.fspath(path)!r}: {exc}") from exc


def _open_read(path: str) -> IO[bytes]:
    """open(path, "rb") with a FlowFormatError (not a raw OSError) for an unreadable file."""
    try:
        return open(path, "rb")
    except OSError as exc:
        raise FlowFormatError(f"cannot read {path!r}: {exc.strerror or exc}") from exc


def _ext(path: str | os.PathLike) -> str:
    return os.path.splitext(os.fspath(path))[1].lower()


# ----------------------------------------------------------------------------- .flo

def read_flo(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read a Middlebury .flo file.

    Returns:
        flow: float32 H×W×2, pixels, x (u) first; unknown pixels are set to 0.
        valid: bool H×W, False where either component is unknown (|x| > 1e9 or NaN).
    """
    path = os.fspath(path)
    size = _file_size(path)
    if size < 12:
        raise FlowFormatError(f"{path!r} is not a .flo file: {size} bytes, shorter than the 12-byte header")
    with _open_read(path) as fh:
        header = fh.read(12)
        tag = np.frombuffer(header, dtype="<f4", count=1)[0]
        width, height = (int(v) for v in np.frombuffer(header, dtype="<i4", count=2, offset=4))
        if tag != np.float32(FLO_TAG):
            raise FlowFormatError(f"{path!r} is not a .flo file: tag {tag!r}, expected {FLO_TAG} "
                                  "(wrong format, or a big-endian file)")
        if width < 1 or height < 1:
            raise FlowFormatError(f"{path!r} has an invalid .flo size {width}×{height}")
        expected = 12 + 8 * width * height
        if size != expected:
            raise FlowFormatError(f"{path!r}: header says {width}×{height} ({expected} bytes) but the file has "
                                  f"{size} bytes (truncated or corrupt)")
        data = np.fromfile(fh, dtype="<f4", count=2 * width * height)
    if data.size != 2 * width * height:  # the file shrank while we read it
        raise FlowFormatError(f"{path!r} is truncated")
    flow = data.reshape(height, width, 2).astype(np.float32)
    known = np.isfinite(flow) & (np.abs(flow) <= FLO_UNKNOWN_THRESHOLD)
    valid = known.all(axis=2)
    flow[~valid] = 0.0
    return flow, valid


def _encode_flo(fh: IO[bytes], flow: np.ndarray) -> None:
    h, w = flow.shape[:2]
    fh.write(np.array([FLO_TAG], dtype="<f4").tobytes())
    fh.write(np.array([w, h], dtype="<i4").tobytes())
    fh.write(memoryview(np.ascontiguousarray(flow, dtype="<f4")).cast("B"))  # no bytes copy of the field


def write_flo(path: str | os.PathLike, flow: Any, valid: Any = None) -> None:
    """Write flow (H×W×2 float, pixels, x first) as Middlebury .flo, atomically.

    Pixels where `valid` (H×W bool) is False are stored as 1e10 ("unknown")."""
    flow = as_flow(flow)
    valid = as_mask(valid, flow.shape[:2])
    _check_finite_where_valid(flow, valid, path)
    if _max_abs_where_valid(flow, valid) > FLO_UNKNOWN_THRESHOLD:
        # .flo readers take |x| > 1e9 as "unknown": such a valid value would come back invalid
        raise InputError(f"flow to be written to {os.fspath(path)!r} has |values| above {FLO_UNKNOWN_THRESHOLD:g} px "
                         "at pixels marked valid; .flo stores those as unknown (pass valid=False for them)")
    out = flow
    if valid is not None and not valid.all():
        out = flow.copy()
        out[~valid] = FLO_UNKNOWN
    with atomic_open(path, "wb") as fh:
        _encode_flo(fh, out)


# The checks below never index with the mask (flow[valid] copies the field: ~17 ms for 1024×436,
# more than the write itself); `valid` None means every pixel.

def _check_finite_where_valid(flow: np.ndarray, valid: np.ndarray | None, path: Any) -> None:
    if valid is None or valid.all():
        bad = not np.isfinite(flow).all()
    else:
        bad = bool((valid & ~np.isfinite(flow).all(axis=-1)).any())
    if bad:
        raise InputError(f"flow to be written to {os.fspath(path)!r} has NaN/inf at pixels marked valid; "
                         "pass valid=False for them")


def _max_abs_where_valid(flow: np.ndarray, valid: np.ndarray | None) -> float:
    """max |flow| over the valid pixels (0 when none is valid); NaN-free input assumed."""
    if valid is not None and not valid.all():
        if not valid.any():
            return 0.0
        flow = np.where(valid[..., None], flow, np.float32(0))
    return float(max(flow.max(), -flow.min())) if flow.size else 0.0


# ----------------------------------------------------------------------------- KITTI PNG

def read_kitti_flow(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read a KITTI flow PNG (16-bit RGB: u = (R - 2^15)/64, v = (G - 2^15)/64, valid = B > 0).

    Returns flow (float32 H×W×2, pixels, x first; 0 where invalid) and valid (bool H×W)."""
    path = os.fspath(path)
    data = _read_bytes(path)
    # the PNG header must say 16-bit RGB before anything is decoded (a photo named .png is refused here)
    if not data.startswith(b"\x89PNG\r\n\x1a\n") or png_header(data, path)[2:] != (16, 2):
        raise FlowFormatError(f"{path!r} is not a KITTI flow PNG (a 16-bit RGB PNG); read images with read_image")
    img = decode_image_bytes(data, path)
    if img.dtype != np.uint16 or img.ndim != 3 or img.shape[2] != 3:
        raise FlowFormatError(f"{path!r} is not a KITTI flow PNG: expected 16-bit 3-channel, got dtype "
                              f"{img.dtype} with shape {img.shape}")
    # OpenCV gives B, G, R.
    valid = img[..., 0] > 0
    flow = np.empty(img.shape[:2] + (2,), dtype=np.float32)
    flow[..., 0] = (img[..., 2].astype(np.float32) - KITTI_OFFSET) / KITTI_SCALE
    flow[..., 1] = (img[..., 1].astype(np.float32) - KITTI_OFFSET) / KITTI_SCALE
    flow[~valid] = 0.0
    return flow, valid


def _encode_png(fh: IO[bytes], img: np.ndarray, ext: str = ".png") -> None:
    """Encode an OpenCV-ordered (BGR) image and write it to fh."""
    import cv2

    ok, buf = cv2.imencode(ext, img)
    if not ok:
        raise FlowFormatError(f"OpenCV could not encode a {img.dtype} {img.shape} image as {ext}")
    fh.write(buf.tobytes())


def write_kitti_flow(path: str | os.PathLike, flow: Any, valid: Any = None) -> None:
    """Write flow (H×W×2, pixels, x first) as a KITTI 16-bit PNG, atomically.

    Values are rounded to 1/64 px and clipped to the representable range [-512, 512) px, as the
    KITTI devkit does; pixels with valid False get B = 0 (and u = v = 0)."""
    flow = as_flow(flow)
    valid = as_mask(valid, flow.shape[:2], default=True)
    _check_finite_where_valid(flow, valid, path)
    enc = np.where(valid[..., None], flow, np.float32(0)) * KITTI_SCALE + KITTI_OFFSET
    enc = np.clip(np.rint(enc), 0, 65535).astype(np.uint16)
    bgr = np.stack([valid.astype(np.uint16), enc[..., 1], enc[..., 0]], axis=2)
    with atomic_open(path, "wb") as fh:
        _encode_png(fh, bgr)


# ----------------------------------------------------------------------------- PFM

_PFM_HEADER = re.compile(rb"(P[Ff])\s+(\d+)\s+(\d+)\s+([-+0-9.eE]+)\s")


def read_pfm(path: str | os.PathLike) -> np.ndarray:
    """Read a PFM file: float32 H×W (``Pf``) or H×W×3 (``PF``), rows top to bottom."""
    path = os.fspath(path)
    size = _file_size(path)
    with _open_read(path) as fh:
        head = fh.read(256)  # the header is three short text lines
        m = _PFM_HEADER.match(head)
        if m is None:
            raise FlowFormatError(f"{path!r} is not a PFM file: the header must be 'PF' or 'Pf', "
                                  "width height, scale")
        channels = 3 if m.group(1) == b"PF" else 1
        width, height = int(m.group(2)), int(m.group(3))
        try:
            scale = float(m.group(4))
        except ValueError:
            raise FlowFormatError(f"{path!r}: bad PFM scale {m.group(4)!r}") from None
        if width < 1 or height < 1 or scale == 0 or not np.isfinite(scale):
            raise FlowFormatError(f"{path!r}: invalid PFM header (size {width}×{height}, scale {scale})")
        offset = m.end()
        expected = offset + 4 * channels * width * height
        if size != expected:
            raise FlowFormatError(f"{path!r}: PFM header says {width}×{height}×{channels} ({expected} bytes) but "
                                  f"the file has {size} bytes (truncated or corrupt)")
        fh.seek(offset)
        data = np.fromfile(fh, dtype="<f4" if scale < 0 else ">f4", count=channels * width * height)
    if data.size != channels * width * height:
        raise FlowFormatError(f"{path!r} is truncated")
    shape = (height, width, 3) if channels == 3 else (height, width)
    return np.ascontiguousarray(data.reshape(shape)[::-1]).astype(np.float32)


def _encode_pfm(fh: IO[bytes], arr: np.ndarray) -> None:
    h, w = arr.shape[:2]
    kind = b"PF" if arr.ndim == 3 else b"Pf"
    fh.write(kind + b"\n" + f"{w} {h}\n".encode() + b"-1.0\n")
    fh.write(np.ascontiguousarray(arr[::-1], dtype="<f4").tobytes())


def write_pfm(path: str | os.PathLike, arr: Any) -> None:
    """Write a float array H×W, H×W×2 (padded with a zero third channel) or H×W×3 as little-endian
    PFM, atomically."""
    arr = to_numpy(arr, "arr")
    if arr.ndim == 3 and arr.shape[2] == 2:
        arr = np.concatenate([arr, np.zeros(arr.shape[:2] + (1,), dtype=arr.dtype)], axis=2)
    if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] == 3)) or 0 in arr.shape:
        raise InputError(f"arr must be H×W, H×W×2 or H×W×3 to be written as PFM, got shape {tuple(arr.shape)}")
    with atomic_open(path, "wb") as fh:
        _encode_pfm(fh, arr.astype(np.float32, copy=False))


def read_pfm_flow(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Flow from a 3-channel PFM (first two channels, as in FlyingThings3D); valid = finite."""
    arr = read_pfm(path)
    if arr.ndim != 3:
        raise FlowFormatError(f"{os.fspath(path)!r} is a single-channel PFM; flow needs a 3-channel 'PF' file")
    flow = np.ascontiguousarray(arr[..., :2])
    valid = np.isfinite(flow).all(axis=2)
    flow[~valid] = 0.0
    return flow, valid


# ----------------------------------------------------------------------------- dispatch

def read_flow(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read flow by extension (.flo, .png = KITTI, .pfm).

    Returns flow (float32 H×W×2, pixels, x (u) first; 0 where unknown) and valid (bool H×W)."""
    ext = _ext(path)
    if ext == ".flo":
        return read_flo(path)
    if ext == ".png":
        return read_kitti_flow(path)
    if ext == ".pfm":
        return read_pfm_flow(path)
    raise FlowFormatError(f"{os.fspath(path)!r}: unknown flow file extension {ext!r}; use .flo, .png (KITTI) or .pfm")


def write_flow(path: str | os.PathLike, flow: Any, valid: Any = None) -> None:
    """Write flow (H×W×2, pixels, x first) by extension (.flo, .png = KITTI, .pfm), atomically.

    Pixels with valid False are stored as unknown (.flo: 1e10, .png: B = 0, .pfm: NaN)."""
    ext = _ext(path)
    if ext == ".flo":
        write_flo(path, flow, valid)
    elif ext == ".png":
        write_kitti_flow(path, flow, valid)
    elif ext == ".pfm":
        flow = as_flow(flow)
        valid = as_mask(valid, flow.shape[:2], default=True)
        _check_finite_where_valid(flow, valid, path)
        write_pfm(path, np.where(valid[..., None], flow, np.float32(np.nan)))
    else:
        raise FlowFormatError(f"{os.fspath(path)!r}: unknown flow file extension {ext!r}; "
                              "use .flo, .png (KITTI) or .pfm")


# ----------------------------------------------------------------------------- images and masks

def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image as stored: H×W (gray) or H×W×3 (RGB order), uint8 or uint16.

    An alpha channel is dropped.  PFM files are returned as float32."""
    path = os.fspath(path)
    if _ext(path) == ".pfm":
        return read_pfm(path)
    img = decode_image_bytes(_read_bytes(path), path)
    if img.dtype not in (np.uint8, np.uint16):
        raise FlowFormatError(f"{path!r} has unsupported pixel type {img.dtype}; expected 8 or 16 bit")
    if img.ndim == 3:
        if img.shape[2] == 1:
            img = img[..., 0]
        elif img.shape[2] in (3, 4):
            img = np.ascontiguousarray(img[..., 2::-1])  # BGR(A) -> RGB
        else:
            raise FlowFormatError(f"{path!r} has {img.shape[2]} channels; expected 1, 3 or 4")
    return img


def load_frame(x: Any) -> Any:
    """A frame given as a path (str or os.PathLike) read with `read_image`; anything else (an array,
    a tensor, a batch) is returned as it is, for flowmatch.image to check."""
    return read_image(x) if isinstance(x, (str, os.PathLike)) else x


def write_image(path: str | os.PathLike, img: Any) -> None:
    """Write an image (H×W, H×W×1 or H×W×3 RGB; uint8 or uint16 for PNG/TIFF) atomically,
    format by extension (.png, .ppm, .jpg, ...)."""
    path = os.fspath(path)
    img = to_numpy(img, "img")
    ext = _ext(path)
    if ext not in IMAGE_EXTENSIONS:
        raise InputError(f"{path!r}: unknown image extension {ext!r}; use one of {', '.join(IMAGE_EXTENSIONS)}")
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[..., 0]
    if not (img.ndim == 2 or (img.ndim == 3 and img.shape[2] == 3)) or 0 in img.shape:
        raise InputError(f"img must be H×W or H×W×3, got shape {tuple(img.shape)}")
    if img.dtype == np.bool_:
        img = img.astype(np.uint8) * 255
    if img.dtype not in (np.uint8, np.uint16):
        raise InputError(f"img must be uint8 or uint16, got {img.dtype} (convert floats with np.clip(...).astype)")
    if img.dtype == np.uint16 and ext not in (".png", ".tif", ".tiff", ".ppm", ".pgm", ".pnm"):
        # OpenCV would saturate every value above 255 without a word
        raise InputError(f"{path!r}: {ext} stores 8 bits per channel; write 16-bit images as .png, .tif or .ppm "
                         "(or convert with (img >> 8).astype(np.uint8))")
    if img.ndim == 3:
        img = np.ascontiguousarray(img[..., ::-1])  # RGB -> BGR for OpenCV
    with atomic_open(path, "wb") as fh:
        _encode_png(fh, img, ext)


def read_mask(path: str | os.PathLike) -> np.ndarray:
    """Read a mask image (e.g. Sintel occlusions/ or invalid/) as bool H×W: nonzero = True.

    For multi-channel images a pixel is True when any channel is nonzero."""
    img = read_image(path)
    mask = img != 0
    return mask.any(axis=2) if mask.ndim == 3 else mask


def write_mask(path: str | os.PathLike, mask: Any) -> None:
    """Write a bool H×W mask as an 8-bit PNG (True = 255), atomically."""
    mask = to_numpy(mask, "mask")
    if mask.ndim != 2:
        raise InputError(f"mask must be H×W, got shape {tuple(mask.shape)}")
    write_image(path, (mask != 0).astype(np.uint8) * 255)
