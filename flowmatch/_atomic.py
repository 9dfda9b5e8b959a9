"""Atomic file writes: write to a temporary file beside the target, then rename over it.

A failed or interrupted write leaves the previous file (if any) untouched and no partial file.
Each temporary belongs to one writer: its name ``.<name>.<host>.<pid>.<token>.tmp<ext>`` carries
the host, the process id and a random token, so two writers never share one, a writer removes only
its own, and a temporary left by a killed process (SIGKILL, power loss) is *provably* stale when it
names this host and a process that no longer runs: `clean_stale_temps` removes exactly those (resume
calls it on the run folder).  Temporaries of other hosts are left alone: on a shared folder their
owner may be alive."""
from __future__ import annotations

import contextlib
import os
import re
import secrets
import socket
import stat
from typing import IO, Iterator

_TEMP = re.compile(r"^\.(?P<base>.+)\.(?P<host>[A-Za-z0-9-]+)\.(?P<pid>\d+)\.(?P<token>[0-9a-f]{8})\.tmp"
                   r"(?P<ext>\.[A-Za-z0-9]+)?$")


def host_tag() -> str:
    """This host's name reduced to [A-Za-z0-9-] (part of every owned temporary name)."""
    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname() or "host")[:40] or "host"


def process_alive(pid: int) -> bool:
    """Whether process `pid` may still run here (unknowable counts as alive: its files are kept)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):  # exists (another user's process), or cannot tell: keep its file
        return True
    return True


def temp_name(path: str) -> str:
    """A fresh temporary path for `path`, in its folder, owned by this process (not created)."""
    folder = os.path.dirname(os.path.abspath(path))
    base, ext = os.path.splitext(os.path.basename(path))
    return os.path.join(folder, f".{base}.{host_tag()}.{os.getpid()}.{secrets.token_hex(4)}.tmp{ext}")


def is_stale_temp(name: str) -> bool:
    """True for the name of an atomic-write temporary whose writer (on this host) no longer runs."""
    m = _TEMP.match(os.path.basename(name))
    return bool(m) and m["host"] == host_tag() and not process_alive(int(m["pid"]))


def clean_stale_temps(folder: str | os.PathLike) -> list[str]:
    """Remove the provably stale temporaries in `folder` (see the module docstring); return their paths."""
    removed = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    for name in names:
        if is_stale_temp(name):
            path = os.path.join(os.fspath(folder), name)
            with contextlib.suppress(OSError):
                os.unlink(path)
                removed.append(path)
    return removed


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[str]:
    """Yield a temporary path in the target's folder; on success it replaces `path` atomically.

    The temporary name keeps the target's extension, so writers that pick a format by extension
    (imageio, OpenCV) still work."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    # O_EXCL: the name is ours alone (a collision of the random token just draws another)
    for _ in range(100):
        tmp = temp_name(path)
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # umask applies, like open()
            break
        except FileExistsError:
            continue
    else:  # pragma: no cover - 100 collisions of a 32-bit token
        raise FileExistsError(f"cannot create a temporary file beside {path!r}")
    # The mode open() gives a new file here (0o666 less the umask), read back instead of calling
    # os.umask, which would change process-wide state under other threads.
    mode = stat.S_IMODE(os.fstat(fd).st_mode)
    os.close(fd)
    try:
        yield tmp
        # Writers that recreate the file (safetensors' save_file makes it 0o600) get the umask mode
        # back, so that every output (checkpoints too) has the permissions of a plain open().
        if stat.S_IMODE(os.stat(tmp).st_mode) != mode:
            os.chmod(tmp, mode)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Like open(path, mode) for writing, but the file appears only once fully written."""
    with atomic_path(path) as tmp:
        with open(tmp, mode) as fh:
            yield fh
