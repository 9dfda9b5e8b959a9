"""The method registry and the classical OpenCV baselines (flowmatch/methods/classical.py)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

import flowmatch
from flowmatch.errors import FlowmatchError, InputError, MethodUnavailableError
from flowmatch.methods import classical, registry

ROOT = Path(__file__).resolve().parents[2]

CLASSICAL = ("dis-ultrafast", "dis-fast", "dis-medium", "farneback", "deepflow", "dualtvl1", "pcaflow")


def translated_pair(h: int = 96, w: int = 128, u: float = 1.5, v: float = -0.75, seed: int = 0):
    """A smooth random texture and the same texture moved by (u, v) px: the true flow is (u, v) everywhere."""
    rng = np.random.default_rng(seed)
    tex = rng.random((h // 4 + 8, w // 4 + 8, 3)).astype(np.float32)
    tex = cv2.resize(tex, (w + 32, h + 32), interpolation=cv2.INTER_CUBIC) * 255
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    a = cv2.remap(tex, xs + 16, ys + 16, cv2.INTER_LINEAR)
    b = cv2.remap(tex, xs + 16 - u, ys + 16 - v, cv2.INTER_LINEAR)
    return np.clip(a, 0, 255).astype(np.uint8), np.clip(b, 0, 255).astype(np.uint8)


def test_classical_methods_are_registered_with_requirements():
    found = {m.name: m for m in flowmatch.methods()}
    for name in CLASSICAL:
        m = found[name]
        assert m.description
        assert (m.needs_extension, m.needs_weights, m.needs_gpu) == (False, False, False)
    # every registered method (any engineer's) declares its needs as booleans
    for m in found.values():
        assert all(isinstance(x, bool) for x in (m.needs_extension, m.needs_weights, m.needs_gpu))
    assert flowmatch.best_method() in {m.name for m in flowmatch.methods(available_only=True)}


@pytest.mark.parametrize("name", CLASSICAL)
def test_classical_method_recovers_a_known_translation(name):
    if not flowmatch.get_method(name).available:
        pytest.skip(f"{name} unavailable here: {flowmatch.get_method(name).unavailable_reason()}")
    a, b = translated_pair()
    flow = flowmatch.flow(a, b, method=name)
    assert flow.shape == (96, 128, 2) and flow.dtype == np.float32
    err = np.linalg.norm(flow - np.array([1.5, -0.75], np.float32), axis=2)[10:-10, 10:-10]
    assert err.mean() < 0.35, f"{name}: interior EPE {err.mean():.3f} px against the true translation"


def test_flow_accepts_gray_float_and_torch_inputs_alike():
    import torch
    a, b = translated_pair(64, 80)
    ref = flowmatch.flow(a, b, method="dis-medium")
    as_float = flowmatch.flow(a.astype(np.float32) / 255.0, b.astype(np.float32) / 255.0, method="dis-medium")
    as_torch = flowmatch.flow(torch.from_numpy(a).permute(2, 0, 1), torch.from_numpy(b).permute(2, 0, 1),
                              method="dis-medium")
    np.testing.assert_allclose(as_float, ref, atol=1e-5)
    assert isinstance(as_torch, torch.Tensor) and as_torch.shape == (2, 64, 80)  # the caller's layout
    np.testing.assert_allclose(as_torch.permute(1, 2, 0).numpy(), ref, atol=1e-5)
    as_255 = flowmatch.flow(a.astype(np.float32), b.astype(np.float32), method="dis-medium", value_range=255)
    assert np.array_equal(as_255, ref)
    with pytest.raises(InputError, match="value_range=255"):
        flowmatch.flow(a.astype(np.float32), b.astype(np.float32), method="dis-medium")
    gray = flowmatch.flow(cv2.cvtColor(a, cv2.COLOR_RGB2GRAY), cv2.cvtColor(b, cv2.COLOR_RGB2GRAY),
                          method="dis-medium")
    assert np.abs(gray - ref).mean() < 0.05  # same luma up to rounding


def test_method_options_are_checked_and_passed():
    a, b = translated_pair(64, 80)
    one = flowmatch.flow(a, b, method="farneback", levels=1, winsize=5)
    many = flowmatch.flow(a, b, method="farneback")
    assert not np.allclose(one, many)  # the options reached OpenCV
    with pytest.raises(InputError, match="no option"):
        flowmatch.flow(a, b, method="farneback", not_an_option=3)


def test_bad_inputs_raise_named_errors():
    a, b = translated_pair(64, 80)
    with pytest.raises(InputError, match="unknown flow method 'nope'"):
        flowmatch.flow(a, b, method="nope")
    with pytest.raises(InputError, match="differ in size"):
        flowmatch.flow(a, b[:-1], method="dis-fast")
    with pytest.raises(InputError, match="CPU only"):
        flowmatch.flow(a, b, method="dis-fast", device="cuda")
    with pytest.raises(InputError, match="at least 16"):
        flowmatch.flow(a[:12, :12], b[:12, :12], method="dualtvl1")
    with pytest.raises(InputError, match="NaN"):
        flowmatch.flow(np.full((20, 20), np.nan, np.float32), a[:20, :20], method="dis-fast")
    with pytest.raises(FlowmatchError, match="does not exist"):
        flowmatch.flow("not an image", b, method="dis-fast")  # a str is a path
    with pytest.raises(InputError, match="numpy array or torch tensor"):
        flowmatch.flow([[1, 2], [3, 4]], b, method="dis-fast")


def test_contrib_methods_report_unavailable_without_cv2_optflow(monkeypatch):
    monkeypatch.delattr(cv2, "optflow")
    m = flowmatch.get_method("deepflow")
    assert not m.available and "opencv-contrib" in m.unavailable_reason()
    assert "deepflow" not in {x.name for x in flowmatch.methods(available_only=True)}
    a, b = translated_pair(32, 32)
    with pytest.raises(MethodUnavailableError, match="deepflow"):
        flowmatch.flow(a, b, method="deepflow")


@pytest.mark.parametrize("name", ["dualtvl1", "pcaflow"])
def test_a_solver_crash_in_the_child_is_an_error_not_a_dead_process(monkeypatch, name):
    if not flowmatch.get_method(name).available:
        pytest.skip("no cv2.optflow")
    a, b = translated_pair(48, 48)
    worker = classical._Worker()
    monkeypatch.setattr(classical, "_worker", worker)
    # a child that dies the way a heap corruption does (SIGABRT)
    monkeypatch.setattr(classical, "_CHILD", "import os, sys; sys.stdin.buffer.read(12); os.abort()")
    with pytest.raises(MethodUnavailableError, match="crashed in its worker process"):
        flowmatch.flow(a, b, method=name)
    monkeypatch.undo()
    monkeypatch.setattr(classical, "_worker", worker)
    isolated = flowmatch.flow(a, b, method=name)  # the worker restarts with the real child
    if name == "dualtvl1":  # in-process PCAFlow on this small frame is exactly what corrupts the heap
        np.testing.assert_allclose(isolated, flowmatch.flow(a, b, method=name, isolate=False), atol=1e-6)
    worker.close()


def test_pcaflow_on_small_frames_pads_and_stays_accurate():
    if not flowmatch.get_method("pcaflow").available:
        pytest.skip("no cv2.optflow")
    a, b = translated_pair(40, 56)  # below PCAFlow's safe 64 rows: padded, flow cropped back
    flow = flowmatch.flow(a, b, method="pcaflow")
    assert flow.shape == (40, 56, 2)
    err = np.linalg.norm(flow - np.array([1.5, -0.75], np.float32), axis=2)[8:-8, 8:-8]
    assert err.mean() < 0.5


def test_registry_best_method_follows_preference(monkeypatch):
    monkeypatch.setattr(registry, "PREFERENCE", ("not-registered", "farneback", "dis-medium"))
    assert registry.best_method() == "farneback"


def _children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:  # field 4 of stat: the parent pid
                out.append(int(entry))
    return out


def _cpu_seconds(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_isolated_solver_child_dies_with_its_parent():
    """A parent killed during a long isolated DualTVL1 call must not leave its solver child spinning."""
    code = ("import numpy as np, flowmatch; rng = np.random.default_rng(0)\n"
            "a = (rng.random((1024, 1024, 3)) * 255).astype(np.uint8)\n"
            "print('go', flush=True)\n"
            "flowmatch.flow(a, np.roll(a, 3, axis=1), method='dualtvl1', warps=100, epsilon=1e-9)\n")
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, cwd=str(ROOT))
    try:
        assert parent.stdout.readline().strip() == b"go"
        deadline = time.time() + 60
        kids: list[int] = []
        while not kids and time.time() < deadline:
            time.sleep(0.2)
            kids = _children(parent.pid)
        assert kids, "the isolated solver child never started"
        while _cpu_seconds(kids[0]) < 2.0 and time.time() < deadline:  # past its imports: in the solver
            time.sleep(0.2)
    finally:
        parent.kill()
        parent.wait()
    deadline = time.time() + 10
    while time.time() < deadline and any(os.path.exists(f"/proc/{k}") for k in kids):
        time.sleep(0.2)
    alive = [k for k in kids if os.path.exists(f"/proc/{k}")]
    for k in alive:
        os.kill(k, signal.SIGKILL)
    assert not alive, "the solver child outlived its parent"
