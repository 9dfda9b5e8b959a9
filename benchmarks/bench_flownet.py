"""FlowNet benchmark: accuracy of the shipped small models and CPU speed of the full networks.

1. EPE (px) of the shipped FlowNetS / FlowNetC (README "Shipped weights") on held-out procedural pairs
   and on ../shared/data/real, next to zero flow (the baseline, ratio 1.00) and OpenCV DIS
   (medium) on the same pairs.
2. Forward time per frame pair (FlowEstimator end to end: normalise, pad to 64, network, ×4
   upsampling) at 384×512 and 1024×436 for the full-width FlowNetS and FlowNetC (random weights:
   speed does not depend on them), median of several runs, ratio against FlowNetS at the same size,
   and the peak resident memory of a process doing only that (and its rise over the loaded model).
3. bf16 against fp32 for the shipped FlowNetS / FlowNetC (FlowEstimator precision="bf16", i.e. the whole
   forward under torch.autocast("cpu", bfloat16); FlowNetC's correlation runs its bf16 kernel there) at
   512×384 and 1024×436: fp32 and bf16 time (median of interleaved runs), the bf16/fp32 time ratio, the
   max and mean |bf16 flow − fp32 flow| (px) on a real pair resized to that size (a random one without
   the real data), and the mean EPE (px) of both on the real pairs at their own size.  precision="auto"
   picks bf16 only on CPUs with AVX-512 BF16 or AMX (flowmatch.precision); this section says which.

    python benchmarks/bench_flownet.py [--pairs 8] [--runs 3] [--skip-speed] [--skip-accuracy]
                                       [--skip-precision] [--precision-runs 3]

Timings on a shared 2-core machine are noisy; compare the ratios more than the absolute numbers.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

import flowmatch
from flowmatch import io, metrics
from flowmatch._paths import real_data_dir
from flowmatch.data.datasets import SampleCases

ACC_METHODS = ("zero", "dis-medium", "flownets", "flownetc")


def run_method(name: str, img1: np.ndarray, img2: np.ndarray) -> np.ndarray:
    if name == "zero":
        return np.zeros(img1.shape[:2] + (2,), np.float32)
    return flowmatch.flow(img1, img2, method=name)


def real_cases() -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    root = real_data_dir()
    if root is None:
        return []
    return [(s.name, s.img1, s.img2, s.flow, s.valid) for s in SampleCases(root)]


def accuracy_table(title: str, cases, methods) -> None:
    print(f"\n## {title}: EPE in px (ratio vs zero flow)")
    print(f"{'case':44s}" + "".join(f"{m:>20s}" for m in methods))
    totals = {m: [] for m in methods}
    for name, a, b, gt, valid in cases:
        row = f"{name:44s}"
        zero = None
        for m in methods:
            try:
                e = metrics.epe(run_method(m, a, b), gt, valid)
            except flowmatch.errors.MethodUnavailableError as exc:
                row += f"{'n/a':>20s}"
                print(f"  ({m} unavailable: {exc})", file=sys.stderr)
                continue
            zero = e if m == "zero" else zero
            totals[m].append(e)
            row += f"{e:12.3f} ({e / zero:4.2f})" if zero else f"{e:20.3f}"
        print(row)
    z = np.mean(totals["zero"])
    print(f"{'mean':44s}" + "".join(f"{np.mean(v):12.3f} ({np.mean(v) / z:4.2f})" if v else f"{'n/a':>20s}"
                                    for v in totals.values()))


SPEED_CHILD = r"""
import json, os, statistics, sys, threading, time
import numpy as np, torch
from flowmatch.estimator import FlowEstimator
from flowmatch.models import build_model
kind, h, w, runs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
page = os.sysconf("SC_PAGE_SIZE")
def rss():
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * page / 2**20
torch.manual_seed(0)
est = FlowEstimator(build_model(kind))
rng = np.random.default_rng(0)
a = rng.integers(0, 256, (h, w, 3), dtype=np.uint8); b = np.roll(a, 3, axis=1)
base = rss()  # model + torch loaded, before any forward
peak = [base]; stop = threading.Event()
def sample():  # RSS high-water mark during the forwards (5 ms sampling)
    while not stop.is_set():
        peak[0] = max(peak[0], rss()); time.sleep(0.005)
th = threading.Thread(target=sample); th.start()
est(a, b)  # warm-up
times = []
for _ in range(runs):
    t = time.perf_counter(); est(a, b); times.append(time.perf_counter() - t)
stop.set(); th.join()
print(json.dumps({"median": statistics.median(times), "peak_mib": peak[0], "base_mib": base}))
"""


def speed_table(runs: int) -> None:
    import torch

    print(f"\n## Forward time per pair on CPU ({torch.get_num_threads()} threads; full-width networks, "
          f"FlowEstimator end to end), median of {runs} runs after a warm-up")
    print(f"{'size':>10s} {'model':>9s} {'median s':>9s} {'vs S':>6s} {'peak RSS MiB':>13s} {'forward +MiB':>13s}")
    for h, w in ((384, 512), (436, 1024)):
        base = None
        for kind in ("flownets", "flownetc"):
            out = subprocess.run([sys.executable, "-c", SPEED_CHILD, kind, str(h), str(w), str(runs)],
                                 capture_output=True, text=True)
            if out.returncode != 0:
                print(f"{w}x{h:<5d} {kind:>9s}  failed: {out.stderr.strip().splitlines()[-1:]}")
                continue
            r = json.loads(out.stdout.strip().splitlines()[-1])
            base = r["median"] if kind == "flownets" else base
            ratio = r["median"] / base if base else float("nan")
            print(f"{w:>5d}x{h:<4d} {kind:>9s} {r['median']:9.3f} {ratio:6.2f} {r['peak_mib']:13.0f} {r['peak_mib'] - r['base_mib']:13.0f}")


def _precision_frames(h: int, w: int, real) -> tuple[np.ndarray, np.ndarray, str]:
    """A real pair resized to w×h (uint8), or a random textured pair with a 3 px shift without the data."""
    if real:
        import cv2

        _, a, b, _, _ = real[0]
        return (cv2.resize(np.asarray(a), (w, h), interpolation=cv2.INTER_AREA),
                cv2.resize(np.asarray(b), (w, h), interpolation=cv2.INTER_AREA), real[0][0])
    a = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
    return a, np.roll(a, 3, axis=1), "random, shifted 3 px"


def precision_table(runs: int, sizes=((384, 512), (436, 1024))) -> None:
    """bf16 vs fp32 of the shipped FlowNets: time, ratio, deviation of the flow, EPE on the real pairs."""
    import torch

    from flowmatch.estimator import FlowEstimator
    from flowmatch.precision import cpu_has_fast_bf16, resolve_precision

    real = real_cases()
    native = cpu_has_fast_bf16()
    print(f"\n## bf16 vs fp32, shipped FlowNetS/FlowNetC (width 0.25), FlowEstimator end to end, "
          f"{torch.get_num_threads()} threads, median of {runs} interleaved runs after a warm-up")
    print(f"(this CPU {'has' if native else 'lacks'} native bf16 (AVX-512 BF16 / AMX): precision='auto' -> "
          f"{resolve_precision('auto', 'cpu')!r})")
    print(f"{'size':>10s} {'model':>9s} {'fp32 s':>8s} {'bf16 s':>8s} {'bf16/fp32':>10s} "
          f"{'max dev px':>11s} {'mean dev px':>12s}  frames")
    for h, w in sizes:
        a, b, src = _precision_frames(h, w, real)
        for kind in ("flownets", "flownetc"):
            est = {p: FlowEstimator.from_pretrained(kind, precision=p) for p in ("fp32", "bf16")}
            flows = {p: e(a, b) for p, e in est.items()}  # also the warm-up
            times = {p: [] for p in est}
            for _ in range(runs):
                for p, e in est.items():
                    times[p].append(timed_call(lambda: e(a, b)))
            t32, t16 = statistics.median(times["fp32"]), statistics.median(times["bf16"])
            dev = np.abs(flows["bf16"] - flows["fp32"])
            print(f"{w:>5d}x{h:<4d} {kind:>9s} {t32:8.3f} {t16:8.3f} {t16 / t32:10.2f} {dev.max():11.3f} "
                  f"{dev.mean():12.4f}  {src}")
    if not real:
        print("(real data ../shared/data/real not present: no EPE rows)")
        return
    print(f"\nEPE (px) on the {len(real)} real pairs at their own size, mean over pairs:")
    for kind in ("flownets", "flownetc"):
        est = {p: FlowEstimator.from_pretrained(kind, precision=p) for p in ("fp32", "bf16")}
        epe = {p: float(np.mean([metrics.epe(e(a, b), gt, valid) for _, a, b, gt, valid in real]))
               for p, e in est.items()}
        print(f"  {kind:>9s}  fp32 {epe['fp32']:.4f}  bf16 {epe['bf16']:.4f}  change {epe['bf16'] - epe['fp32']:+.4f}")


def timed_call(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=8, help="held-out synthetic pairs")
    ap.add_argument("--runs", type=int, default=3, help="timed runs per speed setting")
    ap.add_argument("--skip-speed", action="store_true")
    ap.add_argument("--skip-accuracy", action="store_true")
    ap.add_argument("--skip-precision", action="store_true", help="no bf16 vs fp32 section")
    ap.add_argument("--precision-runs", type=int, default=3, help="timed runs per precision setting")
    args = ap.parse_args()
    t0 = time.time()
    if not args.skip_accuracy:
        from flowmatch.train.flownet import heldout_pairs

        # the two training settings: FlowNetS 256×192 up to 40 px, FlowNetC 192×128 up to 30 px
        for h, w, motion in ((192, 256, 40.0), (128, 192, 30.0)):
            syn = [(f"synthetic #{k} {w}x{h}", p.img1, p.img2, p.flow, p.valid)
                   for k, p in enumerate(heldout_pairs(args.pairs, h, w, seed=2024, max_motion=motion,
                                                       noise=2.0, illumination=0.1))]
            accuracy_table(f"held-out synthetic pairs {w}x{h}, motion up to {motion:.0f} px (never seen in training)",
                           syn, ACC_METHODS)
        real = real_cases()
        if real:
            accuracy_table("real pairs (../shared/data/real)", real, ACC_METHODS)
        else:
            print("\n(real data ../shared/data/real not present: skipped)")
    if not args.skip_speed:
        speed_table(args.runs)
    if not args.skip_precision:
        precision_table(args.precision_runs)
    print(f"\n(total {time.time() - t0:.0f} s; shared machine, timings noisy)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
