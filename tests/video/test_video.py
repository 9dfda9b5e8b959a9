"""flowmatch.video and `flowmatch video`: streamed flow over a procedural video with known motion."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import flowmatch
from flowmatch import io
from flowmatch.errors import FlowFormatError, InputError
from flowmatch.video import frame_source, video_flow, write_test_video

MOTION = (2.0, 1.0)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """An 8-frame 95×63 (odd) video whose content moves by MOTION px per frame, and its true flow."""
    path = str(tmp_path_factory.mktemp("video") / "clip.mp4")
    gt = write_test_video(path, frames=8, height=63, width=95, motion=MOTION)
    return path, gt


def _epe(flow, gt, border=8):
    return float(np.linalg.norm(flow - gt, axis=2)[border:-border, border:-border].mean())


def test_video_round_trip_recovers_the_known_motion(clip, tmp_path):
    path, gt = clip
    meta, frames = frame_source(path)
    assert meta["size"] == (95, 63)  # odd sizes kept (macro_block_size=1)
    first = next(frames)
    assert first.shape == (63, 95, 3) and first.dtype == np.uint8
    frames.close()
    viz = str(tmp_path / "viz.mp4")
    s = video_flow(path, str(tmp_path / "flows"), "dis-medium", viz=viz, progress=False)
    assert s.pairs == s.computed == 7 and s.skipped == 0
    assert [os.path.basename(p) for p in s.outputs] == [f"flow_{i:06d}.flo" for i in range(7)]
    epes = [_epe(io.read_flow(p)[0], gt) for p in s.outputs]
    print(f"video round trip, dis-medium: EPE per pair vs the known motion {np.round(epes, 3).tolist()} px")
    assert max(epes) < 0.3
    vmeta, vframes = frame_source(viz)
    assert vmeta["size"] == (2 * 95, 63)  # frame | flow colour, side by side
    assert sum(1 for _ in vframes) == 7


def test_every_start_end_select_frames_and_png_output(clip, tmp_path):
    path, gt = clip
    s = video_flow(path, str(tmp_path), "dis-medium", every=2, start=1, end=7, fmt="png", progress=False)
    # used frames 1, 3, 5 -> pairs (1, 3), (3, 5)
    assert [os.path.basename(p) for p in s.outputs] == ["flow_000001.png", "flow_000003.png"]
    for p in s.outputs:
        flow, valid = io.read_flow(p)
        assert valid.all()
        assert _epe(flow, 2 * gt) < 0.5  # two frames apart: twice the motion


def test_frame_folder_input_matches_flowmatch_flow(tmp_path):
    rng = np.random.default_rng(1)
    folder = tmp_path / "frames"
    frames = []
    for i in range(3):
        img = (rng.random((40, 52, 3)) * 255).astype(np.uint8)
        frames.append(img)
        io.write_image(str(folder / f"{i:04d}.png"), img)
    s = video_flow(str(folder), str(tmp_path / "out"), "farneback", progress=False)
    assert s.pairs == 2
    for i, p in enumerate(s.outputs):
        np.testing.assert_array_equal(io.read_flow(p)[0], flowmatch.flow(frames[i], frames[i + 1], method="farneback"))


def test_bad_video_inputs_raise_named_errors(clip, tmp_path):
    path, _ = clip
    with pytest.raises(InputError, match="does not exist"):
        video_flow(str(tmp_path / "missing.mp4"), str(tmp_path / "o"), "dis-fast", progress=False)
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"this is not a video" * 100)
    with pytest.raises(FlowFormatError, match="cannot read video"):
        video_flow(str(junk), str(tmp_path / "o"), "dis-fast", progress=False)
    with pytest.raises(InputError, match="unknown flow method"):
        video_flow(path, str(tmp_path / "o"), "no-such-method", progress=False)
    with pytest.raises(InputError, match="every"):
        video_flow(path, str(tmp_path / "o"), "dis-fast", every=0, progress=False)
    with pytest.raises(InputError, match="fewer than two frames"):
        video_flow(path, str(tmp_path / "o"), "dis-fast", start=7, progress=False)
    one = tmp_path / "one"
    io.write_image(str(one / "a.png"), np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(InputError, match="at least two"):
        video_flow(str(one), str(tmp_path / "o"), "dis-fast", progress=False)
    # the command reports them as errors with exit code 1, no traceback
    r = subprocess.run([sys.executable, "-m", "flowmatch", "video", str(junk), "--out", str(tmp_path / "o")],
                       capture_output=True, text=True)
    assert r.returncode == 1 and "cannot read video" in r.stderr and "Traceback" not in r.stderr


def _finished_flows(out) -> list[str]:
    """The renamed (complete) flow files in `out`; temporaries (".flow_….tmp.flo") are not finished files."""
    return sorted(f for f in os.listdir(out) if f.endswith(".flo") and not f.startswith(".")) if out.is_dir() else []


def _wait_for_flows(proc, out, n: int, poll_s: float) -> None:
    """Wait (up to 120 s) until `out` holds n finished flow files or `proc` has ended."""
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None and len(_finished_flows(out)) < n:
        time.sleep(poll_s)


def test_killed_then_resumed_run_gives_the_same_files(tmp_path):
    path = str(tmp_path / "long.mp4")
    write_test_video(path, frames=10, height=64, width=96, motion=MOTION, seed=3)
    ref = video_flow(path, str(tmp_path / "ref"), "deepflow", progress=False)
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "flowmatch", "video", path, "--out", str(out), "--method", "deepflow", "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_for_flows(proc, out, 3, 0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = _finished_flows(out)
    assert 3 <= len(done) < 9, f"the kill should land mid-run, found {len(done)} files"
    for f in done:  # whatever is there is complete (atomic writes)
        io.read_flow(str(out / f))
    r = subprocess.run(cmd + ["--resume"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert f"{len(done)} already there" in r.stderr
    final = sorted(os.listdir(out))
    # no stray temporaries either (the killed run's writer folder is removed: its pid is gone)
    assert final == sorted([os.path.basename(p) for p in ref.outputs] + ["video_settings.json"])
    for p in ref.outputs:
        with open(p, "rb") as a, open(out / os.path.basename(p), "rb") as b:
            assert a.read() == b.read(), p


def test_frames_are_streamed_not_listed(tmp_path, monkeypatch):
    """An endless video: only streaming can stop at --end (listing the frames would never return)."""
    import imageio_ffmpeg

    def endless(path, pix_fmt="rgb24", **kw):
        yield {"size": (32, 24), "fps": 25.0, "duration": float("inf")}
        rng = np.random.default_rng(0)
        while True:
            yield (rng.random((24, 32, 3)) * 255).astype(np.uint8).tobytes()

    monkeypatch.setattr(imageio_ffmpeg, "read_frames", endless)
    fake = tmp_path / "endless.mp4"
    fake.write_bytes(b"")
    s = video_flow(str(fake), str(tmp_path / "o"), "dis-fast", end=4, progress=False)
    assert s.pairs == 3


def test_each_rank_computes_on_the_device_rank_device_gives(clip, tmp_path, monkeypatch):
    """video_flow (and eval) hand --device through distributed.rank_device (under torchrun a bare
    "cuda" becomes cuda:LOCAL_RANK) and run the method on what it returns; the record keeps the type."""
    import importlib
    import json

    import flowmatch.distributed as D
    R = importlib.import_module("flowmatch.methods.registry")  # flowmatch.methods is also a function
    H = importlib.import_module("flowmatch.evaluation.harness")  # before rank_device is patched
    asked, used = [], []
    monkeypatch.setattr(D, "rank_device", lambda device, info: asked.append(device) or "cpu")
    real_flow = R.flow
    monkeypatch.setattr(R, "flow", lambda *a, device="cpu", **kw: used.append(device) or real_flow(*a, **kw))
    video_flow(clip[0], str(tmp_path / "v"), "dis-medium", device="cpu:7", end=3, progress=False)
    assert asked == ["cpu:7"] and used == ["cpu", "cpu"]
    assert json.load(open(tmp_path / "v" / "video_settings.json"))["settings"]["device"] == "cpu"
    import layouts  # tests/layouts.py

    monkeypatch.setattr(H, "rank_device", D.rank_device)  # imported by name there
    asked.clear()
    used.clear()
    real_run = H.run_flow
    monkeypatch.setattr(H, "run_flow", lambda *a, device="cpu", **kw: used.append(device) or real_run(*a, **kw))
    root = layouts.make_sintel(tmp_path, scenes=("alley_1",), frames=2)
    H.evaluate("sintel", root, "dis-medium", device="cpu:7", progress=False)
    assert asked == ["cpu:7"] and used and set(used) == {"cpu"}


# --- pairs at once (Method.video_workers) ---------------------------------------------------------------

def test_pairs_at_once_write_the_same_files_as_one_at_a_time(tmp_path):
    from flowmatch.methods import get_method
    from flowmatch.video.run import default_workers
    path = str(tmp_path / "c.mp4")
    write_test_video(path, frames=12, height=72, width=96, motion=MOTION, seed=5)
    assert get_method("dis-medium").video_workers > 1 and get_method("patchbatch-fast").video_workers == 1
    assert default_workers("dis-medium") == (1 if (os.cpu_count() or 1) == 1 else 3)
    one = video_flow(path, str(tmp_path / "one"), "dis-medium", workers=1, progress=False)
    many = video_flow(path, str(tmp_path / "many"), "dis-medium", workers=4, progress=False)
    assert [os.path.basename(p) for p in many.outputs] == [f"flow_{i:06d}.flo" for i in range(11)]
    for a, b in zip(one.outputs, many.outputs):
        with open(a, "rb") as fa, open(b, "rb") as fb:
            assert fa.read() == fb.read(), b
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(InputError, match="workers"):
            video_flow(path, str(tmp_path / "bad"), "dis-medium", workers=bad, progress=False)


@pytest.mark.parametrize("workers", [1, 3])
def test_overlapped_keeps_order_and_writes_what_was_computed_before_an_error(workers):
    import random
    from flowmatch.video.pipeline import overlapped
    rnd = random.Random(0)

    def work(k):
        time.sleep(rnd.random() * 0.01)  # items finish out of order in the pool
        if k == 7:
            raise ValueError("pair 7 failed")
        return k

    got = []
    with pytest.raises(ValueError, match="pair 7"):
        overlapped(iter(range(20)), work, got.append, workers=workers)
    # everything before the failure, in order; with a pool, pairs in flight after it may be written too
    assert got[:7] == list(range(7)) and 7 not in got and got == sorted(got) and max(got) < 7 + workers
    got.clear()
    def slow_echo(k):
        time.sleep(rnd.random() * 0.002)
        return k

    overlapped(iter(range(50)), slow_echo, got.append, workers=workers)
    assert got == list(range(50))

    def bad_source():
        yield 0
        yield 1
        raise OSError("decoder died")

    got.clear()
    with pytest.raises(OSError, match="decoder died"):
        overlapped(bad_source(), lambda k: k, got.append, workers=workers)
    assert got == [0, 1]


def test_sigterm_with_pairs_at_once_keeps_complete_files_and_resumes(tmp_path):
    path = str(tmp_path / "long.mp4")
    write_test_video(path, frames=200, height=120, width=160, motion=MOTION, seed=4)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "flowmatch", "video", path, "--out", str(out), "--method", "dis-medium",
           "--workers", "3", "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _wait_for_flows(proc, out, 5, 0.005)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    done = _finished_flows(out)
    assert proc.returncode == 143  # EXIT_TERMINATED
    assert "terminated" in err and "Traceback" not in err, err
    assert 5 <= len(done) < 199, f"SIGTERM should land mid-run, found {len(done)} files"
    assert not [f for f in os.listdir(out) if f.startswith(".") and "tmp" in f]
    r = subprocess.run(cmd + ["--resume"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    ref = video_flow(path, str(tmp_path / "ref"), "dis-medium", workers=1, progress=False)
    assert sorted(os.listdir(out)) == sorted([os.path.basename(p) for p in ref.outputs] + ["video_settings.json"])
    for p in ref.outputs:
        with open(p, "rb") as a, open(out / os.path.basename(p), "rb") as b:
            assert a.read() == b.read(), p
