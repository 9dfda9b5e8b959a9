"""`flowmatch viz` as a user runs it (a subprocess, and cli.main in-process for the rest): plain coding, --legend, --quiver, error map, panels,
atomic outputs and refused arguments."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import flowmatch.io as fio
import flowmatch.viz as V
from flowmatch._paths import REPO_DIR
from flowmatch.cli import main
from flowmatch.viz.figures import BAR_PX, GAP_PX, TITLE_PX

H, W = 48, 64


def _viz(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": REPO_DIR}
    return subprocess.run([sys.executable, "-m", "flowmatch", "viz", *map(str, args)], capture_output=True,
                          text=True, env=env, cwd=REPO_DIR, timeout=900)  # generous: a loaded machine


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("viz")
    rng = np.random.default_rng(2)
    gt = rng.normal(0, 4, (H, W, 2)).astype(np.float32)
    pred = gt + rng.normal(0, 1, gt.shape).astype(np.float32)
    valid = rng.random((H, W)) > 0.1
    fio.write_flow(tmp / "gt.flo", gt, valid)
    fio.write_flow(tmp / "pred.flo", pred)
    fio.write_image(tmp / "img1.png", rng.integers(0, 255, (H, W, 3)).astype(np.uint8))
    return tmp, pred, gt, valid


def test_plain_legend_quiver_and_error_map(files, capsys):
    tmp, pred, gt, valid = files
    out = tmp / "out"
    out.mkdir(exist_ok=True)
    assert main(["viz", str(tmp / "pred.flo"), "-o", str(out / "plain.png")]) == 0
    np.testing.assert_array_equal(fio.read_image(out / "plain.png"), V.flow_to_color(pred))  # bit-exact as before
    assert main(["viz", str(tmp / "pred.flo"), "-o", str(out / "legend.png"), "--legend", "--max-radius", "8"]) == 0
    np.testing.assert_array_equal(fio.read_image(out / "legend.png"), V.flow_figure(pred, max_radius=8.0))
    assert main(["viz", str(tmp / "pred.flo"), "-o", str(out / "q.png"), "--quiver"]) == 0   # default step
    np.testing.assert_array_equal(fio.read_image(out / "q.png"), V.flow_figure(pred, legend=False, quiver=16))
    assert main(["viz", str(tmp / "pred.flo"), "-o", str(out / "err.png"), "--gt", str(tmp / "gt.flo")]) == 0
    err = fio.read_image(out / "err.png")
    assert err.shape == (TITLE_PX + H, W + BAR_PX, 3)
    np.testing.assert_array_equal(err[TITLE_PX:, :W], V.error_map(pred, gt, valid))
    assert sorted(p.name for p in out.iterdir()) == ["err.png", "legend.png", "plain.png", "q.png"]
    assert capsys.readouterr().out.split() == [str(out / n) for n in ("plain.png", "legend.png", "q.png", "err.png")]


def test_panel_as_a_user_runs_it(files):
    tmp, pred, gt, valid = files
    res = _viz(tmp / "pred.flo", "-o", tmp / "p.png", "--img1", tmp / "img1.png", "--gt", tmp / "gt.flo",
               "--legend", "--quiver", "12")
    assert res.returncode == 0, res.stderr
    panel = fio.read_image(tmp / "p.png")
    assert panel.shape == (TITLE_PX + H, 3 * W + 2 * GAP_PX + BAR_PX, 3)
    np.testing.assert_array_equal(panel, V.side_by_side(fio.read_image(tmp / "img1.png"), pred, gt, valid,
                                                        legend=True, quiver=12))
    target = tmp / "keep.png"                       # a refused argument: one line, exit 1, output untouched
    fio.write_image(target, np.full((4, 4, 3), 7, np.uint8))
    before = target.read_bytes()
    res = _viz(tmp / "pred.flo", "-o", target, "--quiver", "0")
    assert res.returncode == 1 and "--quiver" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert target.read_bytes() == before


@pytest.mark.parametrize("args,msg", [
    (["--quiver", "0"], "--quiver"),
    (["--max-radius", "-2"], "--max-radius"),
    (["--gt", "{tmp}/gt.flo", "--legend"], "--img1"),
    (["--img1", "{tmp}/missing.png"], "missing.png"),
])
def test_refused_arguments_leave_the_output_untouched(files, args, msg, capsys):
    tmp = files[0]
    target = tmp / "keep2.png"
    fio.write_image(target, np.full((4, 4, 3), 7, np.uint8))
    before = target.read_bytes()
    code = main(["viz", str(tmp / "pred.flo"), "-o", str(target), *[a.format(tmp=tmp) for a in args]])
    err = capsys.readouterr().err
    assert code in (1, 5) and msg in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert target.read_bytes() == before
    assert not [p for p in os.listdir(tmp) if ".tmp" in p]   # no temporary left


def test_usage_errors_and_too_small_for_a_legend(tmp_path, capsys):
    fio.write_flow(tmp_path / "small.flo", np.zeros((16, 20, 2), np.float32))
    assert main(["viz", str(tmp_path / "small.flo"), "-o", str(tmp_path / "s.png"), "--legend"]) == 1
    assert "too small" in capsys.readouterr().err and not (tmp_path / "s.png").exists()
    with pytest.raises(SystemExit) as exc:
        main(["viz", str(tmp_path / "small.flo"), "-o", str(tmp_path / "s.png"), "--quiver", "two"])
    assert exc.value.code == 2 and not (tmp_path / "s.png").exists()
