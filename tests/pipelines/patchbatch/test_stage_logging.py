"""The PatchBatch pipeline reports its stages through logging (INFO), or on stderr with verbose=True."""
from __future__ import annotations

import logging
import re

import numpy as np

from flowmatch.data.synthetic import generate_pair
from flowmatch.pipelines.patchbatch.pipeline import patchbatch_flow

LOGGER = "flowmatch.pipelines.patchbatch.pipeline"


def _pair():
    p = generate_pair(48, 64, 2)
    return p.img1, p.img2


def test_one_info_line_per_stage_with_its_wall_time(caplog, capsys):
    a, b = _pair()
    with caplog.at_level(logging.INFO, logger=LOGGER):
        flow, st = patchbatch_flow(a, b, preset="fast", descriptor="raw", return_stages=True)
    lines = [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno == logging.INFO]
    assert lines[0] == "[patchbatch-fast] 64×48 on cpu: 5 stages (descriptors, patchmatch, consistency, " \
                       "interpolate, refine)"
    stages = [re.match(r"\[patchbatch-fast\] (\d)/5 (\w+) +([0-9.]+) s", line) for line in lines[1:6]]
    assert [m[2] for m in stages] == list(st["timings"])
    for m in stages:  # the logged time is the measured one
        assert float(m[3]) == round(st["timings"][m[2]], 2)
    assert lines[6].startswith("[patchbatch-fast] total")
    assert capsys.readouterr().err == ""  # nothing printed: where it goes is the program's choice
    caplog.clear()
    with caplog.at_level(logging.INFO, logger=LOGGER):
        again = patchbatch_flow(a, b, preset="fast", descriptor="raw", verbose=True, refine=False)
    err = capsys.readouterr().err
    assert re.findall(r"\d/4 (\w+)", err) == ["descriptors", "patchmatch", "consistency", "interpolate"]
    assert not [r for r in caplog.records if r.name == LOGGER]  # printed instead, not twice
    assert again.shape == flow.shape and np.isfinite(again).all()
