"""fp32 CPU correlation backward (and forward) of several built flowmatch trees, back to back.

For telling a code regression from a machine or load change: each tree (a checkout or worktree with
its own built flowmatch/_C*.so) is timed in its own interpreter, alternating trees for --rounds rounds,
at FlowNetC's shape (N=1, C=256, 48×64, pad 20, k 1, d 20, s1 1, s2 2).  Per run: median and min wall
time and median and min process CPU time of --reps calls (CPU time is the steadier number on a loaded
machine; with 1 thread it is the work itself).

    python benchmarks/compare_correlation_builds.py OLD_TREE NEW_TREE [--threads 1 2] [--reps 12] [--rounds 3]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = r"""
import json, statistics, sys, time
sys.path.insert(0, sys.argv[1])
import torch
torch.set_num_threads(int(sys.argv[3]))
import flowmatch, flowmatch.ops
assert flowmatch.__file__.startswith(sys.argv[1]), flowmatch.__file__
from flowmatch.ops import correlation
args = (20, 1, 20, 1, 2)
g = torch.Generator().manual_seed(1)
f1, f2 = torch.randn(1, 256, 48, 64, generator=g), torch.randn(1, 256, 48, 64, generator=g)
grad = torch.randn(correlation(f1, f2, *args).shape, generator=g)
calls = {"bwd": lambda: torch.ops.flowmatch.correlation_backward(grad, f1, f2, *args),
         "fwd": lambda: correlation(f1, f2, *args)}
res = {}
for name, fn in calls.items():
    fn()
    wall, cpu = [], []
    for _ in range(int(sys.argv[2])):
        t, c = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t); cpu.append(time.process_time() - c)
    res[name] = [1e3 * statistics.median(wall), 1e3 * min(wall), 1e3 * statistics.median(cpu), 1e3 * min(cpu)]
print(json.dumps(res))
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("trees", nargs="+", help="checkouts with a built flowmatch/_C*.so")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--reps", type=int, default=12)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    print(f"{'tree':<28} {'thr':>3} {'pass':>4} {'wall med':>9} {'wall min':>9} {'cpu med':>8} {'cpu min':>8}  (ms)")
    for threads in args.threads:
        for rnd in range(args.rounds):
            for tree in args.trees:
                out = subprocess.run([sys.executable, "-c", CHILD, tree, str(args.reps), str(threads)],
                                     capture_output=True, text=True)
                if out.returncode != 0:
                    print(f"{tree:<28} failed: {out.stderr.strip().splitlines()[-1:]}")
                    continue
                res = json.loads(out.stdout.strip().splitlines()[-1])
                for name, (wmed, wmin, cmed, cmin) in res.items():
                    print(f"{tree[-28:]:<28} {threads:>3} {name:>4} {wmed:9.1f} {wmin:9.1f} {cmed:8.1f} {cmin:8.1f}"
                          f"  round {rnd + 1}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
