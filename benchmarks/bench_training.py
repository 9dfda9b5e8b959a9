"""Training throughput: samples/s of one optimizer step, fp32 vs bf16 autocast, channels_last on/off, side by side.

    .venv/bin/python benchmarks/bench_training.py [--steps 2] [--batch 4] [--crop 192 256] [--threads 2]

Rows: FlowNetS and FlowNetC at width 0.25 and 0.5 (batch norm, `--batch` pairs of `--crop`), and the
PatchBatch descriptor net (dense variant, width 0.5 and the paper's width 1 = 512-D, 128 triplets = 384
patches); columns: every
combination of precision (fp32, bf16 autocast with fp32 master weights, as flowmatch.precision does
it) and memory format.  A step is what the trainers do: forward, the training loss (FlowNet's
multiscale EPE / CENT-DrLIM+SD), backward, Adam.  Inputs are random tensors, so data generation is
not in these numbers; its own row gives flying-photos pairs/s (generation + FlowNet augmentation,
one process, at 1.2 × --crop), which sets how many --workers a faster device needs.

Each cell: one warm-up step, then the mean of --steps timed steps.  The bf16/fp32 ratio is > 1 where
bf16 is faster; on CPUs without native bf16 (AVX2 only) torch emulates it and the ratio is well below 1.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from flowmatch.losses import triplet_batch_loss  # noqa: E402
from flowmatch.models.flownet import build_model  # noqa: E402
from flowmatch.models.patchbatch import PatchBatchNet  # noqa: E402
from flowmatch.precision import autocast, cpu_has_fast_bf16  # noqa: E402
from flowmatch.train.flownet_loss import multiscale_epe  # noqa: E402

COMBOS = (("fp32", True), ("bf16", True), ("fp32", False), ("bf16", False))


def _fmt(x: torch.Tensor, cl: bool) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last) if cl else x.contiguous()


def flownet_case(kind: str, width: float, batch: int, crop: tuple[int, int]):
    def make(precision: str, cl: bool):
        g = torch.Generator().manual_seed(0)
        model = build_model(kind, width=width, batch_norm=True)
        if cl:
            model = model.to(memory_format=torch.channels_last)
        opt = torch.optim.Adam(model.parameters(), lr=1e-4)
        a = _fmt(torch.rand(batch, 3, *crop, generator=g), cl)
        b = _fmt(torch.rand(batch, 3, *crop, generator=g), cl)
        flow = torch.randn(batch, 2, *crop, generator=g) * 5

        def step() -> None:
            x, y = model.normalise(a, b)
            with autocast("cpu", precision):
                preds = model(x, y)
            loss = multiscale_epe([p.float() for p in preds], flow)[0]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        return step
    return make, batch


def patchbatch_case(width: float = 0.5, triplets: int = 128):
    def make(precision: str, cl: bool):
        g = torch.Generator().manual_seed(0)
        net = PatchBatchNet("dense", width=width)
        if cl:
            net = net.to(memory_format=torch.channels_last)
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        p = net.patch_size
        x = _fmt(torch.rand(3 * triplets, 1, p, p, generator=g), cl)

        def step() -> None:
            with autocast("cpu", precision):
                d = net(x).float()
            loss = triplet_batch_loss("cent-drlim-sd", d[:triplets], d[triplets:2 * triplets], d[2 * triplets:],
                                      margin=25.0, lam=0.8)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        return step
    return make, triplets


def timed(step, steps: int) -> float:
    step()  # warm-up: oneDNN primitive creation, allocator
    t = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - t) / steps


def data_rate(crop: tuple[int, int], n: int) -> float | None:
    from flowmatch.data.photos import default_photo_dir
    from flowmatch.train.flownet_data import FlowBatches

    if default_photo_dir() is None:
        return None
    data = FlowBatches(["flying-photos"], crop, [0], seed=0, steps=n + 1)
    data[0]  # decodes the photos it needs
    t = time.perf_counter()
    for s in range(1, n + 1):
        data[s]
    return n / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=2, help="timed steps per cell (after one warm-up step)")
    ap.add_argument("--batch", type=int, default=4, help="FlowNet pairs per step")
    ap.add_argument("--crop", type=int, nargs=2, default=(192, 256), metavar=("H", "W"))
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--only", default="", help="comma-separated row names to run (default: all)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    crop = tuple(args.crop)
    cases = {"flownets w0.25": flownet_case("flownets", 0.25, args.batch, crop),
             "flownetc w0.25": flownet_case("flownetc", 0.25, args.batch, crop),
             "flownets w0.5": flownet_case("flownets", 0.5, args.batch, crop),
             "flownetc w0.5": flownet_case("flownetc", 0.5, args.batch, crop),
             "patchbatch w0.5 (128 triplets)": patchbatch_case(),
             "patchbatch w1 (128 triplets)": patchbatch_case(width=1.0)}
    if args.only:
        cases = {k: v for k, v in cases.items() if any(o.strip() in k for o in args.only.split(","))}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, native CPU bf16: {cpu_has_fast_bf16()}; "
          f"FlowNet batch {args.batch} at {crop[0]}×{crop[1]}, {args.steps} timed steps per cell; "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)
    head = " | ".join(f"{p} {'CL' if cl else 'NCHW'}" for p, cl in COMBOS)
    print(f"| net (samples/s) | {head} | bf16/fp32 CL | bf16/fp32 NCHW | CL/NCHW fp32 |", flush=True)
    print("|---" * (len(COMBOS) + 4) + "|", flush=True)
    for name, (make, per_step) in cases.items():
        rate = {c: per_step / timed(make(*c), args.steps) for c in COMBOS}
        cells = " | ".join(f"{rate[c]:.2f}" for c in COMBOS)
        print(f"| {name} | {cells} | {rate[('bf16', True)] / rate[('fp32', True)]:.2f} | "
              f"{rate[('bf16', False)] / rate[('fp32', False)]:.2f} | "
              f"{rate[('fp32', True)] / rate[('fp32', False)]:.2f} |", flush=True)
    r = data_rate(crop, max(4, 2 * args.steps))
    print(f"data: flying-photos + augmentation, one process: "
          f"{'no photo folder' if r is None else f'{r:.1f} pairs/s'} at {crop[0]}×{crop[1]}", flush=True)


if __name__ == "__main__":
    main()
