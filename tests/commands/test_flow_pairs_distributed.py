"""`flowmatch flow DIR --out OUTDIR` under torchrun: the pairs split across ranks into one folder,
resume with another number of ranks, a refused request failing every rank alike (flow_pairs.run_folder)."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest

from flowmatch import io
from flowmatch._atomic import host_tag
from flowmatch.cli import main
from flowmatch.data.synthetic import generate_pair

import ranks  # tests/ranks.py (on the path via conftest.py)

METHOD = "farneback"  # fast and deterministic: one process and two must write the same bytes


@pytest.fixture()
def six_frames(tmp_path):
    """DIR with six small frames: five pairs, split 3 (rank 0) + 2 (rank 1)."""
    d = tmp_path / "frames"
    d.mkdir()
    for i in range(6):
        io.write_image(d / f"f_{i}.png", generate_pair(48, 64, i).img1)
    return d


def _files(folder) -> dict[str, bytes]:
    return {n: (folder / n).read_bytes() for n in sorted(os.listdir(folder))}


def _one_process(d, out, *extra) -> dict[str, bytes]:
    assert main(["flow", str(d), "--out", str(out), "--method", METHOD, "-q", *extra]) == 0
    return _files(out)


def test_two_torchrun_ranks_write_what_one_process_writes(six_frames, tmp_path):
    one = _one_process(six_frames, tmp_path / "one", "--viz", str(tmp_path / "one_viz"))
    one_viz = _files(tmp_path / "one_viz")
    out, viz = tmp_path / "two", tmp_path / "two_viz"
    r = ranks.torchrun(["flow", str(six_frames), "--out", str(out), "--viz", str(viz), "--method", METHOD])
    assert r.returncode == 0, r.stderr[-3000:]
    assert sorted(one) == [f"f_{i}.flo" for i in range(5)]
    assert _files(out) == one and _files(viz) == one_viz  # every pair once, byte for byte; no temporaries
    # rank 0 alone reports, for the whole job
    assert r.stderr.count(f"5 pairs: 5 computed with {METHOD} in ") == 1 and "on 2 ranks, 0 kept" in r.stderr
    counts = [(int(k), int(n)) for k, n in re.findall(r"^\[(\d+)/(\d+)\] f_", r.stderr, re.M)]
    assert len(counts) == 3 and all(n == 5 for _, n in counts)  # rank 0's lines count the whole job's pairs
    assert counts[-1][0] >= 3 and [k for k, _ in counts] == sorted(k for k, _ in counts)


@pytest.mark.slow
def test_a_two_rank_rerun_computes_only_the_missing_pairs(six_frames, tmp_path):
    one = _one_process(six_frames, tmp_path / "one")
    out = tmp_path / "out"
    out.mkdir()
    before = {}
    for name in ("f_0.flo", "f_3.flo"):  # one finished pair in each rank's block (pairs 0-2 and 3-4)
        shutil.copy(tmp_path / "one" / name, out / name)
        os.utime(out / name, ns=(10**18, 10**18))
        st = os.stat(out / name)
        before[name] = (st.st_ino, st.st_mtime_ns)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = out / f".f_1.{host_tag()}.{int(dead.stdout)}.0123abcd.tmp.flo"  # a killed writer's temporary
    stale.write_bytes(b"half a file")
    r = ranks.torchrun(["flow", str(six_frames), "--out", str(out), "--method", METHOD])
    assert r.returncode == 0, r.stderr[-3000:]
    assert "2 of 5 pairs already have their outputs: kept" in r.stderr
    assert f"5 pairs: 3 computed with {METHOD}" in r.stderr and "on 2 ranks, 2 kept" in r.stderr
    for name, (ino, mtime) in before.items():  # the finished files were not rewritten
        st = os.stat(out / name)
        assert (st.st_ino, st.st_mtime_ns) == (ino, mtime)
    assert _files(out) == one  # the rest computed, the stale temporary gone
    r = ranks.torchrun(["flow", str(six_frames), "--out", str(out), "--method", METHOD], n=3)
    assert r.returncode == 0 and "5 of 5 pairs already have their outputs: kept" in r.stderr
    assert _files(out) == one


def test_a_refused_request_fails_every_rank_with_the_same_error(six_frames):
    inside = six_frames / "flows"  # outputs inside the input folder: exit 3, nothing written
    results = ranks.ranks(["-m", "flowmatch", "flow", str(six_frames), "--out", str(inside), "--method", METHOD])
    for r in results:
        assert r.returncode == 3, r.stderr[-3000:]
        assert "flowmatch flow: error: --out" in r.stderr and "inside the input folder" in r.stderr
    assert not inside.exists()


@pytest.mark.slow
def test_a_refused_request_under_torchrun_ends_without_a_hang(six_frames):
    inside = six_frames / "flows"
    r = ranks.torchrun(["flow", str(six_frames), "--out", str(inside), "--method", METHOD], timeout=180)
    assert r.returncode != 0 and "inside the input folder" in r.stderr
    assert not inside.exists()
