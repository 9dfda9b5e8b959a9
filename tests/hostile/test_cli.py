"""The command line under hostile input: one line on stderr, a documented exit code, no traceback,
no input overwritten (bytes and mtime compared), no crash."""
import pytest

from _cases import check
from _runner import run_cases

SETUP = r"""
import contextlib, io as _io, os, shutil, struct, subprocess, sys, tempfile, warnings
import numpy as np
from flowmatch import io
from flowmatch.cli import main
warnings.simplefilter("ignore")
T = tempfile.mkdtemp(prefix="hostile_cli_")
os.chmod(T, 0o755)
rng = np.random.default_rng(0)
A = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
def P(name):
    return os.path.join(T, name)
io.write_image(P("a.png"), A)
io.write_image(P("b.png"), np.roll(A, 2, axis=1))
io.write_flow(P("gt.flo"), rng.normal(size=(48, 64, 2)).astype(np.float32))
io.write_flow(P("pred.flo"), rng.normal(size=(48, 64, 2)).astype(np.float32))
io.write_flow(P("kitti.png"), rng.normal(size=(48, 64, 2)).astype(np.float32))
os.link(P("b.png"), P("b_hard.png"))
os.symlink(P("a.png"), P("a_sym.png"))
os.makedirs(P("pair"))
for f in ("a.png", "b.png", "gt.flo"):
    shutil.copy(P(f), P("pair/" + {"a.png": "img1.png", "b.png": "img2.png", "gt.flo": "flow.flo"}[f]))
os.makedirs(P("adir.flo"))
for d in ("pair", "adir.flo"):
    os.chmod(P(d), 0o755)
sys.path.insert(0, os.path.join(os.getcwd(), "tests"))
import layouts
SINTEL = layouts.make_sintel(P("ds"), scenes=("alley_1",), frames=2, size=(24, 32), test_scenes=("ambush_1",))
EXIT_CODES = {1, 2, 3, 4, 5}
FARNEBACK = ["--method", "farneback"]

def snapshot(paths):
    out = {}
    for p in paths:
        for root, _, files in (os.walk(p) if os.path.isdir(p) else [(os.path.dirname(p), None, [os.path.basename(p)])]):
            for f in files:
                q = os.path.join(root, f)
                st = os.lstat(q)
                with open(q, "rb") as fh:
                    out[q] = (fh.read(), st.st_mtime_ns)
    return out

def cli(argv):
    err, out = _io.StringIO(), _io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            rc = main(argv)
        except SystemExit as exc:
            rc = exc.code if isinstance(exc.code, int) else 1
    return rc, out.getvalue(), err.getvalue()

def refused(argv, untouched=(), codes=EXIT_CODES, contains=None):
    before = snapshot([P(u) if not os.path.isabs(u) else u for u in untouched])
    rc, out, err = cli(argv)
    lines = [l for l in err.strip().splitlines() if l.strip()]
    assert rc in codes, f"exit code {rc} not in {sorted(codes)}; stderr: {err[-1500:]}"
    assert "Traceback" not in err, err[-1500:]
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}: {err[-1500:]}"
    if contains:
        assert contains in err, err
    after = snapshot([P(u) if not os.path.isabs(u) else u for u in untouched])
    assert after == before, f"inputs changed: {[k for k in before if after.get(k) != before[k]]}"
    return rc, err

def as_user(fn):
    os.setegid(65534); os.seteuid(65534)
    try:
        return fn()
    finally:
        os.seteuid(0); os.setegid(0)
"""

CASES = {
    # outputs over inputs
    "cli_flow_out_is_img1": "refused(['flow', P('a.png'), P('b.png'), '-o', P('a.png')] + FARNEBACK, ['a.png', 'b.png'], {3})",
    "cli_flow_out_hardlink_of_img2": "refused(['flow', P('a.png'), P('b.png'), '-o', P('b_hard.png')] + FARNEBACK, ['a.png', 'b.png'], {3})",
    "cli_flow_out_symlink_of_img1": "refused(['flow', P('a_sym.png'), P('b.png'), '-o', P('a.png')] + FARNEBACK, ['a.png'], {3})",
    "cli_flow_viz_is_img1": "refused(['flow', P('a.png'), P('b.png'), '-o', P('o.flo'), '--viz', P('a.png')] + FARNEBACK, ['a.png'], {3})",
    "cli_flow_out_equals_viz": "refused(['flow', P('a.png'), P('b.png'), '-o', P('same.png'), '--viz', P('same.png')] + FARNEBACK, ['a.png'], {3})",
    "cli_compare_json_is_gt": "refused(['compare', P('pred.flo'), P('gt.flo'), '--json', P('gt.flo')], ['gt.flo', 'pred.flo'], {3})",
    "cli_compare_error_png_is_pred": "refused(['compare', P('kitti.png'), P('gt.flo'), '--error-png', P('kitti.png')], ['kitti.png'], {3})",
    "cli_viz_out_is_img1": "refused(['viz', P('pred.flo'), '-o', P('a.png'), '--img1', P('a.png')], ['a.png'], {3})",
    "cli_viz_out_is_flow": "refused(['viz', P('kitti.png'), '-o', P('kitti.png')], ['kitti.png'], {3})",
    "cli_demo_out_is_input": "refused(['demo', '--input', P('pair'), '--out', P('pair'), '--no-real'] + FARNEBACK, ['pair'], {3})",
    "cli_eval_out_inside_root": "refused(['eval', '--dataset', 'sintel', '--root', SINTEL, '--out', os.path.join(SINTEL, 'training', 'clean'), '--panels', '--quiet'] + FARNEBACK, [SINTEL], {3})",
    "cli_submit_out_inside_root": "refused(['submit', '--dataset', 'sintel', '--root', SINTEL, '--out', os.path.join(SINTEL, 'test'), '--quiet'] + FARNEBACK, [SINTEL], {3})",
    "cli_train_export_into_photos": "os.makedirs(P('photos'), exist_ok=True); shutil.copy(P('a.png'), P('photos/p.png'))\nrefused(['train', 'patchbatch', '--photos', P('photos'), '--export', P('photos/p.png'), '--steps', '1', '--out', P('pbrun')], ['photos'], {3})",
    # OS errors on output paths: one line, exit code 5
    "cli_flow_out_parent_is_file": "refused(['flow', P('a.png'), P('b.png'), '-o', P('a.png') + '/x.flo'] + FARNEBACK, ['a.png'], {5})",
    "cli_flow_out_is_directory": "refused(['flow', P('a.png'), P('b.png'), '-o', P('adir.flo')] + FARNEBACK, ['a.png'], {5})",
    "cli_flow_out_readonly_dir": "os.makedirs(P('ro'), exist_ok=True); os.chmod(P('ro'), 0o555)\nas_user(lambda: refused(['flow', P('a.png'), P('b.png'), '-o', P('ro/x.flo')] + FARNEBACK, ['a.png'], {5}))",
    "cli_compare_json_parent_is_file": "refused(['compare', P('pred.flo'), P('gt.flo'), '--json', P('gt.flo') + '/m.json'], ['gt.flo'], {5})",
    "cli_viz_out_parent_is_file": "refused(['viz', P('pred.flo'), '-o', P('pred.flo') + '/v.png'], ['pred.flo'], {5})",
    "cli_demo_out_is_file": "refused(['demo', '--out', P('a.png'), '--no-real', '--size', '64x48'] + FARNEBACK, ['a.png'], {5})",
    "cli_eval_out_is_file": "refused(['eval', '--dataset', 'sintel', '--root', SINTEL, '--out', P('a.png'), '--quiet'] + FARNEBACK, ['a.png'], {5})",
    "cli_train_out_is_file": "refused(['train', 'flownets', '--out', P('a.png'), '--steps', '1', '--data', 'synthetic:4', '--crop', '64', '64', '--batch-size', '1', '--workers', '0', '--no-progress'], ['a.png'], {1, 5})",
    # bad options and inputs: named errors, no crash
    "cli_farneback_winsize_1e9": "refused(['flow', P('a.png'), P('b.png'), '-o', P('o1.flo'), '--option', 'winsize=1000000000'] + FARNEBACK, ['a.png'], {1})",
    "cli_farneback_pyr_scale_0": "refused(['flow', P('a.png'), P('b.png'), '-o', P('o2.flo'), '--option', 'pyr_scale=0'] + FARNEBACK, ['a.png'], {1})",
    "cli_patchbatch_coef_kernel_1e39": "refused(['flow', P('a.png'), P('b.png'), '-o', P('o3.flo'), '--method', 'patchbatch-fast', '--option', 'coef_kernel=1e39'], ['a.png'], {1})",
    "cli_patchbatch_nn_2_31": "refused(['flow', P('a.png'), P('b.png'), '-o', P('o4.flo'), '--method', 'patchbatch-fast', '--option', 'nn=2147483648'], ['a.png'], {1})",
    "cli_flow_missing_input": "refused(['flow', P('nope.png'), P('b.png'), '-o', P('o5.flo')] + FARNEBACK, [], {1})",
    "cli_flow_huge_jpeg_input": "data = bytearray(open(P('a.png'), 'rb').read()); import cv2\nok, buf = cv2.imencode('.jpg', A); j = bytearray(buf.tobytes()); i = j.index(b'\\xff\\xc0'); j[i+5:i+9] = struct.pack('>HH', 30000, 30000)\nopen(P('big.jpg'), 'wb').write(bytes(j))\nrefused(['flow', P('big.jpg'), P('b.png'), '-o', P('o6.flo')] + FARNEBACK, ['big.jpg'], {1})",
    "cli_flow_unknown_method": "refused(['flow', P('a.png'), P('b.png'), '-o', P('o7.flo'), '--method', 'bogus'], [], {1})",
    "cli_train_lr_negative": "refused(['train', 'flownets', '--lr', '-1', '--out', P('run1')], [], {1, 2})",
    "cli_train_data_synthetic_abc": "refused(['train', 'flownets', '--data', 'synthetic:abc', '--out', P('run2')], [], {1, 2})",
    "cli_train_init_nan": "import torch\nfrom flowmatch.checkpoint import load_checkpoint, save_checkpoint\nfrom flowmatch._paths import shipped_weights\nc = load_checkpoint(shipped_weights('flownets')); m = {k: (v * float('nan') if v.is_floating_point() else v) for k, v in c.model.items()}\nsave_checkpoint(P('nan.safetensors'), c.kind, c.config, m)\nrefused(['train', 'flownets', '--init', P('nan.safetensors'), '--out', P('run3'), '--steps', '1', '--data', 'synthetic:4', '--crop', '64', '64', '--batch-size', '1', '--workers', '0', '--no-progress', '--width', str(c.config.get('width', 0.25))], ['nan.safetensors'], {1})",
    # the boundary itself
    "cli_internal_error_one_line": "from flowmatch.methods.registry import Method, register\nregister(Method(name='boom', run=lambda *a, **k: 1 / 0, description='raises'))\nrc, err = refused(['flow', P('a.png'), P('b.png'), '-o', P('o8.flo'), '--method', 'boom'], ['a.png'], {70})\nassert 'ZeroDivisionError' in err and '--debug' in err",
    "cli_debug_shows_traceback": "rc, out, err = cli(['--debug', 'flow', P('nope.png'), P('b.png'), '-o', P('o9.flo')])\nassert rc == 1 and 'Traceback' in err, err",
    "cli_debug_after_command": "rc, out, err = cli(['flow', P('nope.png'), P('b.png'), '-o', P('o10.flo'), '--debug'])\nassert rc == 1 and 'Traceback' in err, err",
    "cli_help_lists_exit_codes": "rc, out, err = cli(['--help'])\nassert rc == 0 and 'exit codes' in out.lower() and '70' in out and '3' in out, out",
    "cli_info_json_broken_pipe": "r = subprocess.run(f'{sys.executable} -m flowmatch info --json | head -c 20', shell=True, capture_output=True, text=True, timeout=120)\nassert r.stderr.strip() == '', r.stderr[-1500:]",
    "cli_flow_valid_still_works": "rc, out, err = cli(['flow', P('a.png'), P('b.png'), '-o', P('ok.flo')] + FARNEBACK)\nassert rc == 0 and os.path.isfile(P('ok.flo')), err",
}


@pytest.fixture(scope="module")
def outcomes():
    return run_cases(CASES, SETUP, case_timeout=120)


@pytest.mark.parametrize("name", sorted(CASES))
def test_hostile_cli(outcomes, name):
    check(name, outcomes[name])
