"""Image decoding with header checks: a PNG or PNM whose header claims more pixels than its file
can hold is rejected before OpenCV allocates the image (flowmatch.io reads every image through it)."""
from __future__ import annotations

import numpy as np

from .errors import FlowFormatError

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}   # by IHDR colour type
# deflate cannot compress better than about 1032:1, so a PNG whose pixel data would exceed this many
# times its file size is lying about its dimensions.
_DEFLATE_MAX_RATIO = 1100


def _check_png_header(data: bytes, path: str) -> None:
    """Reject a PNG whose IHDR size cannot fit in the file (before the decoder allocates it)."""
    if len(data) < 33 or data[12:16] != b"IHDR":
        raise FlowFormatError(f"{path!r}: PNG without a complete IHDR header (truncated or corrupt)")
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    depth, ctype = data[24], data[25]
    if width < 1 or height < 1 or ctype not in _PNG_CHANNELS or depth not in (1, 2, 4, 8, 16):
        raise FlowFormatError(f"{path!r}: invalid PNG header (size {width}×{height}, bit depth {depth}, "
                              f"colour type {ctype})")
    row_bytes = 1 + (width * depth * _PNG_CHANNELS[ctype] + 7) // 8
    if height * row_bytes > _DEFLATE_MAX_RATIO * len(data):
        raise FlowFormatError(f"{path!r}: PNG header claims {width}×{height} pixels, more than a "
                              f"{len(data)}-byte file can hold (corrupt)")


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


def decode_image_bytes(data: bytes, path: str) -> np.ndarray:
    import cv2

    if not data:
        raise FlowFormatError(f"{path!r} is empty")
    if data.startswith(_PNG_SIGNATURE):
        _check_png_header(data, path)
    elif len(data) >= 2 and data[:1] == b"P" and data[1:2] in b"123456":
        _check_pnm_header(data, path)
    try:
        img = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error as exc:
        raise FlowFormatError(f"{path!r} cannot be decoded as an image: {exc}") from exc
    if img is None:
        raise FlowFormatError(f"{path!r} cannot be decoded as an image (corrupt or unsupported format)")
    return img
