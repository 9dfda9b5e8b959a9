"""Classical flow baselines from OpenCV, registered for comparison with the project's methods.

Always present (plain OpenCV): DIS presets ``dis-ultrafast``, ``dis-fast``, ``dis-medium`` and
``farneback``.  With opencv-contrib (``cv2.optflow``): ``deepflow``, ``dualtvl1``, ``pcaflow``;
without it they are registered but report themselves unavailable.

Every method takes float32 H×W×3 frames in [0, 255] (see flowmatch.image.as_image) and returns float32
H×W×2 flow in pixels, x (u) first, from img1 to img2.  They run on the CPU only.
"""
from __future__ import annotations

import atexit
import subprocess
import sys
import tempfile
import threading
from typing import Any

import numpy as np

from ..errors import InputError, MethodUnavailableError
from ..image import gray_u8
from .options import Bool, Float, Int, OneOf, check_spec_covers
from .registry import Method, register

try:
    import cv2
except ImportError:  # pragma: no cover - opencv is a requirement, but say so clearly if absent
    cv2 = None


def _need_cv2() -> str | None:
    return None if cv2 is not None else "OpenCV is not installed (pip install opencv-contrib-python-headless)"


def _need_contrib() -> str | None:
    if cv2 is None:
        return _need_cv2()
    if not hasattr(cv2, "optflow"):
        return ("cv2.optflow is missing: install opencv-contrib-python-headless instead of "
                "opencv-python(-headless) (only one OpenCV package may be installed)")
    return None


def _cpu_only(name: str, device: str) -> None:
    if device not in ("cpu", None):
        raise InputError(f"method {name!r} runs on the CPU only; got device={device!r} (use device='cpu')")


def _min_size(name: str, img: np.ndarray, minimum: int) -> None:
    h, w = img.shape[:2]
    if h < minimum or w < minimum:
        raise InputError(f"method {name!r} needs frames of at least {minimum}×{minimum} pixels, got {w}×{h}")


def _finish(flow: np.ndarray, name: str) -> np.ndarray:
    flow = np.ascontiguousarray(flow, dtype=np.float32)
    # OpenCV's variational methods can leave NaN where a pyramid level is degenerate; report zero
    # motion there rather than poisoning every metric downstream.
    if not np.isfinite(flow).all():
        flow = np.nan_to_num(flow, nan=0.0, posinf=0.0, neginf=0.0)
    return flow


# --- DIS ------------------------------------------------------------------------------------------

_DIS_PRESETS = {"ultrafast": 0, "fast": 1, "medium": 2}  # cv2.DISOPTICAL_FLOW_PRESET_*
# OpenCV's DIS raises cv2.error below 12 px (its coarsest level needs a full 8 px patch plus border).
DIS_MIN_SIZE = 12


def _make_dis(preset: str):
    def run(img1: np.ndarray, img2: np.ndarray, *, device: str = "cpu",
            variational_refinement: bool | None = None) -> np.ndarray:
        name = f"dis-{preset}"
        _cpu_only(name, device)
        _min_size(name, img1, DIS_MIN_SIZE)
        dis = cv2.DISOpticalFlow_create(_DIS_PRESETS[preset])
        if variational_refinement is not None:
            dis.setVariationalRefinementIterations(5 if variational_refinement else 0)
        return _finish(dis.calc(gray_u8(img1), gray_u8(img2), None), name)

    return run


# --- Farneback ------------------------------------------------------------------------------------

def _farneback(img1: np.ndarray, img2: np.ndarray, *, device: str = "cpu", pyr_scale: float = 0.5,
               levels: int = 5, winsize: int = 15, iterations: int = 3, poly_n: int = 5,
               poly_sigma: float = 1.2) -> np.ndarray:
    _cpu_only("farneback", device)
    _min_size("farneback", img1, 8)
    # Pyramid levels below ~8 px carry no information and make Farneback unstable: cap them.
    m = min(img1.shape[:2])
    levels = int(max(1, min(levels, np.floor(np.log(m / 8.0) / np.log(1.0 / pyr_scale)) + 1)))
    flow = cv2.calcOpticalFlowFarneback(gray_u8(img1), gray_u8(img2), None, pyr_scale, levels,
                                        winsize, iterations, poly_n, poly_sigma, 0)
    return _finish(flow, "farneback")


# --- contrib methods ------------------------------------------------------------------------------

def _deepflow(img1: np.ndarray, img2: np.ndarray, *, device: str = "cpu") -> np.ndarray:
    _cpu_only("deepflow", device)
    _min_size("deepflow", img1, 16)
    algo = cv2.optflow.createOptFlow_DeepFlow()
    return _finish(algo.calc(gray_u8(img1), gray_u8(img2), None), "deepflow")


def _pcaflow(img1: np.ndarray, img2: np.ndarray, *, device: str = "cpu", isolate: bool = True) -> np.ndarray:
    _cpu_only("pcaflow", device)
    _min_size("pcaflow", img1, 8)
    # PCAFlow corrupts the heap on frames under ~64 rows here (measured: 50×50, 32×32, 50×200 abort
    # or segfault at exit, 64×N and larger were clean).  Pad small frames (edge replicate) and crop the
    # flow back; and run it in the worker process, since the fault depends on the image content.
    h, w = img1.shape[:2]
    ph, pw = max(0, _PCA_MIN - h), max(0, _PCA_MIN - w)
    a, b = gray_u8(img1), gray_u8(img2)
    if ph or pw:
        a = cv2.copyMakeBorder(a, 0, ph, 0, pw, cv2.BORDER_REPLICATE)
        b = cv2.copyMakeBorder(b, 0, ph, 0, pw, cv2.BORDER_REPLICATE)
    if isolate:
        flow = _worker.run("pcaflow", a, b, np.zeros(6))
    else:
        flow = cv2.optflow.createOptFlow_PCAFlow().calc(a, b, None)
    return _finish(flow[:h, :w], "pcaflow")


_PCA_MIN = 64


# OpenCV's contrib solvers are not memory-safe on every input: DualTVL1 crashed the whole process
# ("corrupted double-linked list") on a 50×50 image on this machine kind, PCAFlow corrupts the heap
# on small frames.  A native crash cannot be caught in Python, so by default they run in one small
# persistent child process that imports only numpy and cv2: if it dies we raise, and restart it on
# the next call.  Protocol (stdin/stdout, raw bytes): int32 [algo, h, w], frame a, frame b (uint8
# h×w), 6 float64 parameters -> float32 h×w×2 flow.
_ALGOS = {"dualtvl1": 0, "pcaflow": 1}
_CHILD = r"""
import os, sys, threading, time, numpy as np, cv2
inp, out = sys.stdin.buffer, sys.stdout.buffer
# Die with the parent: a solver call can run for minutes (hostile options), and an orphan would keep
# spinning after the parent was killed.  cv2 releases the GIL during calc, so this thread runs.
_parent = os.getppid()
def _watch():
    while True:
        if os.getppid() != _parent:
            os._exit(1)
        time.sleep(0.5)
threading.Thread(target=_watch, daemon=True).start()
def read_exact(n):
    data = inp.read(n)
    if len(data) != n:
        raise EOFError
    return data
while True:
    try:
        algo_id, h, w = np.frombuffer(read_exact(12), np.int32)
    except EOFError:
        break
    a = np.frombuffer(read_exact(h * w), np.uint8).reshape(h, w)
    b = np.frombuffer(read_exact(h * w), np.uint8).reshape(h, w)
    p = np.frombuffer(read_exact(48), np.float64)
    if algo_id == 0:
        algo = cv2.optflow.DualTVL1OpticalFlow_create()
        algo.setScalesNumber(int(p[0])); algo.setWarpingsNumber(int(p[1])); algo.setLambda(float(p[2]))
        algo.setTau(float(p[3])); algo.setTheta(float(p[4])); algo.setEpsilon(float(p[5]))
    else:
        algo = cv2.optflow.createOptFlow_PCAFlow()
    flow = np.ascontiguousarray(algo.calc(a, b, None), dtype=np.float32)
    out.write(flow.tobytes())
    out.flush()
"""


class _Worker:
    """One persistent child process running the unsafe OpenCV solvers (restarted after a crash)."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen | None = None
        self._lock = threading.Lock()
        atexit.register(self.close)

    def _start(self) -> subprocess.Popen:
        if self._proc is None or self._proc.poll() is not None:
            # stderr goes to a temporary file (a pipe nobody reads could fill up and block).
            self._stderr = tempfile.TemporaryFile()
            self._proc = subprocess.Popen([sys.executable, "-c", _CHILD], stdin=subprocess.PIPE,
                                          stdout=subprocess.PIPE, stderr=self._stderr)
        return self._proc

    def run(self, algo: str, a: np.ndarray, b: np.ndarray, params: np.ndarray) -> np.ndarray:
        """Flow (H×W×2 float32) of `algo` for uint8 H×W frames a, b; params as in _CHILD."""
        h, w = a.shape
        with self._lock:
            proc = self._start()
            msg = (np.array([_ALGOS[algo], h, w], np.int32).tobytes() + np.ascontiguousarray(a).tobytes()
                   + np.ascontiguousarray(b).tobytes() + params.astype(np.float64).tobytes())
            try:
                proc.stdin.write(msg)
                proc.stdin.flush()
                n = h * w * 2 * 4
                data = proc.stdout.read(n)
                if len(data) != n:
                    raise EOFError("short read")
                return np.frombuffer(data, np.float32).reshape(h, w, 2).copy()
            except (BrokenPipeError, EOFError, OSError) as exc:
                proc.kill()
                proc.wait()
                self._stderr.seek(0)
                err = self._stderr.read().decode(errors="replace").strip().splitlines()[-2:]
                self._proc = None
                raise MethodUnavailableError(
                    f"{algo}: OpenCV's solver crashed in its worker process on a {w}×{h} frame "
                    f"(exit code {proc.returncode}; {' | '.join(err) or exc}); try another method, "
                    f"or isolate=False to run it in-process") from None

    def close(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.stdin.close()
            try:
                self._proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                self._proc.kill()
        self._proc = None


_worker = _Worker()


def _dualtvl1(img1: np.ndarray, img2: np.ndarray, *, device: str = "cpu", scales: int = 5,
              warps: int = 5, lambda_: float = 0.15, tau: float = 0.25, theta: float = 0.3,
              epsilon: float = 0.01, isolate: bool = True) -> np.ndarray:
    _cpu_only("dualtvl1", device)
    _min_size("dualtvl1", img1, 16)
    # Keep the coarsest pyramid level at 16 px or more (OpenCV halves per scale).
    m = min(img1.shape[:2])
    scales = int(max(1, min(scales, int(np.floor(np.log2(m / 16.0))) + 1)))
    a, b = gray_u8(img1), gray_u8(img2)
    if isolate:
        params = np.array([scales, warps, lambda_, tau, theta, epsilon], dtype=np.float64)
        flow = _worker.run("dualtvl1", a, b, params)
    else:
        algo = cv2.optflow.DualTVL1OpticalFlow_create()
        algo.setScalesNumber(scales)
        algo.setWarpingsNumber(warps)
        algo.setLambda(lambda_)
        algo.setTau(tau)
        algo.setTheta(theta)
        algo.setEpsilon(epsilon)
        flow = algo.calc(a, b, None)
    return _finish(flow, "dualtvl1")


# --- option tables: every option's type and range, at the limits of the OpenCV call below ---------
# (checked by the registry before the method runs; see flowmatch.methods.options)

DIS_OPTIONS = {"variational_refinement": Bool(optional=True)}
FARNEBACK_OPTIONS = {
    "pyr_scale": Float(0.0, 1.0, open_lo=True, open_hi=True),  # 0 divides by zero, >= 1 never shrinks
    "levels": Int(1, 64),
    "winsize": Int(1, 255),        # OpenCV allocates winsize² kernels: 1e9 segfaults, 0 gives zero flow
    "iterations": Int(1, 1000),    # 0 gives zero flow
    "poly_n": OneOf((5, 7)),       # the only expansions OpenCV documents
    "poly_sigma": Float(0.0, 100.0, open_lo=True),
}
DUALTVL1_OPTIONS = {
    "scales": Int(1, 32),
    "warps": Int(1, 100),
    "lambda_": Float(0.0, 1e4, open_lo=True),
    "tau": Float(0.0, 0.25, open_lo=True),   # the solver's stability bound
    "theta": Float(0.0, 1.0, open_lo=True),
    "epsilon": Float(0.0, 1.0, open_lo=True),
    "isolate": Bool(),
}
PCAFLOW_OPTIONS = {"isolate": Bool()}
DEEPFLOW_OPTIONS: dict[str, Any] = {}


def _defaults(fn: Any) -> dict[str, Any]:
    """Keyword defaults of a run function except `device` (the registry's option list)."""
    kw = dict(fn.__kwdefaults__ or {})
    kw.pop("device", None)
    return kw


for _preset, _desc in (("ultrafast", "fastest, coarsest"), ("fast", "fast"), ("medium", "slower, finer")):
    _fn = _make_dis(_preset)
    register(Method(name=f"dis-{_preset}", run=_fn, check=_need_cv2, defaults=_defaults(_fn), options=DIS_OPTIONS,
                    video_workers=3, description=f"OpenCV DIS optical flow, preset {_preset} ({_desc}); CPU"))

register(Method(name="farneback", run=_farneback, check=_need_cv2, defaults=_defaults(_farneback),
                options=FARNEBACK_OPTIONS, video_workers=2,
                description="OpenCV Farneback polynomial-expansion flow; CPU"))
register(Method(name="deepflow", run=_deepflow, check=_need_contrib, defaults=_defaults(_deepflow),
                options=DEEPFLOW_OPTIONS, video_workers=2,
                description="DeepFlow variational flow (cv2.optflow, opencv-contrib); CPU, slow"))
register(Method(name="dualtvl1", run=_dualtvl1, check=_need_contrib, defaults=_defaults(_dualtvl1),
                options=DUALTVL1_OPTIONS,
                description="TV-L1 flow (cv2.optflow, opencv-contrib), run in a child process; CPU, slow"))
register(Method(name="pcaflow", run=_pcaflow, check=_need_contrib, defaults=_defaults(_pcaflow),
                options=PCAFLOW_OPTIONS,
                description="PCA-Flow sparse-to-dense (cv2.optflow, opencv-contrib), run in a child process; CPU"))

for _name, _spec, _fn in (("farneback", FARNEBACK_OPTIONS, _farneback), ("deepflow", DEEPFLOW_OPTIONS, _deepflow),
                          ("dualtvl1", DUALTVL1_OPTIONS, _dualtvl1), ("pcaflow", PCAFLOW_OPTIONS, _pcaflow),
                          ("dis", DIS_OPTIONS, _make_dis("fast"))):
    check_spec_covers(_name, _spec, _defaults(_fn))
