"""`flowmatch eval --resume` and `--save-flows`: the per-frame results cache (flowmatch/evaluation/cache.py).

An interrupted evaluation (an error on frame k, SIGTERM, Ctrl-C) keeps its finished frames; resuming
computes only the rest, and the result equals one uninterrupted run exactly.  Other settings are
refused with nothing touched."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import flowmatch
from flowmatch import io
from flowmatch._atomic import host_tag
from flowmatch._signals import Interrupted
from flowmatch.cli import main
from flowmatch.errors import InputError
from flowmatch.evaluate import evaluate, open_dataset
from flowmatch.evaluation import cache, harness
from flowmatch.methods.registry import get_method

import layouts  # miniature official dataset layouts (tests/layouts.py)

METHOD = "farneback"
TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _strip(frames: list[dict]) -> list[dict]:
    """Per-frame records without their (timing) seconds."""
    return [{k: v for k, v in f.items() if k != "seconds"} for f in frames]


def _results(out: str) -> dict:
    with open(os.path.join(out, "results.json")) as fh:
        return json.load(fh)


def _snapshot(folder: str) -> dict[str, tuple[bytes, int]]:
    """Every file below `folder`: its bytes and mtime (ns)."""
    snap = {}
    for d, _, files in os.walk(folder):
        for f in files:
            p = os.path.join(d, f)
            snap[os.path.relpath(p, folder)] = (open(p, "rb").read(), os.stat(p).st_mtime_ns)
    return snap


class FailsAt:
    """A dataset whose frame `k` raises when it is read (an interruption at a chosen frame)."""

    def __init__(self, data, k: int) -> None:
        self.data, self.k = data, k

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int):
        if i == self.k:
            raise InputError(f"frame {i} is broken")
        return self.data[i]


@pytest.fixture
def sintel(tmp_path):
    return layouts.make_sintel(tmp_path, scenes=("alley_1", "cave_2", "bamboo_1"), frames=3)  # 6 pairs


@pytest.fixture
def flow_calls(monkeypatch):
    """Counts the frames the harness computes (cached frames are not computed)."""
    calls = []
    real = harness.run_flow

    def counting(img1, img2, **kw):
        calls.append(1)
        return real(img1, img2, **kw)

    monkeypatch.setattr(harness, "run_flow", counting)
    return calls


@pytest.mark.parametrize("dataset", ["sintel", "kitti2015", "chairs"])
def test_resume_after_an_error_equals_one_fresh_run(tmp_path, dataset, flow_calls):
    root = {"sintel": lambda: layouts.make_sintel(tmp_path, scenes=("alley_1", "cave_2"), frames=3),
            "kitti2015": lambda: layouts.make_kitti(tmp_path, year=2015, n=4),
            "chairs": lambda: layouts.make_chairs(tmp_path, n=4)}[dataset]()
    data = open_dataset(dataset, root)
    n = len(data)
    fresh = evaluate(dataset, root, METHOD, samples=data, out=str(tmp_path / "fresh"), progress=False)
    out = str(tmp_path / "resumed")
    with pytest.raises(InputError, match="frame 2 is broken"):
        evaluate(dataset, root, METHOD, samples=FailsAt(data, 2), out=out, progress=False)
    record = cache.read_record(out)
    assert cache.FrameCache(os.path.join(out, record["cache"])).indices() == [0, 1]  # kept: frames 0 and 1
    assert not os.path.exists(os.path.join(out, "results.json"))
    del flow_calls[:]
    resumed = evaluate(dataset, root, METHOD, samples=data, out=out, progress=False, resume=True)
    assert len(flow_calls) == n - 2 and resumed["frames_reused"] == 2  # only the rest is computed
    assert resumed["metrics"] == fresh["metrics"]  # exactly
    assert _results(out)["metrics"] == _results(str(tmp_path / "fresh"))["metrics"]
    assert _strip(resumed["frames"]) == _strip(fresh["frames"])
    del flow_calls[:]
    again = evaluate(dataset, root, METHOD, samples=data, out=out, progress=False, resume=True)
    assert flow_calls == [] and again["frames_reused"] == n and again["metrics"] == fresh["metrics"]


_SIGNAL_SCRIPT = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, {tests!r})
    from flowmatch.evaluation import harness
    real_open = harness.open_dataset

    class SignalsAt:  # sends the signal to this process when frame k is read
        def __init__(self, data, k, sig):
            self.data, self.k, self.sig = data, k, sig
            self.frame_pairs = data.frame_pairs
        def __len__(self):
            return len(self.data)
        def __getitem__(self, i):
            if i == self.k:
                os.kill(os.getpid(), self.sig)
            return self.data[i]

    harness.open_dataset = lambda *a, **kw: SignalsAt(real_open(*a, **kw), {k}, {sig})
    from flowmatch.cli import main
    sys.exit(main({argv!r}))
""")


def test_sigterm_keeps_the_finished_frames_and_resume_finishes(tmp_path, sintel):
    sig = signal.SIGTERM  # (SIGINT in-process: test_an_interrupted_api_call_raises_interrupted)
    args = ["eval", "--dataset", "sintel", "--root", sintel, "--method", METHOD, "--quiet"]
    out = str(tmp_path / "out")
    script = _SIGNAL_SCRIPT.format(tests=TESTS, k=2, sig=int(sig), argv=args + ["--out", out, "--save-flows"])
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                       env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 128 + int(sig), r.stderr[-2000:]
    assert "interrupted after 3 of 6 frames" in r.stderr and "--resume" in r.stderr
    assert "Traceback" not in r.stderr
    record = cache.read_record(out)
    assert cache.FrameCache(os.path.join(out, record["cache"])).indices() == [0, 1, 2]  # the frame in flight finished
    assert len(os.listdir(os.path.join(out, "flows"))) == 3
    assert not os.path.exists(os.path.join(out, "results.json"))
    assert main(args + ["--out", out, "--resume", "--save-flows"]) == 0
    assert main(args + ["--out", str(tmp_path / "fresh")]) == 0
    resumed, fresh = _results(out), _results(str(tmp_path / "fresh"))
    assert resumed["frames_reused"] == 3
    assert resumed["metrics"] == fresh["metrics"] and _strip(resumed["frames"]) == _strip(fresh["frames"])
    assert len(os.listdir(os.path.join(out, "flows"))) == 6


def test_resume_with_other_settings_is_refused_and_touches_nothing(tmp_path, sintel, capsys):
    out = str(tmp_path / "out")
    base = ["eval", "--dataset", "sintel", "--root", sintel, "--out", out, "--quiet", "--limit", "2"]
    assert main(base + ["--method", METHOD, "--save-flows"]) == 0
    before = _snapshot(out)
    capsys.readouterr()
    for extra, words in ((["--method", "dis-ultrafast"], ["method: 'farneback' there, 'dis-ultrafast' now"]),
                         (["--method", METHOD, "--option", "levels=2"], ["option levels: 5 there, 2 now"]),
                         (["--method", METHOD, "--pass", "final"], ["pass: 'clean' there, 'final' now"]),
                         (["--method", "dis-ultrafast", "--pass", "final"], ["method", "pass"])):
        assert main(base + extra + ["--resume"]) == 1
        err = capsys.readouterr().err
        assert "other settings" in err and all(w in err for w in words), err
        assert _snapshot(out) == before  # nothing written, nothing removed
    # --limit is not a setting: a resumed run may go further
    assert main(base[:-1] + ["4", "--method", METHOD, "--resume"]) == 0
    assert _results(out)["frames_reused"] == 2 and _results(out)["frames_evaluated"] == 4


def test_a_damaged_record_is_refused_on_resume(tmp_path, sintel, capsys):
    out = str(tmp_path / "out")
    args = ["eval", "--dataset", "sintel", "--root", sintel, "--method", METHOD, "--out", out, "--quiet", "--limit", "1"]
    assert main(args) == 0
    with open(os.path.join(out, cache.RECORD), "w") as fh:
        fh.write("{not json")
    assert main(args + ["--resume"]) == 1
    assert cache.RECORD in capsys.readouterr().err
    assert main(args) == 0  # a fresh run replaces it
    assert cache.read_record(out) is not None


def test_a_fresh_run_replaces_the_cache(tmp_path, sintel, caplog, flow_calls):
    out = str(tmp_path / "out")
    evaluate("sintel", sintel, METHOD, out=out, limit=3, progress=False, save_flows=True)
    old = cache.read_record(out)["cache"]
    evaluate("sintel", sintel, "dis-ultrafast", out=out, limit=2, progress=False)
    new = cache.read_record(out)
    assert new["cache"] != old and not os.path.exists(os.path.join(out, old))  # old frames gone
    assert new["settings"]["method"] == "dis-ultrafast"
    assert os.listdir(os.path.join(out, "flows")) == []  # flows of the old settings removed
    assert "3 cached frame(s) of the previous run there are discarded" in caplog.text
    del flow_calls[:]
    rep = evaluate("sintel", sintel, "dis-ultrafast", out=out, progress=False, resume=True)
    assert rep["frames_reused"] == 2 and len(flow_calls) == 4  # nothing of farneback's was reused


def test_resume_recomputes_a_cached_frame_whose_flow_file_is_missing(tmp_path, sintel, flow_calls):
    out = str(tmp_path / "out")
    first = evaluate("sintel", sintel, METHOD, out=out, limit=3, progress=False)  # no flows saved
    del flow_calls[:]
    rep = evaluate("sintel", sintel, METHOD, out=out, limit=3, progress=False, resume=True, save_flows=True)
    assert len(flow_calls) == 3 and rep["frames_reused"] == 0
    names = [r["name"] for r in rep["frames"]]
    assert sorted(os.listdir(os.path.join(out, "flows"))) == sorted(f"{n}.flo" for n in names)
    os.unlink(os.path.join(out, "flows", f"{names[1]}.flo"))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = os.path.join(out, "flows", f".{names[1]}.{host_tag()}.{int(dead.stdout)}.0123abcd.tmp.flo")
    open(stale, "wb").close()  # what a killed writer leaves
    del flow_calls[:]
    rep = evaluate("sintel", sintel, METHOD, out=out, limit=3, progress=False, resume=True, save_flows=True)
    assert len(flow_calls) == 1 and rep["frames_reused"] == 2
    assert not os.path.exists(stale)  # cleaned: its writer is gone
    assert rep["metrics"] == first["metrics"]
    # the saved flow is the method's flow of that pair
    d = os.path.join(sintel, "training", "clean", "alley_1")
    want = flowmatch.flow(io.read_image(os.path.join(d, "frame_0002.png")),
                          io.read_image(os.path.join(d, "frame_0003.png")), method=METHOD)
    got, valid = io.read_flow(os.path.join(out, "flows", "alley_1_frame_0002.flo"))
    assert names[1] == "alley_1_frame_0002" and valid.all()
    np.testing.assert_array_equal(got, want)


def test_a_changed_dataset_is_refused_on_resume(tmp_path, sintel):
    out = str(tmp_path / "out")
    evaluate("sintel", sintel, METHOD, out=out, limit=2, progress=False)
    os.rename(os.path.join(sintel, "training", "clean", "alley_1"), os.path.join(sintel, "training", "clean", "zzz_1"))
    os.rename(os.path.join(sintel, "training", "flow", "alley_1"), os.path.join(sintel, "training", "flow", "zzz_1"))
    for sub in ("occlusions", "invalid", "final"):
        p = os.path.join(sintel, "training", sub, "alley_1")
        if os.path.isdir(p):
            os.rename(p, os.path.join(sintel, "training", sub, "zzz_1"))
    with pytest.raises(InputError, match="the dataset changed"):
        evaluate("sintel", sintel, METHOD, out=out, limit=2, progress=False, resume=True)


def test_resume_and_save_flows_need_an_output_folder(sintel, capsys):
    with pytest.raises(InputError, match="--resume needs --out"):
        evaluate("sintel", sintel, METHOD, progress=False, resume=True)
    with pytest.raises(InputError, match="--save-flows needs --out"):
        evaluate("sintel", sintel, METHOD, progress=False, save_flows=True)
    assert main(["eval", "--dataset", "sintel", "--root", sintel, "--method", METHOD, "--resume"]) == 1
    assert "--resume needs --out" in capsys.readouterr().err


def test_the_settings_record_holds_what_determines_the_numbers(tmp_path, sintel):
    out = str(tmp_path / "out")
    evaluate("sintel", sintel, METHOD, out=out, limit=1, progress=False, options={"levels": 3}, pass_="final")
    s = cache.read_record(out)["settings"]
    assert s["dataset"] == "sintel" and s["root"] == os.path.realpath(sintel)
    assert s["split"] == "training" and s["pass"] == "final" and s["method"] == METHOD
    assert s["options"] == {**get_method(METHOD).defaults, "levels": 3}  # effective options, defaults included
    assert s["device"] == "cpu" and s["flowmatch"] == flowmatch.__version__ and s["weights"] is None
    assert "limit" not in s
    w = cache.settings("sintel", sintel, "training", "clean", "flownets", {}, "cuda:1")
    assert w["device"] == "cuda" and w["weights"] and all(len(h) == 16 for h in w["weights"].values())


def test_an_interrupted_api_call_raises_interrupted(tmp_path, sintel):
    class Stops:
        def __init__(self, data):
            self.data = data

        def __len__(self):
            return len(self.data)

        def __getitem__(self, i):
            if i == 1:
                os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C while frame 1 is read
            return self.data[i]

    # the handler before the call: Python's default, or SIG_IGN when the test run itself was started in
    # the background by a non-interactive shell (which ignores SIGINT for background jobs)
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(Interrupted) as info:
        evaluate("sintel", sintel, METHOD, samples=Stops(open_dataset("sintel", sintel)), out=str(tmp_path / "o"),
                 progress=False)
    assert info.value.exit_code == 130 and isinstance(info.value, KeyboardInterrupt)
    assert "interrupted after 2 of 6 frames" in str(info.value)
    assert signal.getsignal(signal.SIGINT) is before  # handlers restored
