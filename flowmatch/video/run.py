"""video_flow: flow between consecutive used frames of a video or frame folder, one file per pair.

See the package docstring (flowmatch/video/__init__.py) for what it guarantees."""
from __future__ import annotations

import contextlib
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from .._outputs import check_outputs, same_file
from ..errors import InputError, MethodUnavailableError, OutputConflictError
from . import record
from .pipeline import DecodeStats, Pair, VizWriter, overlapped, pairs_of
from .progress import Progress
from .source import frame_source, input_identity
from .workspace import Workspace, sigterm_as_interrupt

log = logging.getLogger("flowmatch.video")
VIDEO_EXTENSIONS = (".mp4", ".mkv", ".avi", ".mov", ".webm")


@dataclass
class VideoSummary:
    """What video_flow did: pair counts, output files, timing (seconds) and throughput (pairs/s).

    expected_pairs: pairs the input's header (or folder listing) promised between start and end
    (None if unknown); truncated: the input ended before that (fewer frames than its header claims)."""
    pairs: int = 0
    computed: int = 0
    skipped: int = 0
    outputs: list[str] = field(default_factory=list)
    viz: str | None = None
    seconds: float = 0.0
    fps: float = 0.0
    expected_pairs: int | None = None
    frames_read: int = 0
    truncated: bool = False
    world_size: int = 1


def flow_path(out: str, index: int, fmt: str) -> str:
    """Output file of the pair whose first frame is `index`."""
    return os.path.join(out, f"flow_{index:06d}.{fmt}")


def default_workers(method: str) -> int:
    """Pairs `video_flow` computes at once for `method` by default: its `video_workers` on a multi-core
    CPU (one more than the cores at most: a pair in flight while another waits on its pool), else 1."""
    from ..methods.registry import get_method
    cores = os.cpu_count() or 1
    return 1 if cores == 1 else max(1, min(get_method(method).video_workers, cores + 1))


def _check_args(source: str, out: str, viz: str | None, every: int, start: int, end: int | None, fmt: str) -> None:
    if every < 1:
        raise InputError(f"--every must be at least 1, got {every}")
    if start < 0 or (end is not None and end <= start):
        raise InputError(f"need 0 <= --start < --end, got start={start}, end={end}")
    if fmt not in ("flo", "png"):
        raise InputError(f"flow format must be 'flo' or 'png' (KITTI 16-bit), got {fmt!r}")
    if viz is not None and os.path.splitext(viz)[1].lower() not in VIDEO_EXTENSIONS:
        raise InputError(f"--viz {viz!r}: give a video file name ({', '.join(VIDEO_EXTENSIONS)})")
    if os.path.exists(out) and not os.path.isdir(out):
        raise InputError(f"--out {out!r} exists and is not a folder")
    check_outputs({"--viz": viz}, {"INPUT": source})
    if os.path.isdir(source) and same_file(out, source):
        # Flows written among the frames would be frames of the next run; a sub-folder is fine.
        raise OutputConflictError(f"--out {out!r} is the input frame folder {source!r}; write the flows to "
                                  f"another folder (a sub-folder such as {os.path.join(source, 'flows')!r} works)")


def _pair_count(frames: int | None, start: int, end: int | None, every: int) -> int | None:
    if frames is None:
        return None
    last = frames if end is None else min(end, frames)
    return max(0, (last - 1 - start) // every) if last > start else 0


def _share(dist: Any, n: int | None) -> tuple[Callable[[int], bool], int | None, range | None]:
    """(wanted(ordinal), last ordinal to read, this rank's block) for a rank of a sharded run:
    a contiguous block when the pair count is known (the rank stops decoding after it), else every
    W-th pair."""
    if not dist.distributed:
        return (lambda k: True), None, None
    if n is None:
        return (lambda k: k % dist.world_size == dist.rank), None, None
    from ..distributed import shard_range
    block = shard_range(n, dist)
    return (lambda k: k in block), (block.stop - 1 if len(block) else -1), block


def _process(pairs: Any, out: str, fmt: str, resume: bool, run: tuple[str, str, dict[str, Any]],
             viz_to: tuple | None, ws: Workspace, summary: VideoSummary, bar: Progress, workers: int = 1) -> None:
    """Flow (or the existing file, on resume) for each pair, written by the writer thread."""
    from .. import io
    from ..methods.registry import flow as run_flow

    method, device, options = run
    writer: list[VizWriter] = []

    def work(p: Pair) -> tuple[Pair, np.ndarray | None]:
        if resume and os.path.isfile(flow_path(out, p.index, fmt)):
            bar.skipped()
            return p, None
        bar.begin(p.ordinal)
        return p, run_flow(p.first, p.second, method=method, device=device, **options)

    def write(item: tuple[Pair, np.ndarray | None]) -> None:
        p, f = item
        path = flow_path(out, p.index, fmt)
        computed = f is not None
        if not computed:
            summary.skipped += 1
            f = io.read_flow(path)[0] if viz_to else None
        else:
            tmp = ws.temp_for(os.path.basename(path))
            io.write_flow(tmp, f)
            os.replace(tmp, path)  # appears complete, or not at all
            summary.computed += 1
        summary.pairs += 1
        summary.outputs.append(path)
        if viz_to:
            if not writer:
                writer.append(VizWriter(viz_to[0], viz_to[1], viz_to[2], ws))
            writer[0].add(p.first, f, viz_to[3])
        bar.done(computed)

    ok = False
    try:
        overlapped(pairs, work, write, depth=max(2, workers), workers=workers)
        ok = True
    finally:
        if writer:
            writer[0].close(ok)
            if ok:
                summary.viz = viz_to[0]


def video_flow(source: str, out: str, method: str | None = None, *, viz: str | None = None, every: int = 1,
               start: int = 0, end: int | None = None, fmt: str = "flo", resume: bool = False,
               device: str = "cpu", options: dict[str, Any] | None = None, viz_max_radius: float | None = None,
               progress: bool = True, workers: int | None = None) -> VideoSummary:
    """Compute and write the flow between consecutive used frames of `source`.

    Args:
        source: a video file (anything ffmpeg reads) or a folder of same-sized frames (sorted by name).
        out: folder for flow_XXXXXX.flo / .png files (XXXXXX = index of the pair's first frame) and
            video_settings.json (the settings that computed them).
        method: registered method name; default: the best one available here.
        viz: optional video path (.mp4) showing frame | colour-coded flow side by side.
        every: use every K-th frame (flow between frames i and i+K).
        start, end: frame indices, start inclusive, end exclusive (None = to the end).
        fmt: "flo" or "png" (KITTI 16-bit).
        resume: skip pairs whose flow file exists already (the folder's settings must match).
        viz_max_radius: flow magnitude (px) of full colour saturation; None = per frame.
        workers: pairs computed at once (None: `default_workers(method)`);
            the files are the same for any value.
    Returns a VideoSummary (on every rank under torchrun; rank 0's covers the whole job).  Flow files
    hold H×W×2 float32 pixels, x (u) first.
    Raises InputError (bad arguments, a folder of other settings), OutputConflictError (an output
    that is the input), FlowFormatError (an unreadable input); KeyboardInterrupt on Ctrl-C and
    workspace.Terminated on SIGTERM, after the pair in flight is finished and temporaries removed.
    """
    from ..distributed import collective_backend, distributed, gather_objects, rank_device, shared_check, shared_failure
    from ..methods.registry import best_method, get_method

    _check_args(source, out, viz, every, start, end, fmt)
    method = method or best_method()
    reason = get_method(method).unavailable_reason()
    if reason is not None:
        raise MethodUnavailableError(f"method {method!r} cannot run here: {reason}")
    options = dict(options or {})
    if workers is None:
        workers = default_workers(method)
    elif isinstance(workers, bool) or not isinstance(workers, int) or not 1 <= workers <= 64:
        raise InputError(f"workers must be an integer from 1 to 64, got {workers!r}")
    with sigterm_as_interrupt(), distributed(backend=collective_backend(device.startswith("cuda"))) as dist:
        with shared_check(dist):  # under torchrun a bare "cuda" is this rank's GPU (the record keeps "cuda")
            device = rank_device(device, dist)
        with shared_failure(dist):
            summary = _run_share(source, out, method, options, every, start, end, fmt, resume, device,
                                 None if dist.distributed else viz, viz_max_radius, progress, dist, workers)
        parts = gather_objects(summary, dist)
    if dist.distributed:
        summary = _merge(parts)
        if viz and dist.is_main:  # one video: drawn after every rank is done, from the files they wrote
            drawn = _run_share(source, out, method, options, every, start, end, fmt, True, device, viz,
                               viz_max_radius, progress, None)
            summary.viz = drawn.viz
    if summary.truncated and dist.is_main:
        log.warning("warning: %r ended after %d frames, fewer than its header claims (%d of %s pairs written; "
                    "is the file cut short?)", source, summary.frames_read, summary.pairs, summary.expected_pairs)
    if summary.pairs == 0 and not summary.truncated:
        raise InputError(f"{source!r} has fewer than two frames between start={start} and end={end} "
                         f"(every={every}); nothing to do")
    return summary


def _merge(parts: list[VideoSummary]) -> VideoSummary:
    s = VideoSummary(world_size=len(parts), expected_pairs=parts[0].expected_pairs)
    for p in parts:
        s.pairs += p.pairs
        s.computed += p.computed
        s.skipped += p.skipped
        s.outputs += p.outputs
        s.truncated |= p.truncated
        s.frames_read = max(s.frames_read, p.frames_read)
        s.seconds = max(s.seconds, p.seconds)
    s.fps = s.pairs / s.seconds if s.seconds > 0 else 0.0
    return s


def _run_share(source: str, out: str, method: str, options: dict[str, Any], every: int, start: int,
               end: int | None, fmt: str, resume: bool, device: str, viz: str | None,
               viz_max_radius: float | None, progress: bool, dist: Any, workers: int = 1) -> VideoSummary:
    """This process's share of the pairs (all of them when `dist` is None or a single process)."""
    meta, frames = frame_source(source)
    n = _pair_count(meta["frames"], start, end, every)
    single = dist is None or not dist.distributed
    wanted, last, block = _share(dist, n) if not single else ((lambda k: True), None, None)
    current = record.settings(method, options, every, start, fmt, device, meta["size"], input_identity(source))
    os.makedirs(out, exist_ok=True)
    summary = VideoSummary(expected_pairs=n, world_size=1 if single else dist.world_size)
    total = n if block is None else len(block)
    watch = None
    if not single and dist.is_main and n is not None:  # rank 0 shows every rank's finished files
        total, watch = n, (out, {os.path.basename(flow_path(out, start + k * every, fmt)) for k in range(n)})
    show = progress and (single or dist.is_main)
    stats = DecodeStats()
    with Workspace(out) as ws:
        record.claim(out, current, ws.dir)
        bar = Progress(total, f"video:{method}", show, watch)
        viz_to = None if not viz else (viz, meta["size"], (meta["fps"] or 10.0) / every, viz_max_radius)
        t0 = time.perf_counter()
        try:
            pairs = pairs_of(frames, start, end, every, wanted, last, stats)
            _process(pairs, out, fmt, resume, (method, device, options), viz_to, ws, summary, bar, workers)
        finally:
            bar.close()
            with contextlib.suppress(ValueError):  # ValueError: still running in a decoder that did not stop
                frames.close()  # stops ffmpeg when this share ended before the input did
    summary.seconds = time.perf_counter() - t0
    summary.fps = summary.pairs / summary.seconds if summary.seconds > 0 else 0.0
    summary.frames_read = stats.frames_read
    if stats.exhausted and meta["frames"] is not None:
        needed = meta["frames"] if end is None else min(end, meta["frames"])
        if block is not None and len(block):  # this rank only needed frames up to its last pair
            needed = min(needed, start + (block.stop) * every + 1)
        summary.truncated = stats.frames_read < needed - 1  # one frame of slack: fps × duration rounds
    return summary
