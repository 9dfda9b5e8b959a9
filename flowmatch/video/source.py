"""Frames of a video file or a frame folder, decoded one at a time, and the identity of the input.

`frame_source(path)` -> (meta, frames): meta has "size" (width, height in pixels), "fps" (None for
folders) and "frames" (the count, from the folder listing or the video header; None if unknown);
frames yields H×W×3 uint8 RGB arrays.  `input_identity(path)` fingerprints the input for the resume
record (see record.py).  `write_test_video` writes a clip whose true flow is known.
"""
from __future__ import annotations

import hashlib
import os
import re
from typing import Any, Iterator

import numpy as np

from .._atomic import atomic_path
from ..errors import FlowFormatError, InputError

FRAME_EXTENSIONS = (".png", ".jpg", ".jpeg", ".ppm", ".pgm", ".bmp", ".tif", ".tiff")
# Names `flowmatch video` writes; a frame folder never lists them as frames (they are flows, not frames).
OUTPUT_NAME = re.compile(r"^flow_\d{6,}\.(flo|png)$")
_HASH_BYTES = 1 << 20          # bytes hashed at each end of a video file
_FRAME_HASH_BYTES = 1 << 16    # ... and of each frame of a folder


def _to_rgb8(img: np.ndarray) -> np.ndarray:
    if img.dtype == np.uint16:
        img = (img.astype(np.uint32) * 255 // 65535).astype(np.uint8)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    return np.ascontiguousarray(img)


def frame_files(folder: str) -> list[str]:
    """Sorted frame file names of `folder` (image extensions; no hidden files, no flow outputs)."""
    return sorted(f for f in os.listdir(folder)
                  if os.path.splitext(f)[1].lower() in FRAME_EXTENSIONS and not f.startswith(".")
                  and not OUTPUT_NAME.match(f))


def frame_source(source: str) -> tuple[dict[str, Any], Iterator[np.ndarray]]:
    """(meta, frames) for a video file or a folder of frames (see the module docstring)."""
    if not os.path.exists(source):
        raise InputError(f"video input {source!r} does not exist; pass a video file or a folder of frames")
    if os.path.isdir(source):
        return _folder_source(source)
    return _video_source(source)


def _folder_source(folder: str) -> tuple[dict[str, Any], Iterator[np.ndarray]]:
    from .. import io
    files = frame_files(folder)
    if len(files) < 2:
        raise InputError(f"frame folder {folder!r} holds {len(files)} image(s) ({', '.join(FRAME_EXTENSIONS)}); "
                         f"at least two are needed")
    first = io.read_image(os.path.join(folder, files[0]))
    meta = {"size": (first.shape[1], first.shape[0]), "fps": None, "frames": len(files)}

    def frames() -> Iterator[np.ndarray]:
        for f in files:
            img = _to_rgb8(io.read_image(os.path.join(folder, f)))
            if (img.shape[1], img.shape[0]) != meta["size"]:
                raise InputError(f"frame {f!r} in {folder!r} is {img.shape[1]}×{img.shape[0]}, the first frame is "
                                 f"{meta['size'][0]}×{meta['size'][1]}; all frames must have the same size")
            yield img

    return meta, frames()


def _video_source(path: str) -> tuple[dict[str, Any], Iterator[np.ndarray]]:
    import imageio_ffmpeg
    gen = imageio_ffmpeg.read_frames(path, pix_fmt="rgb24")
    try:
        info = next(gen)
    except (RuntimeError, OSError, StopIteration, ValueError) as exc:
        gen.close()
        text = str(exc).strip()
        raise FlowFormatError(f"cannot read video {path!r}: {text.splitlines()[-1] if text else exc}; "
                              f"is it a video file ffmpeg understands?") from None
    w, h = info["size"]
    fps = info.get("fps") or None
    n = None
    dur = info.get("duration")
    if fps and dur and np.isfinite(dur):
        n = int(round(fps * dur))  # what the header claims; a truncated file yields fewer
    meta = {"size": (w, h), "fps": fps, "frames": n}

    def frames() -> Iterator[np.ndarray]:
        try:
            for buf in gen:
                yield np.frombuffer(buf, np.uint8).reshape(h, w, 3)
        except RuntimeError as exc:
            raise FlowFormatError(f"error while decoding video {path!r}: {exc}") from None
        finally:
            gen.close()

    return meta, frames()


def _ends_digest(path: str, nbytes: int) -> str:
    """sha256 of the first and the last `nbytes` bytes (the whole file when it is short)."""
    h = hashlib.sha256()
    size = os.path.getsize(path)
    with open(path, "rb") as fh:
        h.update(fh.read(nbytes))
        if size > nbytes:
            fh.seek(max(nbytes, size - nbytes))
            h.update(fh.read(nbytes))
    return h.hexdigest()


def input_identity(source: str) -> dict[str, Any]:
    """What identifies the input's content, cheaply: for a file its size and a hash of its first and
    last MiB; for a folder the frame names in order, each with its size and a hash of its first and
    last 64 KiB.  Modification times are left out on purpose: a copied clip (new mtime, same bytes)
    is the same input."""
    try:
        if os.path.isdir(source):
            h = hashlib.sha256()
            files = frame_files(source)
            for f in files:
                p = os.path.join(source, f)
                h.update(f"{f}\0{os.path.getsize(p)}\0{_ends_digest(p, _FRAME_HASH_BYTES)}\n".encode())
            return {"kind": "folder", "frames": len(files), "digest": h.hexdigest()}
        return {"kind": "file", "bytes": os.path.getsize(source), "digest": _ends_digest(source, _HASH_BYTES)}
    except OSError as exc:
        raise InputError(f"cannot read video input {source!r}: {exc.strerror or exc}") from None


def _encoder_settings(width: int, height: int, quality: int) -> dict[str, Any]:
    """imageio-ffmpeg writer settings that keep any frame size: macro_block_size=1 stops the resize
    to multiples of 16, and odd sizes use 4:4:4 chroma (H.264 4:2:0 needs even sizes)."""
    odd = width % 2 or height % 2
    return {"macro_block_size": 1, "quality": quality, "ffmpeg_log_level": "error",
            "pix_fmt_out": "yuv444p" if odd else "yuv420p"}


def write_test_video(path: str, frames: int = 8, height: int = 96, width: int = 128,
                     motion: tuple[float, float] = (2.0, 1.0), seed: int = 0, fps: float = 10.0,
                     faststart: bool = False) -> np.ndarray:
    """Write a procedural test video whose true flow is known: a smooth random texture translated by
    `motion` (u, v) pixels per frame, rendered by bilinear sampling of a larger texture.

    Returns the ground-truth flow between consecutive frames (H×W×2 float32, constant = motion).
    Frames are H.264 at imageio-ffmpeg's best quality setting (small coding noise remains).
    faststart puts the mp4 index first (a file cut short then still opens, with fewer frames)."""
    import cv2
    import imageio_ffmpeg
    rng = np.random.default_rng(seed)
    u, v = motion
    pad = int(np.ceil(max(abs(u), abs(v)) * frames)) + 8
    big_h, big_w = height + 2 * pad, width + 2 * pad
    tex = rng.random((big_h // 4 + 2, big_w // 4 + 2, 3)).astype(np.float32)
    tex = cv2.resize(tex, (big_w, big_h), interpolation=cv2.INTER_CUBIC)
    tex = cv2.GaussianBlur(tex, (0, 0), 1.0)
    tex = (tex - tex.min()) / (tex.max() - tex.min()) * 255.0
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    extra = {"output_params": ["-movflags", "+faststart"]} if faststart else {}
    with atomic_path(path) as tmp:
        gen = imageio_ffmpeg.write_frames(tmp, (width, height), fps=fps, **_encoder_settings(width, height, 10),
                                          **extra)
        gen.send(None)
        for t in range(frames):
            # Frame t shows texture point (x + pad - t*u, y + pad - t*v) at pixel (x, y): content moves by +motion.
            mx, my = xs + pad - t * u, ys + pad - t * v
            img = cv2.remap(tex, mx, my, interpolation=cv2.INTER_LINEAR)
            gen.send(np.ascontiguousarray(np.clip(np.rint(img), 0, 255).astype(np.uint8)))
        gen.close()
        if os.path.getsize(tmp) == 0:
            raise FlowFormatError(f"ffmpeg could not write the test video {path!r} (see its messages above)")
    return np.broadcast_to(np.array([u, v], np.float32), (height, width, 2)).copy()
