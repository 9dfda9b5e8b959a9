"""flowmatch._logging (the CLI's logging set-up) and flowmatch._devices (the --device rule)."""
from __future__ import annotations

import io as stdio
import logging
import sys

import pytest
import torch

from flowmatch import _logging
from flowmatch._devices import parse_device, require_device
from flowmatch.errors import InputError, MethodUnavailableError


@pytest.mark.parametrize("verbose,quiet,default,level", [
    (0, 0, logging.WARNING, logging.WARNING), (0, 0, logging.INFO, logging.INFO),
    (1, 0, logging.WARNING, logging.INFO), (2, 0, logging.WARNING, logging.DEBUG), (5, 0, logging.INFO, logging.DEBUG),
    (0, 1, logging.INFO, logging.WARNING), (0, 2, logging.INFO, logging.ERROR), (3, 1, logging.INFO, logging.WARNING),
])
def test_level_for(verbose, quiet, default, level):
    assert _logging.level_for(verbose, quiet, default) == level


def test_configure_follows_sys_stderr_and_undoes_itself(monkeypatch):
    logger = logging.getLogger("flowmatch")
    before = (logger.level, logger.propagate, list(logger.handlers))
    undo = _logging.configure(logging.INFO, prefix="flowmatch x")
    try:
        child = logging.getLogger("flowmatch.some.module")
        for _ in range(2):  # a new stderr each time (as pytest's capsys does): the handler writes to it
            buf = stdio.StringIO()
            monkeypatch.setattr(sys, "stderr", buf)
            child.debug("hidden")
            child.info("stage 1/5 took %.1f s", 2.0)
            child.warning("careful")
            child.error("broken")
            assert buf.getvalue().splitlines() == ["stage 1/5 took 2.0 s", "flowmatch x: warning: careful",
                                                   "flowmatch x: error: broken"]
        logging.getLogger("other").warning("not ours")  # other loggers are left alone
        assert "not ours" not in buf.getvalue()
        again = _logging.configure(logging.ERROR)  # a second set-up replaces the first handler
        buf = stdio.StringIO()
        monkeypatch.setattr(sys, "stderr", buf)
        child.warning("now hidden")
        child.error("shown once")
        assert buf.getvalue() == "flowmatch: error: shown once\n"
        again()
    finally:
        undo()
    assert (logger.level, logger.propagate, list(logger.handlers)) == before


@pytest.mark.parametrize("text,expected", [("cpu", "cpu"), ("CPU", "cpu"), (" cuda ", "cuda"), ("cuda:0", "cuda:0"),
                                           ("cuda:12", "cuda:12")])
def test_parse_device_accepts(text, expected):
    assert str(parse_device(text)) == expected


@pytest.mark.parametrize("text", ["tpu", "cuda:", "cuda:x", "cuda:-1", "cpu:0", "", "mps", None, 3])
def test_parse_device_refuses(text):
    with pytest.raises(InputError, match="cpu, cuda or cuda:N"):
        parse_device(text)


def test_require_device():
    assert require_device("cpu") == torch.device("cpu")
    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if n == 0:
        for text in ("cuda", "cuda:0", "cuda:3"):
            with pytest.raises(MethodUnavailableError, match="use --device cpu"):
                require_device(text)
    else:
        assert require_device(f"cuda:{n - 1}").index == n - 1
        with pytest.raises(MethodUnavailableError, match=f"only {n} CUDA device"):
            require_device(f"cuda:{n}")
