"""Global CLI options: --version, -q/-v through logging, --device checks, environment options, --help."""
from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import torch

import flowmatch
from flowmatch import _ext, io
from flowmatch._paths import PACKAGE_DIR, REPO_DIR
from flowmatch.cli import EXIT_CODES, build_parser, main
from flowmatch.commands._global_options import ENV_OPTIONS, global_values
from flowmatch.data.synthetic import generate_pair

HAS_CUDA = torch.cuda.is_available()


def cli(*argv: str, timeout: int = 900) -> subprocess.CompletedProcess:
    """`python -m flowmatch ARGV` as a user runs it (the machine may be loaded: generous timeout)."""
    env = {**os.environ, "PYTHONPATH": REPO_DIR}
    return subprocess.run([sys.executable, "-m", "flowmatch", *argv], capture_output=True, text=True,
                          env=env, cwd=REPO_DIR, timeout=timeout)


@pytest.fixture()
def pair(tmp_path):
    p = generate_pair(48, 64, 3)
    a, b = str(tmp_path / "a.png"), str(tmp_path / "b.png")
    io.write_image(a, p.img1)
    io.write_image(b, p.img2)
    return a, b


def test_version_names_flowmatch_torch_ops_and_cuda():
    res = cli("--version")
    assert res.returncode == 0, res.stderr
    line = res.stdout.strip()
    assert "\n" not in line
    assert line.startswith(f"flowmatch {flowmatch.__version__} ")
    assert f"torch {torch.__version__}" in line
    assert ("C++ ops built" in line) == _ext.available() and ("NOT built" in line) == (not _ext.available())
    assert ("CUDA available" in line) == HAS_CUDA and ("CUDA not available" in line) == (not HAS_CUDA)


def test_patchbatch_stage_lines_show_by_default_and_q_hides_them(pair, tmp_path):
    a, b = pair
    res = cli("flow", a, b, "-o", str(tmp_path / "f.flo"), "--method", "patchbatch-fast", "--option",
              "descriptor=raw")
    assert res.returncode == 0, res.stderr
    stages = re.findall(r"\[patchbatch-fast\] (\d)/(\d) (\w+) +([0-9.]+) s", res.stderr)
    assert [s[2] for s in stages] == ["descriptors", "patchmatch", "consistency", "interpolate", "refine"]
    assert [int(s[0]) for s in stages] == [1, 2, 3, 4, 5] and {s[1] for s in stages} == {"5"}
    total = float(re.search(r"\[patchbatch-fast\] total +([0-9.]+) s", res.stderr)[1])
    assert sum(float(s[3]) for s in stages) == pytest.approx(total, abs=0.06)  # 2-decimal rounding
    assert res.stdout == ""  # progress goes to stderr
    quiet = cli("-q", "flow", a, b, "-o", str(tmp_path / "g.flo"), "--method", "patchbatch-fast", "--option",
                "descriptor=raw")
    assert quiet.returncode == 0 and quiet.stdout == ""
    assert "[patchbatch-fast]" not in quiet.stderr and "wrote" not in quiet.stderr
    np.testing.assert_array_equal(io.read_flow(tmp_path / "f.flo")[0], io.read_flow(tmp_path / "g.flo")[0])


def test_q_and_v_work_before_and_after_the_command(pair, tmp_path, capsys):
    a, b = pair
    base = ["flow", a, b, "-o", str(tmp_path / "o.flo"), "--method", "farneback"]
    assert main(base) == 0
    assert "farneback on cpu: 64×48" in capsys.readouterr().err  # flow's default: progress shown
    for argv in (["-q"] + base, base + ["-q"], base + ["--quiet"]):
        assert main(argv) == 0
        assert capsys.readouterr().err == "", argv
    # -qq hides warnings too; a warning is shown with -q
    import logging
    log = logging.getLogger("flowmatch.test")
    from flowmatch import _logging
    for q, shown in ((1, True), (2, False)):
        undo = _logging.configure(_logging.level_for(0, q), prefix="flowmatch test")
        try:
            log.warning("look at this")
        finally:
            undo()
        assert ("flowmatch test: warning: look at this" in capsys.readouterr().err) == shown


def test_commands_own_quiet_is_the_global_quiet():
    p = build_parser()
    own = p.parse_args(["eval", "--dataset", "sintel", "--root", ".", "--method", "farneback", "--quiet"])
    top = p.parse_args(["-q", "eval", "--dataset", "sintel", "--root", ".", "--method", "farneback"])
    short = p.parse_args(["submit", "--dataset", "sintel", "--root", ".", "--out", "x", "--method", "farneback", "-q"])
    none = p.parse_args(["eval", "--dataset", "sintel", "--root", ".", "--method", "farneback"])
    assert [global_values(a)["quiet"] for a in (own, top, short, none)] == [1, 1, 1, 0]
    vv = p.parse_args(["-v", "flow", "a", "b", "-o", "x.flo", "-v"])
    assert global_values(vv)["verbose"] == 2
    from flowmatch.commands._global_options import apply
    train = p.parse_args(["train", "flownetc", "--out", "x", "-q"])  # -q also turns train's progress bar off
    assert train.progress is True
    apply(train, "flowmatch train")()
    assert train.quiet is True and train.progress is False


# Every command that takes --device, with arguments that would otherwise run it (outputs in OUT).
DEVICE_COMMANDS = {
    "flow": lambda d, t: ["flow", d["a"], d["b"], "-o", f"{t}/o.flo", "--method", "farneback"],
    "demo": lambda d, t: ["demo", "--out", f"{t}/demo", "--size", "64x48", "--no-real", "--method", "farneback"],
    "eval": lambda d, t: ["eval", "--dataset", "sintel", "--root", t, "--method", "farneback", "--out", f"{t}/ev"],
    "submit": lambda d, t: ["submit", "--dataset", "sintel", "--root", t, "--method", "farneback", "--out", f"{t}/s"],
    "video": lambda d, t: ["video", d["dir"], "--out", f"{t}/v", "--method", "farneback"],
    "bench": lambda d, t: ["bench", "--size", "64x48", "--runs", "1", "--methods", "farneback"],
    "train flownetc": lambda d, t: ["train", "flownetc", "--out", f"{t}/run", "--steps", "1"],
}


def _commands_with_device(parser, prefix=""):
    import argparse
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                full = f"{prefix}{name}"
                if "--device" in child._option_string_actions:
                    yield full
                yield from _commands_with_device(child, full + " ")


def test_every_command_with_device_is_checked_here():
    assert set(_commands_with_device(build_parser())) <= set(DEVICE_COMMANDS) | {"train flownets"}


@pytest.mark.skipif(HAS_CUDA, reason="checks the refusal on a machine without a GPU")
@pytest.mark.parametrize("command", sorted(DEVICE_COMMANDS))
def test_device_cuda_is_a_named_refusal_without_a_gpu(command, pair, tmp_path, capsys):
    a, _ = pair
    frames = tmp_path / "frames"
    frames.mkdir()
    d = {"a": a, "b": pair[1], "dir": str(frames)}
    before = sorted(os.listdir(tmp_path))
    for device in ("cuda", "cuda:0", "cuda:1"):
        assert main(DEVICE_COMMANDS[command](d, str(tmp_path)) + ["--device", device]) == 4, (command, device)
        err = capsys.readouterr().err
        assert f"--device '{device}'" in err and "use --device cpu" in err and err.count("\n") == 1
    for device in ("tpu", "cuda:x", "cpu:0", "cuda:-1"):
        assert main(DEVICE_COMMANDS[command](d, str(tmp_path)) + ["--device", device]) == 1, (command, device)
        assert "--device must be cpu, cuda or cuda:N" in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == before  # refused before anything was written


def test_device_cpu_spellings_run(pair, tmp_path):
    a, b = pair
    for device in ("cpu", "CPU"):
        assert main(["flow", a, b, "-o", str(tmp_path / "o.flo"), "--method", "farneback", "--device", device]) == 0


def test_environment_options_reach_the_library_and_are_put_back(pair, tmp_path, capsys):
    a, b = pair
    saved = {var: os.environ.get(var) for var, _, _ in ENV_OPTIONS.values()}
    # 64×48 = 3072 pixels: a limit of 100 refuses the frame where it is decoded
    assert main(["--max-image-pixels", "100", "flow", a, b, "-o", str(tmp_path / "o.flo"),
                 "--method", "farneback"]) == 1
    assert "more than the limit of 100" in capsys.readouterr().err
    empty = tmp_path / "no_weights"
    empty.mkdir()
    assert main(["flow", a, b, "-o", str(tmp_path / "o.flo"), "--method", "flownets",
                 "--weights-dir", str(empty)]) == 4  # after the command works too
    assert str(empty) in capsys.readouterr().err
    for argv, msg in ((["--weights-dir", str(tmp_path / "nope")], "is not a folder"),
                      (["--real-data", a], "is not a folder"),
                      (["--max-image-pixels", "0"], "positive integer")):
        assert main(argv + ["flow", a, b, "-o", str(tmp_path / "o.flo"), "--method", "farneback"]) == 1
        assert msg in capsys.readouterr().err
    assert {var: os.environ.get(var) for var in saved} == saved
    assert not os.path.exists(tmp_path / "o.flo")


def test_info_lists_which_methods_can_use_a_gpu_and_the_methods_agree(capsys):
    assert main(["info", "--json"]) == 0
    methods = json.loads(capsys.readouterr().out)["methods"]
    gpu = {n for n, m in methods.items() if "cuda" in m["devices"]}
    assert {"patchbatch-fast", "patchbatch-accurate", "flownets", "flownetc"} <= gpu
    assert {"farneback", "dis-fast", "deepflow"}.isdisjoint(gpu)
    if not HAS_CUDA:  # each listed capability is what the method itself says when asked for cuda
        a = np.zeros((32, 32, 3), np.uint8)
        for name in ("farneback", "dis-fast", "patchbatch-fast", "flownets"):
            if not methods[name]["available"]:
                continue
            with pytest.raises(flowmatch.errors.InputError) as exc:
                flowmatch.flow(a, a, method=name, device="cuda")
            assert ("CPU only" in str(exc.value)) == (name not in gpu), name
    assert main(["info"]) == 0
    text = capsys.readouterr().out
    listed = re.search(r"can use a GPU +(.*)", text)[1]
    assert all(n in listed for n in gpu) and "farneback" not in listed
    assert re.search(r"farneback +cpu only", text) and re.search(r"patchbatch-fast +cpu, cuda", text)


def test_help_tells_the_truth(capsys):
    def help_of(*argv):
        with pytest.raises(SystemExit) as exc:
            main([*argv, "--help"])
        assert exc.value.code == 0
        return " ".join(capsys.readouterr().out.split())

    top = help_of()
    for code, text in EXIT_CODES.items():
        assert f"{code} {' '.join(text.split())}" in top
    for option in ("--version", "-q, --quiet", "-v, --verbose", *ENV_OPTIONS):
        assert option in top
    flow = help_of("flow")
    assert "KITTI's 16-bit flow PNG -- DATA, NOT A PICTURE" in flow and "--viz" in flow and ".kitti.png" in flow
    assert "exit codes: 0 success" in flow
    for command in ("eval", "submit"):
        text = help_of(command)
        assert "flow method (required" in text and "best" not in text.split("--method METHOD", 2)[-1][:120]
        # and it is required in fact
        with pytest.raises(SystemExit) as exc:
            main([command, "--dataset", "sintel", "--root", ".", "--out", "x"])
        assert exc.value.code == 2 and "--method" in capsys.readouterr().err
    assert "default: the best one available here" in help_of("demo")


def test_library_modules_log_under_flowmatch_and_configure_nothing():
    """Library modules use logging.getLogger(__name__) (or a "flowmatch." name) and never add handlers,
    set levels or call basicConfig; only flowmatch/_logging.py configures."""
    bad = []
    for dirpath, _, files in os.walk(PACKAGE_DIR):
        for f in files:
            if not f.endswith(".py"):
                continue
            path = os.path.join(dirpath, f)
            rel = os.path.relpath(path, PACKAGE_DIR)
            if rel == "_logging.py":  # the one place that configures
                continue
            tree = ast.parse(open(path, encoding="utf-8").read())
            for node in ast.walk(tree):
                if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
                    continue
                name = node.func.attr
                if name == "getLogger" and node.args:
                    arg = node.args[0]
                    ok = (isinstance(arg, ast.Name) and arg.id == "__name__") or (
                        isinstance(arg, ast.Constant) and str(arg.value).startswith("flowmatch"))
                    if not ok:
                        bad.append(f"{rel}:{node.lineno} getLogger({ast.unparse(arg)})")
                if name in ("basicConfig", "addHandler", "dictConfig", "fileConfig"):
                    bad.append(f"{rel}:{node.lineno} {name}")
    assert not bad, bad
