"""`flowmatch flow`, `flowmatch demo` and `flowmatch bench` (run in-process through cli.main)."""
from __future__ import annotations

import os
import re

import numpy as np
import pytest

import flowmatch
from flowmatch import io, metrics
from flowmatch.cli import main
from flowmatch.data.synthetic import generate_pair
from flowmatch.viz import flow_to_color


@pytest.fixture()
def pair_files(tmp_path):
    p = generate_pair(64, 96, 3)
    a, b = str(tmp_path / "a.png"), str(tmp_path / "b.png")
    io.write_image(a, p.img1)
    io.write_image(b, p.img2)
    return a, b, p


@pytest.mark.parametrize("ext", [".flo", ".png", ".pfm"])
def test_flow_command_writes_the_library_result(pair_files, tmp_path, ext, capsys):
    a, b, p = pair_files
    out, viz = str(tmp_path / f"out{ext}"), str(tmp_path / "viz.png")
    assert main(["flow", a, b, "-o", out, "--viz", viz, "--method", "farneback", "--verbose"]) == 0
    expected = flowmatch.flow(p.img1, p.img2, method="farneback")
    got, valid = io.read_flow(out)
    tol = 1 / 64 if ext == ".png" else 0  # KITTI PNGs store 1/64 px steps
    assert valid.all() and np.abs(got - expected).max() <= tol
    np.testing.assert_array_equal(io.read_image(viz), flow_to_color(expected))
    assert "farneback" in capsys.readouterr().err


def test_flow_command_options_reach_the_method(pair_files, tmp_path):
    a, b, p = pair_files
    out = str(tmp_path / "o.flo")
    assert main(["flow", a, b, "-o", out, "--method", "farneback", "--option", "levels=1", "--option", "winsize=5"]) == 0
    np.testing.assert_array_equal(io.read_flow(out)[0],
                                  flowmatch.flow(p.img1, p.img2, method="farneback", levels=1, winsize=5))


def test_flow_command_bad_inputs_are_errors_and_keep_existing_output(pair_files, tmp_path, capsys):
    a, b, _ = pair_files
    out = tmp_path / "keep.flo"
    out.write_bytes(b"previous result")
    small = str(tmp_path / "small.png")
    io.write_image(small, np.zeros((10, 10, 3), np.uint8))
    cases = [
        (["flow", str(tmp_path / "nope.png"), b, "-o", str(out)], "IMG1"),
        (["flow", a, b, "-o", str(tmp_path / "x.txt")], "flow files must end in"),
        (["flow", a, b, "-o", str(out), "--method", "nope"], "unknown flow method"),
        (["flow", a, b, "-o", str(out), "--option", "oops"], "KEY=VALUE"),
        (["flow", a, small, "-o", str(out), "--method", "dis-fast"], "differ in size"),
        (["flow", a, b, "-o", str(out), "--method", "dis-fast", "--option", "bogus=1"], "no option"),
    ]
    for argv, msg in cases:
        assert main(argv) == 1, argv
        assert msg in capsys.readouterr().err, argv
    assert out.read_bytes() == b"previous result"
    assert [f for f in os.listdir(tmp_path) if f.startswith(".")] == []  # no leftover temporaries


def test_demo_writes_outputs_and_prints_true_metrics(tmp_path, capsys):
    out = str(tmp_path / "demo")
    assert main(["demo", "--out", out, "--size", "96x64", "--seed", "5", "--max-motion", "12", "--no-real",
                 "--method", "dis-medium"]) == 0
    printed = capsys.readouterr().out
    for f in ("flow.flo", "flow.png", "panel.png"):
        assert os.path.getsize(os.path.join(out, f)) > 0
    p = generate_pair(64, 96, 5, max_motion=12)
    flow = io.read_flow(os.path.join(out, "flow.flo"))[0]
    np.testing.assert_array_equal(flow, flowmatch.flow(p.img1, p.img2, method="dis-medium"))
    shown = float(re.search(r"EPE ([0-9.]+) px", printed)[1])
    assert shown == pytest.approx(metrics.epe(flow, p.flow, p.valid), abs=5e-4)
    assert io.read_image(os.path.join(out, "panel.png")).shape[:2] == (128, 192)  # 2×2 tiles


def test_demo_on_the_shipped_pair(tmp_path, capsys):
    pair = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "pair")
    out = str(tmp_path / "demo")
    assert main(["demo", "--out", out, "--input", pair, "--no-real", "--method", "dis-medium"]) == 0
    gt = io.read_flow(os.path.join(pair, "flow.flo"))[0]
    flow = io.read_flow(os.path.join(out, "flow.flo"))[0]
    shown = float(re.search(r"EPE ([0-9.]+) px", capsys.readouterr().out)[1])
    assert shown == pytest.approx(metrics.epe(flow, gt), abs=5e-4)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["demo", "--out", out, "--input", str(empty)]) == 1
    assert "lacks img1.png" in capsys.readouterr().err
    # An output folder inside the input folder is refused (exit 3), nothing written.
    assert main(["demo", "--out", str(empty / "out"), "--input", str(empty)]) == 3
    assert not (empty / "out").exists()


def test_demo_scores_a_real_sintel_crop(real_data, tmp_path, capsys):
    out = str(tmp_path / "demo")
    assert main(["demo", "--out", out, "--size", "64x48", "--real-crop", "128x96", "--method", "dis-fast"]) == 0
    assert "real Sintel pair" in capsys.readouterr().out
    assert io.read_flow(os.path.join(out, "real_flow.flo"))[0].shape == (96, 128, 2)


def test_bench_prints_a_row_per_method(capsys):
    assert main(["bench", "--size", "64x48", "--runs", "2", "--methods", "dis-fast,farneback",
                 "--baseline", "dis-fast"]) == 0
    table = capsys.readouterr().out
    assert re.search(r"\| dis-fast \| [0-9.]+ \| [0-9.]+ \| [0-9.]+ \| 1\.00x \|", table)
    assert re.search(r"\| farneback \| [0-9.]+ \| ", table)
    assert main(["bench", "--size", "64", "--runs", "1"]) == 1
