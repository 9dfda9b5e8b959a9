"""Flow over a video (or a folder of frames), streamed in constant memory.

    from flowmatch.video import video_flow
    summary = video_flow("clip.mp4", "flows/", method="dis-medium", viz="flow.mp4", every=2)

Frames are decoded one at a time through imageio-ffmpeg (never the whole video in memory).  With
`every=K` the frames start, start+K, start+2K, ... (before `end`) are used and the flow is computed
between consecutive used frames; the flow from frame i is written to <out>/flow_{i:06d}.flo (or
.png, KITTI 16-bit).  Each file is written atomically, so an interrupted run loses at most the pair
in flight, and `resume=True` skips pairs whose file already exists (their flow is read back only
when a visualisation video is requested).  The optional visualisation video shows each first frame
and its colour-coded flow side by side.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np

from ._atomic import atomic_path
from .errors import FlowFormatError, InputError, MethodUnavailableError

FRAME_EXTENSIONS = (".png", ".jpg", ".jpeg", ".ppm", ".pgm", ".bmp", ".tif", ".tiff")


@dataclass
class VideoSummary:
    """What video_flow did: pair counts, output files, timing (seconds) and throughput (pairs/s)."""
    pairs: int = 0
    computed: int = 0
    skipped: int = 0
    outputs: list[str] = field(default_factory=list)
    viz: str | None = None
    seconds: float = 0.0
    fps: float = 0.0


def _to_rgb8(img: np.ndarray) -> np.ndarray:
    if img.dtype == np.uint16:
        img = (img.astype(np.uint32) * 255 // 65535).astype(np.uint8)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    return np.ascontiguousarray(img)


def frame_source(source: str) -> tuple[dict, Iterator[np.ndarray]]:
    """(meta, frames) for a video file or a folder of frames.

    meta has "size" (width, height), "fps" (None for folders) and "frames" (count, None if unknown).
    frames yields H×W×3 uint8 RGB arrays one at a time."""
    if not os.path.exists(source):
        raise InputError(f"video input {source!r} does not exist; pass a video file or a folder of frames")
    if os.path.isdir(source):
        return _folder_source(source)
    return _video_source(source)


def _folder_source(folder: str) -> tuple[dict, Iterator[np.ndarray]]:
    from . import io
    files = sorted(f for f in os.listdir(folder)
                   if os.path.splitext(f)[1].lower() in FRAME_EXTENSIONS and not f.startswith("."))
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


def _video_source(path: str) -> tuple[dict, Iterator[np.ndarray]]:
    import imageio_ffmpeg
    gen = imageio_ffmpeg.read_frames(path, pix_fmt="rgb24")
    try:
        info = next(gen)
    except (RuntimeError, OSError, StopIteration, ValueError) as exc:
        gen.close()
        raise FlowFormatError(f"cannot read video {path!r}: {str(exc).strip().splitlines()[-1] if str(exc).strip() else exc}; "
                              f"is it a video file ffmpeg understands?") from None
    w, h = info["size"]
    fps = info.get("fps") or None
    n = None
    dur = info.get("duration")
    if fps and dur and np.isfinite(dur):
        n = int(round(fps * dur))
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


def _selected(frames: Iterator[np.ndarray], start: int, end: int | None, every: int) -> Iterator[tuple[int, np.ndarray]]:
    for i, img in enumerate(frames):
        if end is not None and i >= end:
            break
        if i >= start and (i - start) % every == 0:
            yield i, img


def flow_path(out: str, index: int, fmt: str) -> str:
    """Output file of the pair whose first frame is `index`."""
    return os.path.join(out, f"flow_{index:06d}.{fmt}")


class _VizWriter:
    """The side-by-side visualisation video (frame | colour-coded flow), written atomically."""

    def __init__(self, path: str, size: tuple[int, int], fps: float) -> None:
        import imageio_ffmpeg
        self._ctx = atomic_path(path)
        tmp = self._ctx.__enter__()
        w, h = size
        self._tmp = tmp
        self._gen = imageio_ffmpeg.write_frames(tmp, (2 * w, h), fps=fps, **_encoder_settings(2 * w, h, 7))
        self._gen.send(None)

    def add(self, frame: np.ndarray, flow: np.ndarray, max_radius: float | None) -> None:
        from .viz import flow_to_color
        panel = np.concatenate([frame, flow_to_color(flow, max_radius=max_radius)], axis=1)
        self._gen.send(np.ascontiguousarray(panel))

    def close(self, ok: bool) -> None:
        self._gen.close()
        if ok and os.path.getsize(self._tmp) == 0:
            self._ctx.__exit__(RuntimeError, RuntimeError("empty"), None)
            raise FlowFormatError("ffmpeg wrote an empty visualisation video (see its messages above)")
        if ok:
            self._ctx.__exit__(None, None, None)
        else:
            self._ctx.__exit__(RuntimeError, RuntimeError("aborted"), None)


def _remove_stale_temporaries(out: str) -> None:
    """Delete temporary files a killed run left behind (atomic writes name them .flow_*.tmp*)."""
    for f in os.listdir(out):
        if f.startswith(".flow_") and ".tmp" in f:
            try:
                os.unlink(os.path.join(out, f))
            except OSError:
                pass


def _encoder_settings(width: int, height: int, quality: int) -> dict[str, Any]:
    """imageio-ffmpeg writer settings that keep any frame size: macro_block_size=1 stops the resize
    to multiples of 16, and odd sizes use 4:4:4 chroma (H.264 4:2:0 needs even sizes)."""
    odd = width % 2 or height % 2
    return {"macro_block_size": 1, "quality": quality, "ffmpeg_log_level": "error",
            "pix_fmt_out": "yuv444p" if odd else "yuv420p"}


def _check_video_args(out: str, viz: str | None, every: int, start: int, end: int | None, fmt: str) -> None:
    if every < 1:
        raise InputError(f"--every must be at least 1, got {every}")
    if start < 0 or (end is not None and end <= start):
        raise InputError(f"need 0 <= --start < --end, got start={start}, end={end}")
    if fmt not in ("flo", "png"):
        raise InputError(f"flow format must be 'flo' or 'png' (KITTI 16-bit), got {fmt!r}")
    if viz is not None and os.path.splitext(viz)[1].lower() not in (".mp4", ".mkv", ".avi", ".mov", ".webm"):
        raise InputError(f"--viz {viz!r}: give a video file name (.mp4, .mkv, .avi, .mov, .webm)")
    if os.path.exists(out) and not os.path.isdir(out):
        raise InputError(f"--out {out!r} exists and is not a folder")


def _pairs(frames: Iterator[tuple[int, np.ndarray]]) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """(index of the first frame, first frame, second frame) of consecutive selected frames."""
    prev: tuple[int, np.ndarray] | None = None
    for i, img in frames:
        if prev is not None:
            yield prev[0], prev[1], img
        prev = (i, img)


def _write_flows(pairs: Iterator[tuple[int, np.ndarray, np.ndarray]], out: str, fmt: str, resume: bool,
                 run: tuple[str, str, dict[str, Any]], viz_to: tuple | None, summary: VideoSummary,
                 bar: Any) -> str | None:
    """Flow file per pair into `out` (counted in `summary`); with viz_to = (path, size, fps,
    max_radius) also the side-by-side video.  Returns the video path when one was written."""
    from . import io
    from .methods.registry import flow as run_flow

    method, device, options = run
    writer = None
    ok = False
    try:
        for j, img0, img in pairs:
            path = flow_path(out, j, fmt)
            if resume and os.path.isfile(path):
                summary.skipped += 1
                f = io.read_flow(path)[0] if viz_to else None
            else:
                f = run_flow(img0, img, method=method, device=device, **options)
                io.write_flow(path, f)
                summary.computed += 1
            summary.pairs += 1
            summary.outputs.append(path)
            if viz_to:
                if writer is None:
                    writer = _VizWriter(viz_to[0], viz_to[1], viz_to[2])
                writer.add(img0, f, viz_to[3])
            if bar is not None:
                bar.update(1)
        ok = True
    finally:
        if writer is not None:
            writer.close(ok)
    return viz_to[0] if writer is not None else None


def video_flow(source: str, out: str, method: str | None = None, *, viz: str | None = None, every: int = 1,
               start: int = 0, end: int | None = None, fmt: str = "flo", resume: bool = False,
               device: str = "cpu", options: dict[str, Any] | None = None, viz_max_radius: float | None = None,
               progress: bool = True) -> VideoSummary:
    """Compute and write the flow between consecutive used frames of `source`.

    Args:
        source: a video file (anything ffmpeg reads) or a folder of same-sized frames (sorted by name).
        out: folder for flow_XXXXXX.flo / .png files (XXXXXX = index of the pair's first frame).
        method: registered method name; default: the best one available here.
        viz: optional video path (.mp4) showing frame | colour-coded flow side by side.
        every: use every K-th frame (flow between frames i and i+K).
        start, end: frame indices, start inclusive, end exclusive (None = to the end).
        fmt: "flo" or "png" (KITTI 16-bit).
        resume: skip pairs whose flow file exists already.
        viz_max_radius: flow magnitude (px) of full colour saturation; None = per frame.
    Returns a VideoSummary.  Flow files hold H×W×2 float32 pixels, x (u) first.
    """
    from .methods.registry import best_method, get_method

    _check_video_args(out, viz, every, start, end, fmt)
    method = method or best_method()
    reason = get_method(method).unavailable_reason()
    if reason is not None:
        raise MethodUnavailableError(f"method {method!r} cannot run here: {reason}")
    meta, frames = frame_source(source)
    os.makedirs(out, exist_ok=True)
    _remove_stale_temporaries(out)
    total = None
    if meta["frames"]:
        last = meta["frames"] if end is None else min(end, meta["frames"])
        total = max(0, (last - 1 - start) // every) if last > start else 0
    summary = VideoSummary()
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=total, desc=f"video:{method}", unit="pair", dynamic_ncols=True)
    viz_to = None if not viz else (viz, meta["size"], (meta["fps"] or 10.0) / every, viz_max_radius)
    t0 = time.perf_counter()
    try:
        pairs = _pairs(_selected(frames, start, end, every))
        summary.viz = _write_flows(pairs, out, fmt, resume, (method, device, options or {}), viz_to, summary, bar)
    finally:
        if bar is not None:
            bar.close()
    summary.seconds = time.perf_counter() - t0
    summary.fps = summary.pairs / summary.seconds if summary.seconds > 0 else 0.0
    if summary.pairs == 0:
        raise InputError(f"{source!r} has fewer than two frames between start={start} and end={end} "
                         f"(every={every}); nothing to do")
    return summary


def write_test_video(path: str, frames: int = 8, height: int = 96, width: int = 128, motion: tuple[float, float] = (2.0, 1.0),
                     seed: int = 0, fps: float = 10.0) -> np.ndarray:
    """Write a procedural test video whose true flow is known: a smooth random texture translated by
    `motion` (u, v) pixels per frame, rendered by bilinear sampling of a larger texture.

    Returns the ground-truth flow between consecutive frames (H×W×2 float32, constant = motion).
    Frames are H.264 at imageio-ffmpeg's best quality setting (small coding noise remains)."""
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
    with atomic_path(path) as tmp:
        gen = imageio_ffmpeg.write_frames(tmp, (width, height), fps=fps, **_encoder_settings(width, height, 10))
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
