"""Progress of a video run: shown from the first frame, with the time spent on the current pair and
an ETA from the pairs computed so far (pairs skipped on --resume do not make it optimistic).

Under torchrun, rank 0 shows the whole job: it counts the finished flow files of every rank in the
shared output folder once a second."""
from __future__ import annotations

import os
import threading
import time
from typing import Any

_TICK_S = 1.0


def _clock(seconds: float) -> str:
    s = int(seconds + 0.5)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60:02d}:{s % 60:02d}"


class Progress:
    """A tqdm bar with a ticker thread; `begin(k)` before pair k's flow, `done(computed)` after its
    file is written.  total: pairs to show (None if unknown).  watch: (folder, names) to count instead
    of this process's own pairs (rank 0 of a sharded run)."""

    def __init__(self, total: int | None, desc: str, enabled: bool,
                 watch: tuple[str, set[str]] | None = None) -> None:
        self._lock = threading.Lock()
        self._total = total
        self._watch = watch
        self._stage = "decoding the first frames"
        self._pair_t0: float | None = None
        self._first_compute: float | None = None
        self._computed = 0
        self._done = 0
        self._stop = threading.Event()
        self._bar: Any = None
        self._ticker: threading.Thread | None = None
        if not enabled:
            return
        from tqdm import tqdm
        self._bar = tqdm(total=total, desc=desc, unit="pair", dynamic_ncols=True, mininterval=0.2,
                         bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]"
                         if total else "{desc}: {n_fmt} pairs [{elapsed}{postfix}]")
        self._refresh()
        self._ticker = threading.Thread(target=self._tick, name="video-progress", daemon=True)
        self._ticker.start()

    def begin(self, ordinal: int) -> None:
        with self._lock:
            now = time.perf_counter()
            self._pair_t0 = now
            if self._first_compute is None:
                self._first_compute = now
            self._stage = f"pair {ordinal + 1}: flow"

    def skipped(self) -> None:
        with self._lock:
            self._stage = "skipping finished pairs"

    def done(self, computed: bool) -> None:
        with self._lock:
            self._done += 1
            self._computed += computed
            if self._bar is not None and self._watch is None:
                self._bar.update(1)
        self._refresh()

    def _eta(self) -> str:
        if not self._total or not self._computed or self._first_compute is None or self._stage == "done":
            return ""
        rate = self._computed / max(time.perf_counter() - self._first_compute, 1e-9)
        left = max(self._total - (self._bar.n if self._bar is not None else self._done), 0)
        return f", ETA {_clock(left / rate)}"

    def _refresh(self) -> None:
        if self._bar is None:
            return
        with self._lock:
            if self._watch is not None:
                folder, names = self._watch
                try:
                    self._bar.n = len(names.intersection(os.listdir(folder)))
                except OSError:
                    pass
            busy = f" {time.perf_counter() - self._pair_t0:.0f} s" if self._pair_t0 is not None \
                and self._stage.startswith("pair") else ""
            self._bar.set_postfix_str(f"{self._stage}{busy}{self._eta()}", refresh=True)

    def _tick(self) -> None:
        while not self._stop.wait(_TICK_S):
            self._refresh()

    def close(self) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join()
        if self._bar is not None:
            with self._lock:
                self._stage = "done"
            self._refresh()
            self._bar.close()
