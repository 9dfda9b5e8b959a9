"""Multi-process runs for tests: `torchrun` as a user types it, and the same process group started by
hand, which gives each rank's own exit code and stderr (torchrun reports only the first failure and
stops the other ranks)."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

from flowmatch._paths import REPO_DIR

# one thread per rank: the ranks share this machine's cores
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": REPO_DIR}


def torchrun(args: list[str], n: int = 2, timeout: float = 300) -> subprocess.CompletedProcess:
    """`torchrun --standalone --nproc_per_node n -m flowmatch ARGS` (raises TimeoutExpired on a hang)."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(n),
           "-m", "flowmatch", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=ENV, cwd=REPO_DIR, timeout=timeout)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ranks(argv: list[str], n: int = 2, timeout: float = 120) -> list[subprocess.CompletedProcess]:
    """Run `python ARGV` as ranks 0..n-1 of one process group (the variables torchrun sets, env://
    rendezvous on a free local port); each rank's result, in rank order.  A rank still running after
    `timeout` seconds (a hang) is killed, with every other, and raises TimeoutExpired."""
    port = _free_port()
    procs = []
    for r in range(n):
        env = {**ENV, "RANK": str(r), "LOCAL_RANK": str(r), "WORLD_SIZE": str(n), "LOCAL_WORLD_SIZE": str(n),
               "GROUP_RANK": "0", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
        procs.append(subprocess.Popen([sys.executable, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True, env=env, cwd=REPO_DIR))
    results, deadline = [], time.monotonic() + timeout
    try:
        for p in procs:
            out, err = p.communicate(timeout=max(deadline - time.monotonic(), 0.1))
            results.append(subprocess.CompletedProcess(p.args, p.returncode, out, err))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    return results
