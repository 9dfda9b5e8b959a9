"""The three overlapped stages of `flowmatch video`: decode | flow | write.

Decoding (ffmpeg through a pipe) runs in one thread, the flow method in the calling thread (so that
Ctrl-C and SIGTERM land there, between two pairs) or, for methods that allow it, in a few threads
that the calling thread waits on in order, writing (flow files, the visualisation video) in
another thread; bounded queues of `depth` items between them keep memory constant.  OpenCV, torch, numpy and
file writes release the GIL, so the stages overlap on separate cores.
"""
from __future__ import annotations

import contextlib
import os
import queue
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, TypeVar

import numpy as np

from ..errors import FlowFormatError
from .source import _encoder_settings
from .workspace import Workspace

T = TypeVar("T")
U = TypeVar("U")
_POLL_S = 0.1


@dataclass
class Pair:
    """Pair `ordinal` (0, 1, ... over the used frames) from frame `index` to the next used frame."""
    ordinal: int
    index: int
    first: np.ndarray
    second: np.ndarray


@dataclass
class DecodeStats:
    """What the decoder saw: frames read from the input, and whether the input ran out."""
    frames_read: int = 0
    exhausted: bool = False


def pairs_of(frames: Iterator[np.ndarray], start: int, end: int | None, every: int,
             wanted: Callable[[int], bool], last_ordinal: int | None, stats: DecodeStats) -> Iterator[Pair]:
    """Consecutive used frames (start, start+every, ... before end) as Pairs for which wanted(ordinal);
    stops reading once pair `last_ordinal` is out (None: read to the end)."""
    prev: tuple[int, np.ndarray] | None = None
    ordinal = 0
    for i, img in enumerate(frames):
        stats.frames_read = i + 1
        if end is not None and i >= end:
            return
        if i < start or (i - start) % every:
            continue
        if prev is not None:
            if wanted(ordinal):
                yield Pair(ordinal, prev[0], prev[1], img)
            if last_ordinal is not None and ordinal >= last_ordinal:
                return
            ordinal += 1
        prev = (i, img)
    stats.exhausted = True


class _End:
    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error


class _Thread(threading.Thread):
    def __init__(self, target: Callable[[], None], name: str) -> None:
        super().__init__(name=name, daemon=True)
        self._fn = target
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the calling thread
            self.error = exc


def _put(q: queue.Queue, item: Any, stop: threading.Event | None, reader: _Thread | None = None) -> bool:
    """Put unless `stop` is set or the reading thread has died; True when the item went in."""
    while True:
        if stop is not None and stop.is_set():
            return False
        if reader is not None and not reader.is_alive():
            return False
        try:
            q.put(item, timeout=_POLL_S)
            return True
        except queue.Full:
            continue


def overlapped(produce: Iterable[T], work: Callable[[T], U], consume: Callable[[U], None], depth: int = 2,
               workers: int = 1) -> None:
    """For each item of `produce` (iterated in a thread), work(item), then consume(result) in another
    thread, in the order of `produce`.  Errors of any stage are raised here.  When work raises (or
    Ctrl-C arrives), results already computed are still consumed, then the error propagates; the
    producer is closed.

    workers: items worked on at once.  1: in the calling thread.  More: in that many threads, the
    calling thread waiting on them in order (so Ctrl-C still lands there; the pairs in flight are
    finished first) -- for thread-safe work whose single call leaves cores idle."""
    stop = threading.Event()
    q_in: queue.Queue = queue.Queue(depth)
    q_out: queue.Queue = queue.Queue(depth)

    def producer() -> None:
        end = _End()
        try:
            for item in produce:
                if not _put(q_in, item, stop):
                    break
        except BaseException as exc:  # noqa: BLE001 - raised in the calling thread
            end = _End(exc)
        finally:
            close = getattr(produce, "close", None)
            if close is not None:
                with contextlib.suppress(Exception):
                    close()  # in this thread: a generator may only be closed by the thread running it
            _put(q_in, end, stop)

    def consumer() -> None:
        while True:
            item = q_out.get()
            if isinstance(item, _End):
                return
            consume(item)

    def next_item() -> Any:
        """The next produced item, or an _End (the producer's, or one because the writer died)."""
        while True:
            try:
                return q_in.get(timeout=_POLL_S)
            except queue.Empty:
                if not cons.is_alive():
                    return _End()  # the writer failed: its error is raised below
                continue

    prod, cons = _Thread(producer, "video-decode"), _Thread(consumer, "video-write")
    prod.start()
    cons.start()
    try:
        if workers <= 1:
            while True:
                item = next_item()
                if isinstance(item, _End):
                    if item.error is not None:
                        raise item.error
                    break
                if not _put(q_out, work(item), None, cons):
                    break
        else:
            _work_in_threads(next_item, work, lambda r: _put(q_out, r, None, cons), workers)
    finally:
        stop.set()
        _put(q_out, _End(), None, cons)  # the writer finishes what it was given, then ends
        cons.join()
        prod.join(timeout=10)
    if cons.error is not None:
        raise cons.error


def _work_in_threads(next_item: Callable[[], Any], work: Callable[[Any], Any], hand_over: Callable[[Any], bool],
                     workers: int) -> None:
    """`overlapped`'s worker pool: up to `workers` items in flight, results handed over in order."""
    pending: deque = deque()
    error: BaseException | None = None
    ex = ThreadPoolExecutor(workers, thread_name_prefix="video-flow")
    try:
        ended = False
        while True:
            while not ended and len(pending) < workers:
                item = next_item()
                if isinstance(item, _End):
                    ended, error = True, item.error
                else:
                    pending.append(ex.submit(work, item))
            if not pending:
                break
            head = pending[0]
            while True:  # short waits: Ctrl-C / SIGTERM are raised in this thread between them
                try:
                    result = head.result(timeout=_POLL_S)
                    break
                except TimeoutError:
                    continue
            pending.popleft()
            if not hand_over(result):
                break
    except BaseException as exc:  # a work error, Ctrl-C or SIGTERM: finish the pairs in flight first
        error = exc
        done = []
        for fut in pending:
            with contextlib.suppress(BaseException):
                done.append(fut.result())
        for result in done:  # results computed before the error are still written
            if not hand_over(result):
                break
    finally:
        ex.shutdown(wait=True)
    if error is not None:
        raise error


class VizWriter:
    """The side-by-side visualisation video (frame | colour-coded flow), written to a temporary of
    this writer beside `path` and renamed over it only when complete."""

    def __init__(self, path: str, size: tuple[int, int], fps: float, workspace: Workspace) -> None:
        import imageio_ffmpeg
        self.path = path
        folder = os.path.dirname(os.path.abspath(path))
        os.makedirs(folder, exist_ok=True)
        workspace.remove_stale(folder, path)
        self._tmp = workspace.owned_temp(path)
        w, h = size
        # x264's 'veryfast' preset: half the encoder CPU of its default and a slightly smaller file at
        # this quality (1024×436 panels: 39 vs 80 ms a frame, measured); the encoder shares the cores with
        # the flow method.
        self._gen = imageio_ffmpeg.write_frames(self._tmp, (2 * w, h), fps=fps, output_params=["-preset", "veryfast"],
                                                **_encoder_settings(2 * w, h, 7))
        self._gen.send(None)

    def add(self, frame: np.ndarray, flow: np.ndarray, max_radius: float | None) -> None:
        from ..viz import flow_to_color
        panel = np.concatenate([frame, flow_to_color(flow, max_radius=max_radius)], axis=1)
        self._gen.send(np.ascontiguousarray(panel))

    def close(self, ok: bool) -> None:
        """Finish (ok) or abandon the video; never leaves the temporary behind."""
        try:
            try:
                self._gen.close()
            except Exception:  # noqa: BLE001 - ffmpeg gone (killed with us): only fatal when keeping the file
                if ok:
                    raise
            if ok:
                if not os.path.isfile(self._tmp) or os.path.getsize(self._tmp) == 0:
                    raise FlowFormatError("ffmpeg wrote an empty visualisation video (see its messages above)")
                os.replace(self._tmp, self.path)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(self._tmp)
