"""`flowmatch flow DIR --out OUTDIR [--pairs FILE]`, --range, .kitti.png and --viz-only single pairs."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import flowmatch
from flowmatch import io
from flowmatch._paths import REPO_DIR
from flowmatch.cli import main
from flowmatch.data.synthetic import generate_pair
from flowmatch.viz import flow_to_color


@pytest.fixture()
def frames(tmp_path):
    """DIR with four frames whose names sort differently as text (f_10 < f_2) and by number."""
    d = tmp_path / "frames"
    d.mkdir()
    imgs = {}
    for i, n in enumerate((1, 2, 10, 11)):
        img = generate_pair(48, 64, i).img1
        io.write_image(d / f"f_{n}.png", img)
        imgs[n] = img
    (d / "notes.txt").write_text("not a frame")
    return d, imgs


def farneback(a, b):
    return flowmatch.flow(a, b, method="farneback")


def test_consecutive_frames_in_natural_order_as_a_user_runs_it(frames, tmp_path):
    d, imgs = frames
    out, viz = tmp_path / "flows", tmp_path / "pictures"
    res = subprocess.run([sys.executable, "-m", "flowmatch", "flow", str(d), "--out", str(out), "--viz", str(viz),
                          "--method", "farneback"], capture_output=True, text=True, cwd=REPO_DIR, timeout=900,
                         env={**os.environ, "PYTHONPATH": REPO_DIR})
    assert res.returncode == 0, res.stderr
    assert sorted(os.listdir(out)) == ["f_1.flo", "f_10.flo", "f_2.flo"]
    for first, second in ((1, 2), (2, 10), (10, 11)):
        expected = farneback(imgs[first], imgs[second])
        np.testing.assert_array_equal(io.read_flow(out / f"f_{first}.flo")[0], expected)
        np.testing.assert_array_equal(io.read_image(viz / f"f_{first}.png"), flow_to_color(expected))
    for i, (a, b) in enumerate((("f_1", "f_2"), ("f_2", "f_10"), ("f_10", "f_11")), 1):
        assert f"[{i}/3] {a}.png -> {b}.png" in res.stderr and "ETA" in res.stderr
    assert "3 pairs: 3 computed with farneback" in res.stderr


def test_existing_outputs_are_kept_unless_overwrite(frames, tmp_path, capsys):
    d, imgs = frames
    out = tmp_path / "flows"
    assert main(["flow", str(d), "--out", str(out), "--method", "farneback"]) == 0
    capsys.readouterr()
    (out / "f_2.flo").write_bytes(b"user's own file")
    before = {f: (out / f).read_bytes() for f in os.listdir(out)}
    assert main(["flow", str(d), "--out", str(out), "--method", "farneback"]) == 0
    assert "3 of 3 pairs already have their outputs: kept (--overwrite recomputes them)" in capsys.readouterr().err
    assert {f: (out / f).read_bytes() for f in os.listdir(out)} == before
    os.remove(out / "f_10.flo")
    assert main(["flow", str(d), "--out", str(out), "--method", "farneback"]) == 0  # only the missing one
    assert "1 computed" in capsys.readouterr().err and (out / "f_2.flo").read_bytes() == b"user's own file"
    np.testing.assert_array_equal(io.read_flow(out / "f_10.flo")[0], farneback(imgs[10], imgs[11]))
    assert main(["flow", str(d), "--out", str(out), "--method", "farneback", "--overwrite"]) == 0
    np.testing.assert_array_equal(io.read_flow(out / "f_2.flo")[0], farneback(imgs[2], imgs[10]))


def test_pairs_file(frames, tmp_path, capsys):
    d, imgs = frames
    os.rename(d / "f_11.png", d / "f 11.png")  # a name with a space, quoted in the file
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("# img1 img2 [out]\n\nf_1.png f_10.png\nf_2.png 'f 11.png' sub/x.kitti.png  # comment\n"
                     "f_1.png f_2.png y.pfm\n")
    out = tmp_path / "o"
    assert main(["flow", str(d), "--pairs", str(pairs), "--out", str(out), "--method", "farneback",
                 "--format", "pfm"]) == 0
    got = sorted(os.path.relpath(os.path.join(r, f), out) for r, _, fs in os.walk(out) for f in fs)
    assert got == ["f_1_to_f_10.pfm", os.path.join("sub", "x.kitti.png"), "y.pfm"]
    np.testing.assert_array_equal(io.read_flow(out / "f_1_to_f_10.pfm")[0], farneback(imgs[1], imgs[10]))
    kitti, valid = io.read_flow(out / "sub" / "x.kitti.png")
    assert valid.all() and np.abs(kitti - farneback(imgs[2], imgs[11])).max() <= 1 / 64
    np.testing.assert_array_equal(io.read_flow(out / "y.pfm")[0], farneback(imgs[1], imgs[2]))
    viz = tmp_path / "v"  # pictures take the flow files' names
    assert main(["flow", str(d), "--pairs", str(pairs), "--viz", str(viz), "--method", "farneback"]) == 0
    got = sorted(os.path.relpath(os.path.join(r, f), viz) for r, _, fs in os.walk(viz) for f in fs)
    assert got == ["f_1_to_f_10.png", os.path.join("sub", "x.png"), "y.png"]
    np.testing.assert_array_equal(io.read_image(viz / "sub" / "x.png"), flow_to_color(farneback(imgs[2], imgs[11])))


def test_folder_refusals_leave_everything_as_it_was(frames, tmp_path, capsys):
    d, _ = frames
    out = tmp_path / "o"
    cases = [
        (["--out", str(d / "flows")], 3, "inside the input folder"),
        (["--out", str(d)], 3, "same folder"),
        (["--out", str(d / "f_1.png")], 1, "is a file"),
        (["--out", str(tmp_path / "flows.flo")], 1, "looks like a file name"),
        (["--pairs", str(tmp_path / "missing.txt"), "--out", str(out)], 1, "does not exist"),
    ]
    bad = tmp_path / "bad.txt"
    bad.write_text("f_1.png\n")
    cases.append((["--pairs", str(bad), "--out", str(out)], 1, "line 1: expected `IMG1 IMG2 [OUT]`"))
    gone = tmp_path / "gone.txt"
    gone.write_text("f_1.png nope.png\n")
    cases.append((["--pairs", str(gone), "--out", str(out)], 1, "does not exist"))
    twice = tmp_path / "twice.txt"
    twice.write_text("f_1.png f_2.png a.flo\nf_2.png f_10.png a.flo\n")
    cases.append((["--pairs", str(twice), "--out", str(out)], 3, "two pairs write"))
    escape = tmp_path / "escape.txt"
    escape.write_text(f"f_1.png f_2.png {os.path.relpath(d / 'f_1.kitti.png', out)}\n")
    cases.append((["--pairs", str(escape), "--out", str(out)], 3, "inside the input folder"))
    notflow = tmp_path / "notflow.txt"
    notflow.write_text("f_1.png f_2.png picture.jpg\n")
    cases.append((["--pairs", str(notflow), "--out", str(out)], 1, "flow files must end in"))
    before = sorted(os.listdir(d))
    for extra, code, msg in cases:
        assert main(["flow", str(d), "--method", "farneback", *extra]) == code, extra
        assert msg in capsys.readouterr().err, extra
    assert sorted(os.listdir(d)) == before and not out.exists()
    # an existing output that is a hard link of a frame is refused before the skip rule looks at it
    out.mkdir()
    os.link(d / "f_1.png", out / "f_1.kitti.png")
    assert main(["flow", str(d), "--out", str(out), "--format", "kitti.png", "--method", "farneback"]) == 3
    assert "is the same file as the frame" in capsys.readouterr().err
    lonely = tmp_path / "lonely"
    lonely.mkdir()
    io.write_image(lonely / "a.png", np.zeros((8, 8, 3), np.uint8))
    assert main(["flow", str(lonely), "--out", str(out), "--method", "farneback"]) == 1
    assert "holds 1 frame(s)" in capsys.readouterr().err
    assert main(["flow", "a.png", "b.png", "c.png", "-o", "x.flo"]) == 1
    assert "flow takes IMG1 IMG2, or DIR" in capsys.readouterr().err


def test_range_is_the_white_level_of_float_frames(tmp_path, capsys):
    p = generate_pair(48, 64, 4)
    a, b = tmp_path / "a.pfm", tmp_path / "b.pfm"
    io.write_pfm(a, p.img1.astype(np.float32))  # floats in [0, 255]
    io.write_pfm(b, p.img2.astype(np.float32))
    out = tmp_path / "o.flo"
    assert main(["flow", str(a), str(b), "-o", str(out), "--method", "farneback"]) == 1
    assert "--range 255" in capsys.readouterr().err and not out.exists()
    assert main(["flow", str(a), str(b), "-o", str(out), "--method", "farneback", "--range", "255"]) == 0
    np.testing.assert_array_equal(io.read_flow(out)[0], farneback(p.img1, p.img2))
    # the same frames scaled to [0, 1] need no --range; --range 1 says so explicitly
    io.write_pfm(a, p.img1.astype(np.float32) / 255)
    io.write_pfm(b, p.img2.astype(np.float32) / 255)
    d = tmp_path / "unit"
    d.mkdir()
    os.rename(a, d / "a.pfm")
    os.rename(b, d / "b.pfm")
    assert main(["flow", str(d), "--out", str(tmp_path / "u"), "--method", "farneback", "--range", "1"]) == 0
    expected = flowmatch.flow(p.img1.astype(np.float32) / 255, p.img2.astype(np.float32) / 255, method="farneback")
    np.testing.assert_array_equal(io.read_flow(tmp_path / "u" / "a.flo")[0], expected)
    for bad in ("0", "-1", "inf", "bright"):
        with pytest.raises(SystemExit) as exc:
            main(["flow", str(d), "--out", str(tmp_path / "u"), "--range", bad])
        assert exc.value.code == 2 and "white level" in capsys.readouterr().err


def test_kitti_png_names_and_viz_only(tmp_path, capsys):
    p = generate_pair(48, 64, 5)
    a, b = str(tmp_path / "a.png"), str(tmp_path / "b.png")
    io.write_image(a, p.img1)
    io.write_image(b, p.img2)
    expected = farneback(p.img1, p.img2)
    assert main(["flow", a, b, "-o", str(tmp_path / "f.kitti.png"), "--method", "farneback"]) == 0
    assert "KITTI" not in capsys.readouterr().err  # the name already says what it is
    assert main(["flow", a, b, "-o", str(tmp_path / "f.png"), "--method", "farneback"]) == 0
    assert "f.png is a 16-bit KITTI flow file (data, not a picture" in capsys.readouterr().err
    for name in ("f.kitti.png", "f.png"):
        got, valid = io.read_flow(tmp_path / name)
        assert valid.all() and np.abs(got - expected).max() <= 1 / 64
    assert main(["flow", a, b, "--viz", str(tmp_path / "v.png"), "--method", "farneback"]) == 0
    np.testing.assert_array_equal(io.read_image(tmp_path / "v.png"), flow_to_color(expected))
    assert main(["flow", a, b, "--method", "farneback"]) == 1
    assert "give -o FLOW_FILE" in capsys.readouterr().err
