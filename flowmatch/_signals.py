"""SIGINT and SIGTERM as a flag that long loops poll (training, evaluation), so they can keep what
they finished and stop cleanly with the conventional exit status 128 + signal (130 / 143).

    with GracefulStop() as stop:
        for item in work:
            if stop.requested:
                raise Interrupted(stop.signal)     # or: save a checkpoint, then break
            ...

A second signal raises KeyboardInterrupt at once.  Handlers are installed only in the main thread
(Python allows no other) and restored on exit.
"""
from __future__ import annotations

from typing import Any

__all__ = ["GracefulStop", "Interrupted"]


class Interrupted(KeyboardInterrupt):
    """A loop stopped by SIGINT/SIGTERM after keeping its finished work.  A KeyboardInterrupt, so
    code that handles Ctrl-C keeps working; `exit_code` is 128 + the signal number."""

    def __init__(self, signum: int, message: str = "") -> None:
        super().__init__(message or f"stopped by signal {int(signum)}")
        self.signal = int(signum)

    @property
    def exit_code(self) -> int:
        return 128 + self.signal


class GracefulStop:
    """Turns SIGINT and SIGTERM into a flag the loop polls (`requested`, `signal`, `exit_code`)."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._old: dict[int, Any] = {}

    @property
    def requested(self) -> bool:
        return self.signal is not None

    @property
    def exit_code(self) -> int:
        return 128 + int(self.signal) if self.signal is not None else 0

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signal is not None:  # second signal: stop now
            raise KeyboardInterrupt
        self.signal = signum

    def __enter__(self) -> "GracefulStop":
        import signal
        import threading

        if threading.current_thread() is threading.main_thread():
            for s in (signal.SIGINT, signal.SIGTERM):
                self._old[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        import signal

        for s, h in self._old.items():
            signal.signal(s, h)
        self._old = {}
