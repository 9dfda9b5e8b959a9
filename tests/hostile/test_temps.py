"""Per-writer temporaries: unique names, removed only by their owner or when provably stale
(resume cleans what a killed checkpoint save left); outputs over inputs refused at the API level."""
import pytest

from _cases import check
from _runner import run_cases

SETUP = r"""
import os, subprocess, sys, tempfile
import torch
from flowmatch import _atomic
from flowmatch._atomic import atomic_path
from flowmatch._outputs import check_outputs, folder
from flowmatch.train import common
T = tempfile.mkdtemp(prefix="hostile_temps_")
def dead_pid():
    p = subprocess.Popen([sys.executable, "-c", "pass"]); p.wait()
    return p.pid
def killed_save(folder):
    # a child starts a checkpoint save and dies inside it (os._exit: no cleanup, as after SIGKILL)
    code = ("import os, sys; from flowmatch._atomic import atomic_path\n"
            "with atomic_path(os.path.join(sys.argv[1], 'step_00000010.safetensors')) as tmp:\n"
            "    open(tmp, 'wb').write(b'partial'); os._exit(9)")
    subprocess.run([sys.executable, "-c", code, folder], env={**os.environ, "PYTHONPATH": os.getcwd()})
"""

CASES = {
    "ok_temps_unique_per_writer": "target = os.path.join(T, 'a.flo')\nwith atomic_path(target) as t1:\n    with atomic_path(target) as t2:\n        assert t1 != t2 and os.path.exists(t1) and os.path.exists(t2)\n        open(t2, 'w').write('2')\n    assert os.path.exists(t1), 'the second writer removed the first one\\'s temporary'\n    open(t1, 'w').write('1')\nassert open(target).read() == '1'",
    "ok_failed_write_leaves_old_file": "target = os.path.join(T, 'b.flo'); open(target, 'w').write('old')\ntry:\n    with atomic_path(target) as t:\n        open(t, 'w').write('half'); raise KeyboardInterrupt\nexcept KeyboardInterrupt:\n    pass\nassert open(target).read() == 'old' and [n for n in os.listdir(T) if n.startswith('.b.')] == []",
    "ok_resume_cleans_killed_save": "run = os.path.join(T, 'run1'); os.makedirs(run)\nkilled_save(run)\nleft = [n for n in os.listdir(run) if '.tmp' in n]\nassert len(left) == 1, left\nassert common.latest_checkpoint(run) is None\nassert [n for n in os.listdir(run) if '.tmp' in n] == [], os.listdir(run)",
    "ok_live_and_foreign_temps_kept": "run = os.path.join(T, 'run2'); os.makedirs(run)\nhost = _atomic.host_tag()\nlive = f'.step_00000001.{host}.{os.getppid()}.0123abcd.tmp.safetensors'\nforeign = f'.step_00000001.otherhost.{dead_pid()}.0123abcd.tmp.safetensors'\nstale = f'.step_00000001.{host}.{dead_pid()}.0123abcd.tmp.safetensors'\nfor n in (live, foreign, stale):\n    open(os.path.join(run, n), 'w').close()\ncommon.latest_checkpoint(run)\nassert sorted(os.listdir(run)) == sorted([live, foreign]), os.listdir(run)",
    "api_output_is_input_hardlink": "a = os.path.join(T, 'in.png'); open(a, 'w').write('x'); os.link(a, os.path.join(T, 'in_link.png'))\ncheck_outputs({'-o': os.path.join(T, 'in_link.png')}, {'IMG1': a})",
    "api_output_inside_input_folder": "d = os.path.join(T, 'frames'); os.makedirs(d, exist_ok=True)\ncheck_outputs({'--out': folder(os.path.join(d, 'sub', 'x'))}, {'INPUT': folder(d)})",
    "api_output_symlinked_folder": "d = os.path.join(T, 'frames2'); os.makedirs(d, exist_ok=True); os.symlink(d, os.path.join(T, 'alias'))\ncheck_outputs({'--out': folder(os.path.join(T, 'alias'))}, {'INPUT': folder(d)})",
    "api_two_outputs_same": "check_outputs({'-o': os.path.join(T, 'x.png'), '--viz': os.path.join(T, '.', 'x.png')}, {})",
    "ok_distinct_outputs_pass": "check_outputs({'-o': os.path.join(T, 'y.flo'), '--viz': os.path.join(T, 'y.png')}, {'IMG1': os.path.join(T, 'in.png')})",
}


@pytest.fixture(scope="module")
def outcomes():
    return run_cases(CASES, SETUP, case_timeout=60)


@pytest.mark.parametrize("name", sorted(CASES))
def test_hostile_temp(outcomes, name):
    check(name, outcomes[name])
