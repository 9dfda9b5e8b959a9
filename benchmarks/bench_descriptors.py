"""Dense PatchBatch descriptors: speed, memory and matching quality.

    .venv/bin/python benchmarks/bench_descriptors.py [--runs 3] [--threads 2] [--skip-speed] [--skip-quality]

Speed (1024×436, every pixel; medians of --runs runs, all in this process):
  * dense:      flowmatch.descriptors (space-to-batch, channels_last oneDNN convs, BN folded), tile 256;
  * bf16:       the same with precision="bf16" (bfloat16 operands, fp32 accumulation in oneDNN);
  * dilated:    the same network as plain NCHW convolutions with stride-1 pools and growing
                dilation (1, 2, 4, 8, 16), tiled the same way (the formulation the brief calls ~11 s);
  * per-patch:  the network's forward on one 62×62 patch per pixel, timed on a crop of --crop pixels
                and scaled by pixel count.
  for the paper-width network (512-D, random weights) and the shipped network.
Memory: peak RSS of a child process that extracts the full image at tile 64 / 128 / 256 / 512.
Quality: FPR95 (negatives 1-8 px from the true match) and the hardest-negative share (top1) on the
held-out triplets of flowmatch.train.patchbatch (synthetic pairs from unseen seeds, held-out real
cases): shipped dense and paper networks vs per-patch-normalised raw 51×51 pixels vs OpenCV SIFT
(upright, computed at the given keypoints on the full frames, several keypoint sizes).
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
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from flowmatch.pipelines.patchbatch import network as dd  # noqa: E402
from flowmatch.models.patchbatch import LEAK, PatchBatchNet, fused_layers  # noqa: E402

H, W = 436, 1024


def test_image() -> np.ndarray:
    from flowmatch._paths import real_data_dir

    root = real_data_dir()
    if root:
        from flowmatch.io import read_image

        path = os.path.join(root, "sintel", "alley_1_clean_0002", "img1.png")
        if os.path.isfile(path):
            return read_image(path)
    return np.random.default_rng(0).integers(0, 256, (H, W, 3)).astype(np.uint8)


CPU_TIMES: list[float] = []  # process CPU seconds (all threads) of the last median_time's runs


def median_time(fn, runs: int) -> float:
    """Median wall-clock seconds of `runs` calls; their process CPU seconds go to CPU_TIMES."""
    ts = []
    CPU_TIMES.clear()
    for _ in range(runs):
        c = time.process_time()
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
        CPU_TIMES.append(time.process_time() - c)
    return statistics.median(ts)


@torch.no_grad()
def dilated_baseline(img: np.ndarray, net: PatchBatchNet, tile: int = 256) -> torch.Tensor:
    """Every pixel with plain dilated convolutions (NCHW): pools at stride 1, dilation doubling."""
    gray = dd.prepare_image(img)
    h, w = gray.shape
    x_all = F.pad(gray[None, None], (30, 31, 30, 31), mode="reflect")
    layers = fused_layers(net)
    out = torch.empty(h, w, net.dim)
    for r0 in range(0, h, tile):
        for c0 in range(0, w, tile):
            rh, cw = min(tile, h - r0), min(tile, w - c0)
            x = x_all[:, :, r0:r0 + rh + 61, c0:c0 + cw + 61]
            dil = 1
            for i, (wt, bs) in enumerate(layers):
                x = F.leaky_relu(F.conv2d(x, wt, bs, dilation=dil), LEAK)
                if i < 4:
                    x = F.max_pool2d(x, 2, 1, dilation=dil)
                    dil *= 2
            out[r0:r0 + rh, c0:c0 + cw] = x[0].permute(1, 2, 0)
    return out


@torch.no_grad()
def per_patch_rate(img: np.ndarray, net: PatchBatchNet, crop: int, runs: int) -> float:
    """Seconds per pixel of the per-patch path (timed on a crop of `crop` pixels)."""
    side = int(np.sqrt(crop))
    patch_img = img[100:100 + side + 62, 300:300 + side + 62]
    t = median_time(lambda: dd.descriptors(patch_img, net, mode="patch", chunk=256)[:side, :side], runs)
    return t / patch_img.shape[0] / patch_img.shape[1]


def child_rss(tile: int, width: float) -> dict:
    """Run one full-image extraction in a fresh process; return its peak RSS (VmHWM, MiB: ru_maxrss
    would carry the parent's peak over fork/exec) before and after, and the time."""
    code = (f"import resource,time,torch,numpy as np,sys; sys.path.insert(0,{os.getcwd()!r});"
            f"torch.set_num_threads({torch.get_num_threads()});"
            "from benchmarks.bench_descriptors import test_image; from flowmatch.pipelines.patchbatch import network as dd;"
            f"from flowmatch.models.patchbatch import PatchBatchNet; net=PatchBatchNet('dense',width={width}).eval();"
            "hwm=lambda: int([l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1])/1024;"
            "img=test_image(); base=hwm();"
            f"t=time.perf_counter(); d=dd.descriptors(img,net,tile={tile},half=True); t=time.perf_counter()-t;"
            "print(base, hwm(), t, d.numel()*2/2**20)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    base, peak, t, outmib = map(float, out.stdout.split())
    return {"base": base, "peak": peak, "time": t, "output": outmib}


def speed(args: argparse.Namespace) -> None:
    img = test_image()
    nets = {"512-D (paper width, random)": PatchBatchNet("dense", width=1.0).eval()}
    try:
        shipped = dd.load_descriptor_model()
        nets[f"shipped ({shipped.dim}-D, width {shipped.width})"] = shipped
    except Exception as exc:  # no shipped weights: only the full-width row
        print(f"(no shipped weights: {exc})")
    print(f"\n== speed, {W}×{H}, every pixel, torch threads {torch.get_num_threads()}, medians of {args.runs} runs")
    print("(cpu s = process CPU seconds of the dense call over both threads: on an idle 2-core machine the wall")
    print(" time would be about cpu/2; wall times here are stretched by the other jobs)")
    print(f"{'network':34s} {'dense s':>8s} {'cpu s':>6s} {'bf16 s':>7s} {'cpu s':>6s} {'dilated s':>9s} {'cpu s':>6s} "
          f"{'per-patch s':>11s} {'dil/dense':>9s} {'patch/dense':>11s} {'bf16 rel.err':>12s}")
    for name, net in nets.items():
        dd.descriptors(img[:64, :64], net)  # warm-up (oneDNN primitive creation)
        dd.descriptors(img[:64, :64], net, precision="bf16")
        t_dense = median_time(lambda: dd.descriptors(img, net, tile=256), args.runs)
        c_dense = statistics.median(CPU_TIMES)
        t_bf16 = median_time(lambda: dd.descriptors(img, net, tile=256, precision="bf16"), args.runs)
        c_bf16 = statistics.median(CPU_TIMES)
        crop = img[:128, :256]
        ref, low = dd.descriptors(crop, net), dd.descriptors(crop, net, precision="bf16").float()
        err = float((ref - low).norm() / ref.norm())
        t_dil = median_time(lambda: dilated_baseline(img, net), max(1, args.runs - 1))
        c_dil = statistics.median(CPU_TIMES)
        t_patch = per_patch_rate(img, net, args.crop, max(1, args.runs - 1)) * H * W
        print(f"{name:34s} {t_dense:8.2f} {c_dense:6.1f} {t_bf16:7.2f} {c_bf16:6.1f} {t_dil:9.2f} {c_dil:6.1f} "
              f"{t_patch:11.1f} {t_dil / t_dense:9.2f} {t_patch / t_dense:11.1f} {err:12.2e}")
    if args.skip_rss:
        return
    print(f"\n== peak RSS of a fresh process extracting {W}×{H} (512-D, fp16 output of {H * W * 512 * 2 / 2**20:.0f} MiB)")
    print(f"{'tile':>6s} {'RSS before MiB':>14s} {'peak MiB':>9s} {'peak-before-output':>18s} {'time s':>7s}")
    for tile in (64, 128, 256, 512):
        r = child_rss(tile, 1.0)
        print(f"{tile:6d} {r['base']:14.0f} {r['peak']:9.0f} {r['peak'] - r['base'] - r['output']:18.0f} {r['time']:7.2f}")


def sift_descriptors(gray01: np.ndarray, xy: np.ndarray, size: float) -> np.ndarray:
    import cv2

    img = np.clip(gray01 * 255 + 0.5, 0, 255).astype(np.uint8)
    kps = [cv2.KeyPoint(float(x), float(y), size, 0) for x, y in xy]
    sift = cv2.SIFT_create()
    kps2, desc = sift.compute(img, kps)
    if desc is None or len(kps2) != len(kps):
        raise RuntimeError("SIFT dropped keypoints")
    return desc.astype(np.float64)


def quality(args: argparse.Namespace) -> None:
    from flowmatch.data.patch_pairs import PatchPairSampler
    from flowmatch.train.patchbatch import DEFAULT_HOLDOUT, descriptor_scores, embed, heldout_frames

    nets = {}
    for key in ("dense", "paper"):
        try:
            nets[key] = dd.load_descriptor_model(key)
        except Exception as exc:
            print(f"(no shipped {key} weights: {exc})")
    frames = heldout_frames(DEFAULT_HOLDOUT, None)
    print(f"\n== held-out quality ({args.pairs} triplets per set; negatives 1-8 px from the true match; "
          "lower FPR95 is better, higher top1 is better)")
    print(f"{'descriptor':34s} " + " ".join(f"{s + ' FPR95':>15s} {s + ' top1':>14s}" for s in frames))
    rows: dict[str, list[float]] = {}
    for si, (set_name, fr) in enumerate(frames.items()):
        s62 = PatchPairSampler(fr, 62, augment=False, seed=si + 1)
        t = s62.sample(args.pairs)
        s51 = PatchPairSampler(fr, 51, augment=False, seed=si + 1)

        def cut(sampler, xy, image):
            return torch.cat([sampler.patches_at(int(f), xy[t.frame == f], image) for f in np.unique(t.frame)])

        order = np.concatenate([np.flatnonzero(t.frame == f) for f in np.unique(t.frame)])
        xy1, xy2, xyn = t.xy1[order], t.xy2[order], t.xyn[order]
        frame = t.frame[order]
        inv = torch.from_numpy(np.argsort(order))  # back to the sampler's order (as in training logs)

        def add(name, a, p, n):
            a, p, n = (torch.as_tensor(v)[inv] for v in (a, p, n))
            sc = descriptor_scores(a, p, n)
            rows.setdefault(name, []).extend([sc["fpr95"], sc["top1"]])

        for key, net in nets.items():
            smp = s62 if net.patch_size == 62 else s51
            add(f"PatchBatch {key} ({net.dim}-D)", embed(net, cut(smp, t.xy1, 1)), embed(net, cut(smp, t.xy2, 2)),
                embed(net, cut(smp, t.xyn, 2)))
        raw = [cut(s51, t.xy1, 1), cut(s51, t.xy2, 2), cut(s51, t.xyn, 2)]
        raw = [(r - r.mean((2, 3), keepdim=True)) / (r.std((2, 3), keepdim=True) + 1e-6) for r in raw]
        add("raw 51×51 pixels (patch-normalised)", *[r.flatten(1) for r in raw])
        for size in (4.0, 8.5, 17.0):
            parts = [[], [], []]
            for f in np.unique(frame):
                m = frame == f
                g1, g2 = s51.frames[int(f)].gray1, s51.frames[int(f)].gray2
                parts[0].append(sift_descriptors(g1, xy1[m], size))
                parts[1].append(sift_descriptors(g2, xy2[m], size))
                parts[2].append(sift_descriptors(g2, xyn[m], size))
            add(f"SIFT upright, size {size}", *[np.concatenate(p) for p in parts])
    for name, vals in rows.items():
        print(f"{name:34s} " + " ".join(f"{v:15.4f}" if i % 2 == 0 else f"{v:14.4f}" for i, v in enumerate(vals)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--crop", type=int, default=1024, help="pixels timed on the per-patch path")
    ap.add_argument("--pairs", type=int, default=2048, help="held-out triplets per set")
    ap.add_argument("--skip-speed", action="store_true")
    ap.add_argument("--skip-quality", action="store_true")
    ap.add_argument("--skip-rss", action="store_true", help="skip the peak-RSS child processes")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"(machine shared with other jobs: load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; "
          "timings are noisy)")
    if not args.skip_quality:
        quality(args)
    if not args.skip_speed:
        speed(args)


if __name__ == "__main__":
    main()
