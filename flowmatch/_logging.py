"""The `flowmatch` logger hierarchy, and the one place that gives it a handler (the command line).

Library modules log through ``logging.getLogger(__name__)`` (so every logger sits below
"flowmatch") and never add handlers or set levels: a program that imports flowmatch decides where
messages go.  Levels used: INFO for progress a user waits on (a stage of a slow method, a pair of a
folder), DEBUG for details, WARNING for results the user should look at.

`configure` is what `flowmatch.cli.main` calls: one handler on the "flowmatch" logger writing to
whatever ``sys.stderr`` is at the time of each message; it returns a function that puts the
logger back as it was (the CLI can be called in-process, e.g. by tests, several times).
"""
from __future__ import annotations

import logging
import sys
from typing import Callable

ROOT = "flowmatch"

__all__ = ["ROOT", "level_for", "configure"]


def level_for(verbose: int, quiet: int, default: int = logging.WARNING) -> int:
    """Logging level of the CLI's -v/-q counts: -q shows only warnings and errors, -qq only errors;
    -v shows progress (INFO), -vv details (DEBUG); neither: `default` (the command's own choice)."""
    if quiet > 0:
        return logging.WARNING if quiet == 1 else logging.ERROR
    if verbose > 0:
        return logging.INFO if verbose == 1 else logging.DEBUG
    return default


class _StderrHandler(logging.StreamHandler):
    """A StreamHandler bound to the current sys.stderr, looked up per message (not at creation)."""

    def __init__(self, prefix: str) -> None:
        super().__init__(sys.stderr)
        self.prefix = prefix

    @property  # type: ignore[override]
    def stream(self):  # noqa: D401 - logging reads .stream for every record
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # StreamHandler.__init__ assigns it; the property ignores it
        pass

    def format(self, record: logging.LogRecord) -> str:
        text = record.getMessage()
        if record.exc_info and record.levelno >= logging.ERROR:
            text += "\n" + logging.Formatter().formatException(record.exc_info)
        if record.levelno >= logging.ERROR:
            return f"{self.prefix}: error: {text}"
        if record.levelno >= logging.WARNING:
            return f"{self.prefix}: warning: {text}"
        return text  # progress lines stay short


def configure(level: int, prefix: str = "flowmatch") -> Callable[[], None]:
    """Send "flowmatch.*" messages of `level` and above to stderr (warnings prefixed by `prefix`,
    e.g. "flowmatch flow"); returns the function that undoes it."""
    logger = logging.getLogger(ROOT)
    saved = (logger.level, logger.propagate, list(logger.handlers))
    for h in list(logger.handlers):
        if isinstance(h, _StderrHandler):  # a previous in-process call that did not undo
            logger.removeHandler(h)
    handler = _StderrHandler(prefix)
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False  # a root handler of the host program would print every line twice

    def restore() -> None:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]
        for h in saved[2]:
            if h not in logger.handlers:
                logger.addHandler(h)

    return restore
