"""`flowmatch info`, `flowmatch viz` and `flowmatch compare`."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

import flowmatch.io as fio
import flowmatch.metrics as M
import flowmatch.viz as V
from flowmatch._paths import REPO_DIR
from flowmatch.cli import main


@pytest.fixture
def flows(tmp_path):
    rng = np.random.default_rng(5)
    gt = rng.normal(0, 6, (16, 20, 2)).astype(np.float32)
    valid = rng.random((16, 20)) > 0.2
    pred = gt + rng.normal(0, 2, gt.shape).astype(np.float32)
    fio.write_flow(tmp_path / "gt.flo", gt, valid)
    fio.write_flow(tmp_path / "pred.flo", pred)
    return tmp_path, pred, gt, valid


def test_info_json(capsys):
    assert main(["info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    import cv2
    import torch

    assert info["torch"] == torch.__version__ and info["opencv"] == cv2.__version__
    assert isinstance(info["extension_loaded"], bool)
    assert (info["extension_error"] is None) == info["extension_loaded"]
    assert info["torch_cuda_available"] == torch.cuda.is_available()
    assert info["opencv_methods"]["DIS"] is True
    assert isinstance(info["methods"], dict) and isinstance(info["weights"], list)


def test_info_text_runs_as_a_command():
    env = {**os.environ, "PYTHONPATH": REPO_DIR}
    res = subprocess.run([sys.executable, "-m", "flowmatch", "info"], capture_output=True, text=True,
                         env=env, cwd=REPO_DIR, timeout=600)  # a loaded machine: minutes, not seconds
    assert res.returncode == 0, res.stderr
    assert "extension flowmatch._C" in res.stdout and "flow methods:" in res.stdout


def test_viz_writes_the_colour_coding(flows, capsys):
    tmp, pred, gt, valid = flows
    assert main(["viz", str(tmp / "gt.flo"), "-o", str(tmp / "gt.png"), "--max-radius", "10"]) == 0
    np.testing.assert_array_equal(fio.read_image(tmp / "gt.png"), V.flow_to_color(gt * valid[..., None], 10.0, valid))
    img = np.zeros((16, 20, 3), np.uint8)
    fio.write_image(tmp / "img1.png", img)
    assert main(["viz", str(tmp / "pred.flo"), "-o", str(tmp / "panel.png"), "--img1", str(tmp / "img1.png"),
                 "--gt", str(tmp / "gt.flo")]) == 0
    from flowmatch.viz.figures import BAR_PX, GAP_PX, TITLE_PX  # frame | flow | error (tests/test_cli_viz.py)

    assert fio.read_image(tmp / "panel.png").shape == (TITLE_PX + 16, 3 * 20 + 2 * GAP_PX + BAR_PX, 3)
    assert main(["viz", str(tmp / "gt.flo"), "-o", str(tmp / "x.png"), "--max-radius", "-1"]) == 1
    assert "max-radius" in capsys.readouterr().err


def test_compare_prints_metrics(flows, capsys):
    tmp, pred, gt, valid = flows
    occ = np.zeros(valid.shape, bool)
    occ[:, :5] = True
    fio.write_mask(tmp / "occ.png", occ)
    args = ["compare", str(tmp / "pred.flo"), str(tmp / "gt.flo"), "--json", str(tmp / "m.json"),
            "--error-png", str(tmp / "err.png"), "--occlusion", str(tmp / "occ.png")]
    assert main(args) == 0
    table = capsys.readouterr().out  # an aligned table of display names with units
    out = json.loads((tmp / "m.json").read_text())
    rows = dict(re.split(r"\s{2,}", line.strip()) for line in table.splitlines()[2:])
    assert rows["EPE [px]"] == f"{out['EPE']:.4f}" and rows["AE [deg]"] == f"{out['AE']:.4f}"
    assert rows["Out >3px [%]"] == f"{out['Out-3']:.4f}" and rows["Fl [%]"] == f"{out['Fl']:.4f}"
    assert rows["valid pixels"] == str(int(valid.sum()))
    assert out["units"] == {"EPE": "px", "AE": "deg", "Out-1": "%", "Out-3": "%", "Out-5": "%", "Fl": "%",
                            "EPE-matched": "px", "EPE-unmatched": "px"}
    assert main(["compare", str(tmp / "pred.flo"), str(tmp / "gt.flo"), "--json", "-"]) == 0
    on_stdout = json.loads(capsys.readouterr().out)  # --json -: the JSON instead of the table
    assert {k: v for k, v in on_stdout.items() if k != "units"} == {
        k: v for k, v in out.items() if k not in ("units", "EPE-matched", "EPE-unmatched")}
    assert out["EPE"] == pytest.approx(M.epe(pred, gt, valid))
    assert out["AE"] == pytest.approx(M.angular_error(pred, gt, valid))
    assert out["Out-3"] == pytest.approx(M.outlier_rate(pred, gt, valid, 3.0))
    assert out["n_valid"] == int(valid.sum())
    assert out["EPE-matched"] == pytest.approx(M.epe(pred, gt, valid & ~occ))
    np.testing.assert_array_equal(fio.read_image(tmp / "err.png"), V.error_map(pred, gt, valid))


def test_compare_errors_are_clean(flows, capsys):
    tmp, *_ = flows
    fio.write_flow(tmp / "small.flo", np.zeros((4, 4, 2), np.float32))
    assert main(["compare", str(tmp / "small.flo"), str(tmp / "gt.flo")]) == 1
    err = capsys.readouterr().err
    assert "small.flo" in err and "gt.flo" in err
    (tmp / "junk.flo").write_bytes(b"not a flow file")
    assert main(["compare", str(tmp / "junk.flo"), str(tmp / "gt.flo")]) == 1
    assert "junk.flo" in capsys.readouterr().err
    assert main(["compare", str(tmp / "missing.flo"), str(tmp / "gt.flo")]) == 1
    assert "does not exist" in capsys.readouterr().err
