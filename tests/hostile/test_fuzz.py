"""Property-based hostile input (hypothesis, run inside the memory-limited child): random option
values for the OpenCV methods, mutated image files of every accepted format, random checkpoint
headers.  Each must give a finite result or a named flowmatch error -- never a crash, a hang, a
foreign exception or a blow-up.  HOSTILE_EXAMPLES sets the examples per property (default 25;
e.g. 500 for a long run)."""
import os

import pytest

from _cases import check
from _runner import run_cases

SETUP = r"""
import json, os, tempfile, warnings
import numpy as np, cv2
from hypothesis import HealthCheck, given, settings, strategies as st
import flowmatch
from flowmatch import io
from flowmatch.checkpoint import load_checkpoint
from flowmatch.errors import FlowmatchError
warnings.simplefilter("ignore")
N = int(os.environ.get("HOSTILE_EXAMPLES", "25"))
SETTINGS = settings(max_examples=N, deadline=None, derandomize=True, database=None,
                    suppress_health_check=list(HealthCheck))
T = tempfile.mkdtemp(prefix="hostile_fuzz_")
rng = np.random.default_rng(0)
A = rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)
B = np.roll(A, 1, axis=1)
VALUES = st.one_of(st.integers(-2**70, 2**70), st.integers(-3, 300), st.floats(allow_nan=True, allow_infinity=True),
                   st.floats(-2.0, 2.0), st.booleans(), st.none(), st.text(max_size=5), st.lists(st.integers(), max_size=2))

def fuzz_method(method, names):
    @SETTINGS
    @given(st.dictionaries(st.sampled_from(names), VALUES, max_size=3))
    def prop(opts):
        try:
            out = flowmatch.flow(A, B, method=method, **opts)
        except FlowmatchError:
            return
        assert np.isfinite(out).all() and out.shape == (40, 48, 2), (opts, out.shape)
    prop()

def fuzz_file(ext, params=()):
    ok, buf = cv2.imencode(ext, A, list(params))
    good = bytes(buf.tobytes())
    path = os.path.join(T, "f" + ext)
    @SETTINGS
    @given(st.lists(st.tuples(st.integers(0, len(good) - 1), st.integers(0, 255)), min_size=1, max_size=8),
           st.integers(1, len(good)))
    def prop(edits, cut):
        data = bytearray(good[:cut] if cut < len(good) // 2 else good)
        for i, v in edits:
            if i < len(data):
                data[i] = v
        with open(path, "wb") as fh:
            fh.write(bytes(data))
        try:
            img = io.read_image(path)
        except FlowmatchError:
            return
        assert img.ndim in (2, 3) and img.size <= 40 * 48 * 4 * 64, img.shape
    prop()

JSONS = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=4)),
                     lambda c: st.one_of(st.lists(c, max_size=3), st.dictionaries(st.text(max_size=6), c, max_size=3)),
                     max_leaves=12)
def fuzz_header():
    from safetensors.torch import save_file
    import torch
    path = os.path.join(T, "h.safetensors")
    keys = st.sampled_from(["format", "kind", "config", "extra", "half", "x"])
    @SETTINGS
    @given(st.one_of(JSONS, st.dictionaries(keys, JSONS, max_size=5)))
    def prop(header):
        save_file({"model/w": torch.zeros(2)}, path, metadata={"flowmatch": json.dumps(header)})
        try:
            load_checkpoint(path)
        except FlowmatchError:
            return
    prop()
"""

CASES = {
    "ok_fuzz_farneback_options": "fuzz_method('farneback', ['pyr_scale', 'levels', 'winsize', 'iterations', 'poly_n', 'poly_sigma'])",
    "ok_fuzz_dis_options": "fuzz_method('dis-fast', ['variational_refinement', 'bogus'])",
    "ok_fuzz_dualtvl1_options": "fuzz_method('dualtvl1', ['scales', 'warps', 'lambda_', 'tau', 'theta', 'epsilon'])",
    "ok_fuzz_png": "fuzz_file('.png')",
    "ok_fuzz_jpeg": "fuzz_file('.jpg')",
    "ok_fuzz_bmp": "fuzz_file('.bmp')",
    "ok_fuzz_webp": "fuzz_file('.webp')",
    "ok_fuzz_tiff": "fuzz_file('.tiff')",
    "ok_fuzz_pnm": "fuzz_file('.ppm')",
    "ok_fuzz_checkpoint_header": "fuzz_header()",
}


@pytest.fixture(scope="module")
def outcomes():
    return run_cases(CASES, SETUP, case_timeout=float(os.environ.get("HOSTILE_CASE_TIMEOUT", "300")))


@pytest.mark.parametrize("name", sorted(CASES))
def test_hostile_fuzz(outcomes, name):
    check(name, outcomes[name])
