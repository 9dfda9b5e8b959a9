"""Benchmark submissions (flowmatch/submit.py, `flowmatch submit`) on miniature test layouts."""
from __future__ import annotations

import os
import shutil
import zipfile

import numpy as np
import pytest

import flowmatch
from flowmatch import io
from flowmatch.cli import main
from flowmatch.errors import DatasetLayoutError, InputError
from flowmatch.evaluation.submit import submit

import layouts  # tests/layouts.py (on the path via conftest.py)

METHOD = "dis-fast"


def _rel(paths, base):
    return sorted(os.path.relpath(p, base) for p in paths)


def test_sintel_upload_structure_and_contents(tmp_path):
    root = layouts.make_sintel(tmp_path, test_scenes=("ambush_1", "market_2"), frames=3)
    out = str(tmp_path / "sub")
    written = submit("sintel", root, METHOD, out, zip_=True, progress=False)
    flows, archive = written[:-1], written[-1]
    expected = [f"{p}/{s}/frame_{n:04d}.flo" for p in ("clean", "final") for s in ("ambush_1", "market_2")
                for n in (1, 2)]  # every frame but the last of each scene
    assert _rel(flows, out) == sorted(expected)
    for rel in expected:
        p, scene, name = rel.split("/")
        n = int(name[6:10])
        d = os.path.join(root, "test", p, scene)
        want = flowmatch.flow(io.read_image(os.path.join(d, f"frame_{n:04d}.png")),
                              io.read_image(os.path.join(d, f"frame_{n + 1:04d}.png")), method=METHOD)
        np.testing.assert_array_equal(io.read_flow(os.path.join(out, rel))[0], want)
    assert archive == out + ".zip"
    with zipfile.ZipFile(archive) as zf:
        assert sorted(zf.namelist()) == sorted(expected)
        assert zf.read(expected[0]) == open(os.path.join(out, expected[0]), "rb").read()


@pytest.mark.parametrize("year", [2012, 2015])
def test_kitti_upload_structure_and_contents(tmp_path, year):
    root = layouts.make_kitti(tmp_path, year=year, n=1, test=2)
    out = str(tmp_path / "sub")
    written = submit(f"kitti{year}", root, METHOD, out, progress=False)
    assert _rel(written, out) == ["flow/000000_10.png", "flow/000001_10.png"]
    img_dir = os.path.join(root, "testing", "colored_0" if year == 2012 else "image_2")
    for p in written:
        fid = os.path.basename(p)[:6]
        want = flowmatch.flow(io.read_image(os.path.join(img_dir, f"{fid}_10.png")),
                              io.read_image(os.path.join(img_dir, f"{fid}_11.png")), method=METHOD)
        got, valid = io.read_kitti_flow(p)
        raw = io.read_image(p)
        assert raw.dtype == np.uint16 and raw.ndim == 3  # 16-bit RGB, as the server expects
        assert valid.all() and np.abs(got - want).max() <= 1 / 128 + 1e-4  # rounded to 1/64 px


def test_pass_selection_and_the_command(tmp_path, capsys):
    root = layouts.make_sintel(tmp_path, frames=2)
    out = str(tmp_path / "sub")
    assert main(["submit", "--dataset", "sintel", "--root", root, "--method", METHOD, "--out", out,
                 "--pass", "clean", "--quiet"]) == 0
    assert "wrote 1 flow files" in capsys.readouterr().out
    assert os.listdir(out) == ["clean"]


def test_bad_submissions_raise_named_errors(tmp_path, capsys):
    root = layouts.make_sintel(tmp_path, frames=2)
    with pytest.raises(InputError, match="submissions exist for"):
        submit("chairs", root, METHOD, str(tmp_path / "o"), progress=False)
    with pytest.raises(InputError, match="unknown flow method"):
        submit("sintel", root, "nope", str(tmp_path / "o"), progress=False)
    with pytest.raises(InputError, match="passes"):
        submit("sintel", root, METHOD, str(tmp_path / "o"), passes=("albedo",), progress=False)
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="not a folder"):
        submit("sintel", root, METHOD, str(tmp_path / "file"), progress=False)
    with pytest.raises(DatasetLayoutError, match="not a folder"):
        submit("sintel", str(tmp_path / "missing"), METHOD, str(tmp_path / "o"), progress=False)
    shutil.rmtree(os.path.join(root, "test"))
    assert main(["submit", "--dataset", "sintel", "--root", root, "--method", METHOD, "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert "test" in err and "Traceback" not in err
