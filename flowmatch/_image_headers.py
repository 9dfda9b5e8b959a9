"""Image decoding with header checks: the declared size of every accepted format is read from the
header and checked before OpenCV allocates anything (flowmatch.io reads every image through it).

Accepted: PNG, JPEG, PNM (PBM/PGM/PPM), BMP, WebP, TIFF.  Anything else OpenCV could decode (HDR,
Sun raster, EXR, JPEG 2000, ...) is refused, since its header is not checked.  Two limits apply:

- the size a file can hold: a header claiming more pixels than the file's bytes can encode (PNG's
  deflate ratio, an uncompressed BMP/TIFF/PNM's raw size, baseline JPEG's 2 bits per 8×8 block) is
  corrupt;
- ``max_image_pixels()``: at most 2**27 pixels (134 M, e.g. 16384×8192) by default; set the
  environment variable FLOWMATCH_MAX_IMAGE_PIXELS to change it.
"""
from __future__ import annotations

import os
import struct

import numpy as np

from .errors import FlowFormatError

DEFAULT_MAX_IMAGE_PIXELS = 2**27
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}   # by IHDR colour type
# deflate cannot compress better than about 1032:1, so a PNG whose pixel data would exceed this many
# times its file size is lying about its dimensions.
_DEFLATE_MAX_RATIO = 1100
# Sequential Huffman JPEG spends at least 2 bits (DC code + end of block) per 8×8 luma block.
_JPEG_BASELINE_PX_PER_BYTE = 64 * 8 // 2
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def max_image_pixels() -> int:
    """The largest image (width × height) flowmatch decodes: FLOWMATCH_MAX_IMAGE_PIXELS or 2**27."""
    text = os.environ.get("FLOWMATCH_MAX_IMAGE_PIXELS")
    if not text:
        return DEFAULT_MAX_IMAGE_PIXELS
    try:
        value = int(text)
    except ValueError:
        raise FlowFormatError(f"FLOWMATCH_MAX_IMAGE_PIXELS must be a positive integer, got {text!r}") from None
    if value < 1:
        raise FlowFormatError(f"FLOWMATCH_MAX_IMAGE_PIXELS must be a positive integer, got {text!r}")
    return value


def _check_size(path: str, kind: str, width: int, height: int) -> None:
    if width < 1 or height < 1:
        raise FlowFormatError(f"{path!r}: invalid {kind} header (size {width}×{height})")
    limit = max_image_pixels()
    if width * height > limit:
        raise FlowFormatError(f"{path!r}: {kind} header declares {width}×{height} = {width * height} pixels, more "
                              f"than the limit of {limit} (set FLOWMATCH_MAX_IMAGE_PIXELS to allow larger images)")


def _too_small(path: str, kind: str, width: int, height: int, size: int) -> FlowFormatError:
    return FlowFormatError(f"{path!r}: {kind} header claims {width}×{height} pixels, more than a {size}-byte "
                           "file can hold (truncated or corrupt)")


def png_header(data: bytes, path: str) -> tuple[int, int, int, int]:
    """(width, height, bit depth, colour type) of a PNG, checked against the file size and the limit."""
    if len(data) < 33 or data[12:16] != b"IHDR":
        raise FlowFormatError(f"{path!r}: PNG without a complete IHDR header (truncated or corrupt)")
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    depth, ctype = data[24], data[25]
    if width < 1 or height < 1 or ctype not in _PNG_CHANNELS or depth not in (1, 2, 4, 8, 16):
        raise FlowFormatError(f"{path!r}: invalid PNG header (size {width}×{height}, bit depth {depth}, "
                              f"colour type {ctype})")
    _check_size(path, "PNG", width, height)
    row_bytes = 1 + (width * depth * _PNG_CHANNELS[ctype] + 7) // 8
    if height * row_bytes > _DEFLATE_MAX_RATIO * len(data):
        raise _too_small(path, "PNG", width, height, len(data))
    return width, height, depth, ctype


def _check_jpeg_header(data: bytes, path: str) -> None:
    """Walk the JPEG segments up to the first SOF marker and check the frame size it declares."""
    i, n = 2, len(data)
    while i + 4 <= n:
        if data[i] != 0xFF:
            raise FlowFormatError(f"{path!r}: corrupt JPEG (no marker at byte {i})")
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0x01, 0xD8) or 0xD0 <= marker <= 0xD7:  # no length field
            i += 2
            continue
        length = int.from_bytes(data[i + 2:i + 4], "big")
        if length < 2:
            break
        if marker in _JPEG_SOF:
            if i + 9 > n:
                break
            height, width = struct.unpack(">HH", data[i + 5:i + 9])
            if height == 0:
                raise FlowFormatError(f"{path!r}: JPEG with a height defined later (DNL marker) is not supported")
            _check_size(path, "JPEG", width, height)
            if marker in (0xC0, 0xC1) and width * height > _JPEG_BASELINE_PX_PER_BYTE * n:
                raise _too_small(path, "JPEG", width, height, n)
            return
        if marker == 0xDA:  # scan data before any frame header
            break
        i += 2 + length
    raise FlowFormatError(f"{path!r}: JPEG without a frame (SOF) header (truncated or corrupt)")


def _check_bmp_header(data: bytes, path: str) -> None:
    if len(data) < 26:
        raise FlowFormatError(f"{path!r}: BMP header truncated")
    dib = int.from_bytes(data[14:18], "little")
    if dib == 12:  # OS/2 core header
        width, height = struct.unpack("<hh", data[18:22])
        bpp, compression = int.from_bytes(data[24:26], "little"), 0
    else:
        if dib < 40 or len(data) < 34:
            raise FlowFormatError(f"{path!r}: BMP header truncated or of unknown version (DIB size {dib})")
        width, height = struct.unpack("<ii", data[18:26])
        bpp, compression = struct.unpack("<HI", data[28:34])
    height = abs(height)  # negative = rows stored top-down
    _check_size(path, "BMP", width, height)
    if bpp not in (1, 2, 4, 8, 16, 24, 32):
        raise FlowFormatError(f"{path!r}: BMP with unsupported bit depth {bpp}")
    if compression in (0, 3, 6):  # uncompressed (BI_RGB, BI_BITFIELDS, BI_ALPHABITFIELDS)
        stride = ((width * bpp + 31) // 32) * 4
        if stride * height > len(data):
            raise _too_small(path, "BMP", width, height, len(data))


def _check_webp_header(data: bytes, path: str) -> None:
    chunk = data[12:16]
    if chunk == b"VP8X" and len(data) >= 30:
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
    elif chunk == b"VP8 " and len(data) >= 30:
        if data[23:26] != b"\x9d\x01\x2a":
            raise FlowFormatError(f"{path!r}: corrupt WebP (VP8 start code missing)")
        width = int.from_bytes(data[26:28], "little") & 0x3FFF
        height = int.from_bytes(data[28:30], "little") & 0x3FFF
    elif chunk == b"VP8L" and len(data) >= 25:
        if data[20] != 0x2F:
            raise FlowFormatError(f"{path!r}: corrupt WebP (VP8L signature missing)")
        bits = int.from_bytes(data[21:25], "little")
        width, height = (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    else:
        raise FlowFormatError(f"{path!r}: WebP header truncated or of an unknown kind {chunk!r}")
    _check_size(path, "WebP", width, height)


def _check_tiff_header(data: bytes, path: str) -> None:
    order = "<" if data[:2] == b"II" else ">"
    if len(data) < 8 or struct.unpack(order + "H", data[2:4])[0] != 42:
        raise FlowFormatError(f"{path!r}: TIFF header truncated, or a BigTIFF (not supported)")
    ifd = struct.unpack(order + "I", data[4:8])[0]
    if ifd + 2 > len(data):
        raise FlowFormatError(f"{path!r}: TIFF directory offset {ifd} lies outside the {len(data)}-byte file")
    count = struct.unpack(order + "H", data[ifd:ifd + 2])[0]
    tags: dict[int, int] = {}
    for k in range(count):
        e = ifd + 2 + 12 * k
        if e + 12 > len(data):
            raise FlowFormatError(f"{path!r}: TIFF directory truncated")
        tag, typ = struct.unpack(order + "HH", data[e:e + 4])
        if typ == 3:
            tags[tag] = struct.unpack(order + "H", data[e + 8:e + 10])[0]
        elif typ == 4:
            tags[tag] = struct.unpack(order + "I", data[e + 8:e + 12])[0]
    width, height = tags.get(256, 0), tags.get(257, 0)
    _check_size(path, "TIFF", width, height)
    if tags.get(259, 1) == 1:  # uncompressed strips: the pixels must fit in the file
        samples, bits = tags.get(277, 1), tags.get(258, 1)
        if height * ((width * samples * bits + 7) // 8) > len(data):
            raise _too_small(path, "TIFF", width, height, len(data))


def _pnm_tokens(data: bytes, count: int) -> tuple[list[int], int]:
    """The first `count` integer header fields after the 2-byte magic of a PNM file (comments
    skipped) and the offset just past them."""
    tokens: list[int] = []
    i, n = 2, min(len(data), 4096)
    while len(tokens) < count:
        while i < n and (data[i:i + 1].isspace() or data[i:i + 1] == b"#"):
            if data[i:i + 1] == b"#":
                while i < n and data[i:i + 1] not in (b"\n", b"\r"):
                    i += 1
            i += 1
        j = i
        while j < n and data[j:j + 1].isdigit():
            j += 1
        if j == i or j - i > 9:
            raise ValueError("bad PNM header field")
        tokens.append(int(data[i:j]))
        i = j
    return tokens, i + 1


def _check_pnm_header(data: bytes, path: str) -> None:
    """Reject a PBM/PGM/PPM whose header size cannot fit in the file (before decoding)."""
    kind = data[1:2]
    try:
        fields, offset = _pnm_tokens(data, 2 if kind in (b"1", b"4") else 3)
    except ValueError:
        raise FlowFormatError(f"{path!r}: corrupt PNM (PBM/PGM/PPM) header") from None
    width, height = fields[0], fields[1]
    maxval = fields[2] if len(fields) == 3 else 1
    if width < 1 or height < 1 or not 1 <= maxval <= 65535:
        raise FlowFormatError(f"{path!r}: invalid PNM header (size {width}×{height}, maxval {maxval})")
    _check_size(path, "PNM", width, height)
    channels = 3 if kind in (b"3", b"6") else 1
    if kind == b"4":
        need = height * ((width + 7) // 8)
    elif kind in (b"5", b"6"):
        need = width * height * channels * (1 if maxval < 256 else 2)
    else:  # ASCII: at least one character per sample
        need = width * height * channels
    if len(data) - offset < need:
        raise FlowFormatError(f"{path!r}: PNM header says {width}×{height} but the file holds only "
                              f"{len(data)} bytes (truncated or corrupt)")


def check_image_header(data: bytes, path: str) -> str:
    """Check the declared size of an image file's bytes; return its format name ("png", "jpeg",
    "pnm", "bmp", "webp", "tiff").  FlowFormatError for an empty, unsupported or lying file."""
    if not data:
        raise FlowFormatError(f"{path!r} is empty")
    if data.startswith(_PNG_SIGNATURE):
        png_header(data, path)
        return "png"
    if data[:3] == b"\xff\xd8\xff":
        _check_jpeg_header(data, path)
        return "jpeg"
    if len(data) >= 2 and data[:1] == b"P" and data[1:2] in b"123456":
        _check_pnm_header(data, path)
        return "pnm"
    if data[:2] == b"BM":
        _check_bmp_header(data, path)
        return "bmp"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        _check_webp_header(data, path)
        return "webp"
    if data[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        _check_tiff_header(data, path)
        return "tiff"
    raise FlowFormatError(f"{path!r} is not an image flowmatch reads (PNG, JPEG, PNM, BMP, WebP or TIFF; "
                          f"file starts with {data[:8]!r})")


def decode_image_bytes(data: bytes, path: str) -> np.ndarray:
    """Decode an image file's bytes (as stored: uint8/uint16, OpenCV's BGR order) after
    `check_image_header`; FlowFormatError when it cannot be decoded."""
    import cv2

    check_image_header(data, path)
    try:
        img = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error as exc:
        raise FlowFormatError(f"{path!r} cannot be decoded as an image: {' '.join(str(exc).split())}") from exc
    if img is None:
        raise FlowFormatError(f"{path!r} cannot be decoded as an image (corrupt or unsupported format)")
    return img
