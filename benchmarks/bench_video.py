"""`flowmatch video` throughput against the method's own speed, side by side in one run (issue 16).

Target: the video's frames/s (decode | flow | write overlapped) is at least 90 % of the method's own
pairs/s (flow calls on frames already in memory, nothing written).

    .venv/bin/python benchmarks/bench_video.py [--runs 3] [--sizes 640x360,1024x436] [--methods dis-medium,...]
    .venv/bin/python benchmarks/bench_video.py --no-viz          # skip the column with the --viz video

For each size and method, a procedural H.264 clip (write_test_video) of P+1 frames is written once
(P from one timed pair: about 4 s of flow, 2 to 120 pairs);
each run then measures, back to back so that both see the same machine load:
  pairs/s  P flow calls on the clip's frames, decoded beforehand, one after another (the method alone);
  W at once  for methods that `flowmatch video` runs W pairs at a time (Method.video_workers: OpenCV's),
           the same P calls from W threads, nothing decoded or written: the ceiling of that design;
  video    video_flow(clip, fresh folder): wall time of the whole call (ffmpeg start, settings
           record, decoding, flow, .flo writes with fsync) -> P / seconds;
  +viz     the same with the side-by-side visualisation video encoded as well.
Medians over --runs; one warm-up flow call per method and size first (weights, caches).  The 1-min
load average is printed before and after: on a shared machine every column moves with it, the
ratio of columns from one run much less.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import flowmatch  # noqa: E402
from flowmatch.methods.registry import get_method  # noqa: E402
from flowmatch.video import frame_source, video_flow, write_test_video  # noqa: E402
from flowmatch.video.run import default_workers  # noqa: E402

TARGET_S = 4.0     # seconds of flow per measurement: the clip has ~TARGET_S × pairs/s pairs ...
MIN_PAIRS, MAX_PAIRS = 2, 120   # ... within these bounds (the slow methods get 2)
VIZ_BELOW_S = 1.0  # the +viz column only for methods faster than this per pair (it costs a third pass)
DEFAULT_METHODS = "dis-fast,dis-medium,deepflow,patchbatch-fast,patchbatch-accurate,flownetc"


def method_pairs_per_s(frames: list, method: str) -> float:
    t0 = time.perf_counter()
    for a, b in zip(frames[:-1], frames[1:]):
        flowmatch.flow(a, b, method=method)
    return (len(frames) - 1) / (time.perf_counter() - t0)


def method_pairs_per_s_at_once(frames: list, method: str, workers: int) -> float:
    from concurrent.futures import ThreadPoolExecutor
    pairs = list(zip(frames[:-1], frames[1:]))
    t0 = time.perf_counter()
    with ThreadPoolExecutor(workers) as ex:
        list(ex.map(lambda p: flowmatch.flow(p[0], p[1], method=method), pairs))
    return len(pairs) / (time.perf_counter() - t0)


def video_frames_per_s(clip: str, method: str, work: str, viz: bool) -> float:
    out = tempfile.mkdtemp(dir=work)
    t0 = time.perf_counter()
    s = video_flow(clip, out, method, viz=os.path.join(out, "viz.mp4") if viz else None, progress=False)
    return s.pairs / (time.perf_counter() - t0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--sizes", default="640x360,1024x436")
    ap.add_argument("--methods", default=DEFAULT_METHODS)
    ap.add_argument("--pairs-scale", type=float, default=1.0, help="multiply the pairs per clip (longer, steadier)")
    ap.add_argument("--no-viz", action="store_true")
    args = ap.parse_args()
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    methods = [m for m in args.methods.split(",") if m]
    load0 = os.getloadavg()[0]
    import torch
    print(f"bench_video: {args.runs} runs, torch threads {torch.get_num_threads()}, {os.cpu_count()} CPUs, "
          f"load average (1 min) {load0:.1f} at the start", flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as work:
        for w, h in sizes:
            for method in methods:
                reason = get_method(method).unavailable_reason()
                if reason:
                    print(f"  {method}: not available here ({reason})", flush=True)
                    continue
                probe = os.path.join(work, f"probe_{w}x{h}.mp4")
                if not os.path.exists(probe):
                    write_test_video(probe, frames=3, height=h, width=w, motion=(2.0, 1.0), seed=1)
                _, it = frame_source(probe)
                first = list(it)
                flowmatch.flow(first[0], first[1], method=method)  # warm-up (weights, caches)
                t0 = time.perf_counter()
                flowmatch.flow(first[1], first[2], method=method)
                per_pair = time.perf_counter() - t0
                n = int(min(MAX_PAIRS, max(MIN_PAIRS, round(TARGET_S / per_pair * args.pairs_scale))))
                clip = os.path.join(work, f"{method}_{w}x{h}.mp4")
                write_test_video(clip, frames=n + 1, height=h, width=w, motion=(2.0, 1.0), seed=1)
                _, it = frame_source(clip)
                frames = list(it)
                viz = not args.no_viz and per_pair < VIZ_BELOW_S
                workers = default_workers(method)
                cols: dict[str, list[float]] = {"pairs": [], "at_once": [], "video": [], "viz": []}
                for _ in range(args.runs):
                    cols["pairs"].append(method_pairs_per_s(frames, method))
                    if workers > 1:
                        cols["at_once"].append(method_pairs_per_s_at_once(frames, method, workers))
                    cols["video"].append(video_frames_per_s(clip, method, work, viz=False))
                    if viz:
                        cols["viz"].append(video_frames_per_s(clip, method, work, viz=True))
                med = {k: statistics.median(v) if v else float("nan") for k, v in cols.items()}
                rows.append((f"{w}×{h}", method, n, workers, med))
                print(f"  {w}×{h} {method:20s} pairs/s {med['pairs']:7.2f}  {workers} at once {med['at_once']:7.2f}  video {med['video']:7.2f} "
                      f"({med['video'] / med['pairs']:.0%})  +viz {med['viz']:7.2f} "
                      f"({med['viz'] / med['pairs']:.0%})   runs: " +
                      " | ".join(f"{a:.2f}/{b:.2f}" for a, b in zip(cols['pairs'], cols['video'])), flush=True)
    load1 = os.getloadavg()[0]
    print(f"\nload average (1 min): {load0:.1f} at the start, {load1:.1f} at the end ({os.cpu_count()} CPUs)\n")
    print("| size | method | pairs | method pairs/s | pairs at once: pairs/s | video frames/s | video / method "
          "| video + viz frames/s | + viz / method |")
    print("|---|---|---|---|---|---|---|---|---|")
    for size, method, n, workers, m in rows:
        viz = "— | —" if m["viz"] != m["viz"] else f"{m['viz']:.2f} | {m['viz'] / m['pairs']:.0%}"
        once = "1 (video runs one pair at a time)" if workers == 1 else f"{workers}: {m['at_once']:.2f}"
        print(f"| {size} | {method} | {n} | {m['pairs']:.2f} | {once} | {m['video']:.2f} | "
              f"{m['video'] / m['pairs']:.0%} | {viz} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
