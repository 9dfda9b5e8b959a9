"""Per-writer temporary files, their cleanup, and SIGTERM handled like Ctrl-C.

Several `flowmatch video` processes may write into one output folder (two `--resume` runs, or the
ranks of a torchrun job).  Each writer owns a tag host.pid.token; its temporaries carry the tag:

- flow files are written inside `<out>/.video-writer.<tag>/` and renamed into `<out>` when complete;
- the visualisation video is written beside its target as `.<name>.<tag>.tmp<ext>`.

A writer removes its own temporaries when it ends (also on error, Ctrl-C or SIGTERM).  Another
writer's are removed only when provably stale: the tag names this host and a process id that no
longer runs.  Temporaries of other hosts are left alone (on a shared folder their owner may be alive).
"""
from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import signal
import threading
from typing import Iterator

from .._atomic import host_tag, process_alive

_TAG = r"(?P<host>[A-Za-z0-9-]+)\.(?P<pid>\d+)\.(?P<token>[0-9a-f]{8})"
_WRITER_DIR = re.compile(rf"^\.video-writer\.{_TAG}$")
_OWNED_TEMP = re.compile(rf"^\.(?P<base>.+)\.{_TAG}\.tmp(?P<ext>\.[A-Za-z0-9]+)?$")


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived; raised like KeyboardInterrupt so the same cleanup runs (exit code 143)."""


def _stale(match: re.Match[str], own_token: str) -> bool:
    """A temporary of this host whose process is gone (or an earlier writer of this very pid)."""
    if match["host"] != host_tag():
        return False
    pid = int(match["pid"])
    if pid == os.getpid():
        return match["token"] != own_token
    return not process_alive(pid)


class Workspace:
    """The temporaries of one writer in output folder `out` (a context manager: removes them on exit)."""

    def __init__(self, out: str) -> None:
        self.out = out
        self.token = secrets.token_hex(4)
        self.tag = f"{host_tag()}.{os.getpid()}.{self.token}"
        self.dir = os.path.join(out, f".video-writer.{self.tag}")

    def __enter__(self) -> "Workspace":
        self.remove_stale(self.out)
        os.makedirs(self.dir, exist_ok=False)
        return self

    def __exit__(self, *exc: object) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    def temp_for(self, name: str) -> str:
        """Where to write output `name` before renaming it into the output folder."""
        return os.path.join(self.dir, name)

    def owned_temp(self, target: str) -> str:
        """A temporary beside `target` (same file system, so the final rename is atomic)."""
        folder, name = os.path.split(os.path.abspath(target))
        base, ext = os.path.splitext(name)
        return os.path.join(folder, f".{base}.{self.tag}.tmp{ext}")

    def remove_stale(self, folder: str, target: str | None = None) -> list[str]:
        """Remove stale writer folders in `folder` (and, with `target`, stale temporaries of it)."""
        removed = []
        want = os.path.splitext(os.path.basename(target)) if target else None
        try:
            names = os.listdir(folder)
        except OSError:
            return removed
        for name in names:
            m = _WRITER_DIR.match(name)
            path = os.path.join(folder, name)
            if m and _stale(m, self.token):
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path)
                continue
            m = _OWNED_TEMP.match(name)
            if m and want and (m["base"], m["ext"] or "") == want and _stale(m, self.token):
                with contextlib.suppress(OSError):
                    os.unlink(path)
                    removed.append(path)
        return removed


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """While the block runs, SIGTERM raises Terminated in the main thread (like Ctrl-C raises
    KeyboardInterrupt), so the block's cleanup runs.  Only installed from the main thread and only
    over the default handler (an application's own handler is kept); the old handler is restored."""
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return

    def handler(signum: int, frame: object) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not break the cleanup
        raise Terminated()

    signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
