"""Run hostile-input cases in a child process with a memory limit and per-case timeouts.

A case is a snippet of Python.  The child runs the shared `setup` once, then each snippet in turn
and reports, as one JSON line per case, whether it returned or which exception it raised (with the
exception's class hierarchy).  A native crash (SIGSEGV, abort) or a case that runs past its timeout
kills only that child: the case is recorded as "crash" or "hang" and a fresh child runs the rest.  So
a crash or a hang is one failed case, never a dead test run; a blow-up hits RLIMIT_AS and shows as
MemoryError (a foreign exception, so also a failed case).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

_REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# FLOWMATCH_HOSTILE_ROOT runs the cases against another copy of the package (e.g. a snapshot of
# the code before a fix); tests/ (layouts) always come from this checkout.
ROOT = os.environ.get("FLOWMATCH_HOSTILE_ROOT", _REPO)
MEM_LIMIT = 3 << 30  # bytes of address space for the child

_CHILD = r"""
import json, resource, sys, traceback
limit = int(sys.argv[2])
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
spec = json.load(open(sys.argv[1]))
out = sys.stdout
def emit(rec):
    out.write(json.dumps(rec) + "\n"); out.flush()
ns = {"__name__": "__hostile__"}
try:
    exec(compile(spec["setup"], "<setup>", "exec"), ns)
except BaseException as exc:
    emit({"setup_error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc()[-3000:]})
    sys.exit(3)
emit({"ready": True})
for name in spec["names"]:
    emit({"start": name})
    local = dict(ns)
    rec = {"name": name}
    try:
        exec(compile(spec["cases"][name], f"<case {name}>", "exec"), local)
        rec["outcome"] = "ok"
        rec["result"] = repr(local.get("result"))[:300]
    except BaseException as exc:
        rec["outcome"] = "raised"
        rec["type"] = type(exc).__name__
        rec["mro"] = [c.__name__ for c in type(exc).__mro__]
        rec["msg"] = str(exc)[:500]
        rec["trace"] = traceback.format_exc()[-1500:]
    emit(rec)
"""


@dataclass
class Outcome:
    name: str
    outcome: str            # "ok", "raised", "crash", "hang"
    type: str = ""
    mro: tuple = ()
    msg: str = ""
    result: str = ""
    trace: str = ""

    @property
    def named_error(self) -> bool:
        return self.outcome == "raised" and "FlowmatchError" in self.mro

    def describe(self) -> str:
        if self.outcome == "raised":
            return f"{self.name}: raised {self.type}: {self.msg}\n{self.trace}"
        return f"{self.name}: {self.outcome} {self.type} {self.msg} {self.result}"


def run_cases(cases: dict[str, str], setup: str = "", case_timeout: float = 60.0,
              mem_limit: int = MEM_LIMIT, env: dict[str, str] | None = None) -> dict[str, Outcome]:
    """Outcome of every case (name -> code), run in as few child processes as crashes allow."""
    results: dict[str, Outcome] = {}
    todo = list(cases)
    child_env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
                 "OMP_NUM_THREADS": "1", **(env or {})}
    while todo:
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
            json.dump({"setup": setup, "cases": cases, "names": todo}, fh)
            spec = fh.name
        try:
            _run_child(spec, todo, results, case_timeout, mem_limit, child_env)
        finally:
            os.unlink(spec)
        todo = [n for n in todo if n not in results]
    return results


def _run_child(spec: str, todo: list[str], results: dict[str, Outcome], case_timeout: float,
               mem_limit: int, env: dict[str, str]) -> None:
    import selectors

    proc = subprocess.Popen([sys.executable, "-c", _CHILD, spec, str(mem_limit)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env, cwd=ROOT, text=True)
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    current, deadline = None, time.monotonic() + 120  # the setup (imports) gets two minutes
    try:
        while True:
            if not sel.select(timeout=max(0.0, deadline - time.monotonic())):
                proc.kill()
                proc.wait()
                name = current or todo[0]
                results[name] = Outcome(name, "hang", msg=f"still running after {case_timeout:.0f} s")
                return
            line = proc.stdout.readline()
            if not line:  # the child died (or finished)
                rc = proc.wait()
                if current is not None:
                    err = proc.stderr.read()[-800:]
                    results[current] = Outcome(current, "crash", type=f"exit code {rc}", msg=err)
                elif not all(n in results for n in todo):
                    raise RuntimeError(f"hostile runner child failed before the cases (rc {rc}): "
                                       f"{proc.stderr.read()[-3000:]}")
                return
            rec = json.loads(line)
            if "setup_error" in rec:
                raise RuntimeError(f"setup of the hostile cases failed: {rec['setup_error']}\n{rec['trace']}")
            if "start" in rec:
                current, deadline = rec["start"], time.monotonic() + case_timeout
            elif "name" in rec:
                results[rec["name"]] = Outcome(rec["name"], rec["outcome"], rec.get("type", ""),
                                               tuple(rec.get("mro", ())), rec.get("msg", ""),
                                               rec.get("result", ""), rec.get("trace", ""))
                current = None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
