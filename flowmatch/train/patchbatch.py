"""Training the PatchBatch descriptor network: `flowmatch train patchbatch ...`.

    flowmatch train patchbatch --data synthetic:400 --data real --variant dense --width 0.5 \\
        --loss cent-drlim-sd --out runs/pb_dense --time-budget 28 --export flowmatch/weights/patchbatch_dense.safetensors

Data sources (--data, repeatable): ``synthetic[:N]`` (N procedural pairs, flowmatch.data.synthetic),
``real[:FOLDER]`` (the sample-case layout of ../shared/data/real: one folder per pair with img1,
img2, flow.flo or flow_gt.png, optional occlusions.png/invalid.png; cases named in --holdout are
left out), ``sintel:ROOT``, ``kitti2012:ROOT``, ``kitti2015:ROOT``, ``chairs:ROOT`` (the
flowmatch.data.datasets readers; --frames-per-source random frames of each are loaded).

During training, every --eval-every steps, the held-out set (synthetic pairs from other seeds plus
the --holdout real cases) is scored with what descriptor users look at:
  * FPR95: the share of non-matching pairs (anchor, negative 1-8 px from the true match) whose
    distance is below the distance that accepts 95 % of the matching pairs;
  * hardest-negative share ("top1"): in groups of 128 triplets, the share of anchors whose positive
    is nearer than every other img2 patch of the group (all other positives and all negatives).
Checkpoints (safetensors, no pickle) go to --out/step_XXXXXXXX.safetensors; --resume continues from
the newest one.  --export writes the final weights (fp16) for flowmatch.descriptors_dense.
"""
from __future__ import annotations

import argparse
import math
import os
import time
from typing import Any, Sequence

import numpy as np
import torch

from ..errors import DatasetLayoutError, InputError
from ..losses import LOSSES, triplet_batch_loss
from ..models.patchbatch import VARIANTS, PatchBatchNet

KIND = "patchbatch"


# ---------------------------------------------------------------------------------------------
# descriptor quality measures

def fpr_at_recall(pos: np.ndarray, neg: np.ndarray, recall: float = 0.95) -> float:
    """False-positive rate at the distance threshold that accepts `recall` of the matching pairs.

    pos, neg: distances of matching / non-matching pairs (smaller = more similar)."""
    pos, neg = np.asarray(pos, np.float64), np.asarray(neg, np.float64)
    if pos.size == 0 or neg.size == 0:
        raise InputError("fpr_at_recall needs at least one matching and one non-matching distance")
    thr = np.quantile(pos, recall, method="inverted_cdf")
    return float((neg <= thr).mean())


def hardest_negative_share(da: torch.Tensor, dp: torch.Tensor, dn: torch.Tensor, group: int = 128) -> float:
    """Share of anchors whose positive is nearer than their hardest negative, where the negatives of
    anchor i are all img2 patches of its group (other positives and all negatives).  N×D inputs."""
    hits, total = 0, 0
    for s in range(0, da.shape[0], group):
        a, p, n = da[s:s + group].double(), dp[s:s + group].double(), dn[s:s + group].double()
        g = a.shape[0]
        if g < 2:
            continue
        cand = torch.cdist(a, torch.cat([p, n]))
        pos = cand[torch.arange(g), torch.arange(g)].clone()
        cand[torch.arange(g), torch.arange(g)] = float("inf")
        hits += int((pos < cand.min(1).values).sum())
        total += g
    return hits / max(total, 1)


def descriptor_scores(da: torch.Tensor, dp: torch.Tensor, dn: torch.Tensor) -> dict[str, float]:
    """{"fpr95", "top1"} for N×D descriptors of anchors, positives and negatives (see module doc)."""
    pos = torch.linalg.vector_norm(da.double() - dp.double(), dim=1).numpy()
    neg = torch.linalg.vector_norm(da.double() - dn.double(), dim=1).numpy()
    return {"fpr95": fpr_at_recall(pos, neg), "top1": hardest_negative_share(da, dp, dn)}


@torch.no_grad()
def embed(net: PatchBatchNet, patches: torch.Tensor, chunk: int = 512) -> torch.Tensor:
    """Descriptors of N×1×P×P patches in eval mode, in chunks -> N×D float32."""
    was = net.training
    net.eval()
    out = torch.cat([net(patches[s:s + chunk]) for s in range(0, patches.shape[0], chunk)])
    net.train(was)
    return out


def evaluate(net: PatchBatchNet, sets: dict[str, Any]) -> dict[str, float]:
    """Scores of `net` on each held-out PatchTriplets set: {"<set>/fpr95": ..., "<set>/top1": ...}."""
    out = {}
    for name, t in sets.items():
        for k, v in descriptor_scores(embed(net, t.anchor), embed(net, t.positive), embed(net, t.negative)).items():
            out[f"{name}/{k}"] = v
    return out


# ---------------------------------------------------------------------------------------------
# data

def load_case(folder: str) -> dict[str, Any]:
    """One pair in the sample-case layout (flowmatch.data.datasets.read_sample_case).  Returns a dict
    with img1, img2, flow (H×W×2 float32 px), valid, occlusion (or None) and name (the folder name)."""
    from ..data.datasets import read_sample_case

    s = read_sample_case(folder)
    return {"img1": s.img1, "img2": s.img2, "flow": s.flow, "valid": s.valid,
            "occlusion": s.occlusion, "name": s.meta["case"]}


def real_cases(root: str | None = None) -> list[str]:
    """Sample-case folders below `root` (default: flowmatch._paths.real_data_dir()), sorted."""
    from ..data.datasets import sample_case_dirs

    try:
        found = sample_case_dirs(root or None)
    except DatasetLayoutError:
        raise DatasetLayoutError(f"real sample folder {root!r} not found; pass real:FOLDER or set "
                                 "FLOWMATCH_REAL_DATA") from None
    if not found:
        raise DatasetLayoutError(f"no sample cases (folders with img1.*) below {root!r}")
    return found


def synthetic_frames(n: int, seed: int, size: int = 224) -> list[Any]:
    """n procedural pairs size×size from seeds seed, seed+1, ... with a little noise and illumination change."""
    from ..data.synthetic import generate_pair

    out = []
    for i in range(n):
        rng = np.random.default_rng(seed + i)
        out.append(generate_pair(size, size, seed=seed + i, noise=float(rng.uniform(0, 4)),
                                 illumination=float(rng.uniform(0, 0.15))))
    return out


def dataset_frames(kind: str, root: str, count: int, seed: int) -> list[Any]:
    """`count` random frames of a dataset read by flowmatch.data.datasets."""
    try:
        from ..data import datasets
    except ImportError as exc:
        raise InputError(f"--data {kind}:... needs flowmatch.data.datasets, which is not available: {exc}") from exc
    if kind == "sintel":
        ds = datasets.Sintel(root)
    elif kind in ("kitti2012", "kitti2015"):
        ds = datasets.Kitti(root, year=int(kind[5:]))
    elif kind == "chairs":
        ds = datasets.FlyingChairs(root)
    else:
        raise InputError(f"unknown data source {kind!r}")
    idx = np.random.default_rng(seed).permutation(len(ds))[:count]
    return [ds[int(i)] for i in idx]


def build_frames(specs: Sequence[str], holdout: Sequence[str], frames_per_source: int, seed: int,
                 synthetic_size: int, real_share: float) -> tuple[list[Any], list[float]]:
    """Training frames and their sampling weights from --data specs (see the module docstring).
    Real/dataset frames together get `real_share` of the draws when there are synthetic frames too."""
    synth, other = [], []
    for spec in specs:
        kind, _, arg = spec.partition(":")
        if kind == "synthetic":
            synth += synthetic_frames(int(arg or 400), seed, synthetic_size)
        elif kind == "real":
            for case in real_cases(arg or None):
                if os.path.basename(case) not in holdout:
                    other.append(load_case(case))
        elif kind in ("sintel", "kitti2012", "kitti2015", "chairs"):
            if not arg:
                raise InputError(f"--data {kind} needs a dataset root: --data {kind}:/path/to/{kind}")
            other += dataset_frames(kind, arg, frames_per_source, seed)
        else:
            raise InputError(f"--data {spec!r}: use synthetic[:N], real[:FOLDER], sintel:ROOT, kitti2012:ROOT, "
                             "kitti2015:ROOT or chairs:ROOT")
    frames = synth + other
    if not frames:
        raise InputError("no training frames: give at least one --data source")
    if synth and other:
        weights = [(1 - real_share) / len(synth)] * len(synth) + [real_share / len(other)] * len(other)
    else:
        weights = [1.0] * len(frames)
    return frames, weights


def heldout_frames(holdout: Sequence[str], real_root: str | None, n_synth_pairs: int = 24,
                   seed: int = 10_000_019) -> dict[str, list[Any]]:
    """Held-out frames: "synthetic" (seeds never used in training) and "real" (the --holdout cases)."""
    out = {"synthetic": synthetic_frames(n_synth_pairs, seed, 224)}
    if holdout:
        try:
            cases = [c for c in real_cases(real_root) if os.path.basename(c) in holdout]
        except DatasetLayoutError:
            cases = []
        if cases:
            out["real"] = [load_case(c) for c in cases]
    return out


def heldout_sets(patch_size: int, holdout: Sequence[str], real_root: str | None,
                 per_set: int = 2048) -> dict[str, Any]:
    """Fixed evaluation triplets (no augmentation, near negatives 1-8 px) from heldout_frames, equal
    share per frame.  The positions do not depend on patch_size (same draws for 51 and 62)."""
    from ..data.patch_pairs import PatchPairSampler

    return {name: PatchPairSampler(frames, patch_size, augment=False, seed=i + 1).sample(per_set)
            for i, (name, frames) in enumerate(heldout_frames(holdout, real_root).items())}


# ---------------------------------------------------------------------------------------------
# training loop

DEFAULT_HOLDOUT = ("000157_10", "temple_3_final_0022", "flownet2_examples_0000002")


def _loss_params(args: argparse.Namespace) -> dict[str, float]:
    if args.loss in ("drlim", "cent-drlim"):
        return {"margin": args.margin}
    if args.loss == "cent-drlim-sd":
        return {"margin": args.margin, "lam": args.lam}
    if args.loss == "contrastive":
        return {"neg_margin": args.margin}
    return {"margin": args.margin}


def train(args: argparse.Namespace) -> dict[str, float]:
    """Run training as configured by the CLI arguments; returns the last held-out scores."""
    from ..checkpoint import save_checkpoint
    from ..data.patch_pairs import PatchPairSampler
    from .common import (Progress, latest_checkpoint, load_training_state, prune_checkpoints,
                         checkpoint_path, save_training_state, seed_everything)

    if args.threads:
        torch.set_num_threads(args.threads)
    seed_everything(args.seed)
    net = PatchBatchNet(args.variant, bn=args.bn, width=args.width)
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    holdout = tuple(h for h in args.holdout.split(",") if h)
    frames, weights = build_frames(args.data, holdout, args.frames_per_source, args.seed, args.synthetic_size,
                                   args.real_share)
    sampler = PatchPairSampler(frames, net.patch_size, neg_min=args.neg_min, neg_max=args.neg_max,
                               far_negatives=args.far_negatives, augment=not args.no_augment, seed=args.seed,
                               weights=weights)
    real_root = next((s.partition(":")[2] or None for s in args.data if s.startswith("real")), None)
    sets = heldout_sets(net.patch_size, holdout, real_root, per_set=args.eval_size)
    step, elapsed0 = 0, 0.0
    if args.resume and latest_checkpoint(args.out):
        step, user = load_training_state(latest_checkpoint(args.out), KIND, net, opt, config=net.config())
        elapsed0 = float(user.get("elapsed", 0.0))
        print(f"resumed from step {step} ({latest_checkpoint(args.out)})")
    params = _loss_params(args)
    budget = args.time_budget * 60 if args.time_budget else math.inf
    bar = Progress(args.steps, start=step, desc=f"patchbatch-{args.variant}")
    t0 = time.time() - elapsed0
    scores: dict[str, float] = {}

    def save(final: bool = False) -> None:
        user = {"elapsed": time.time() - t0, "scores": scores, "loss": args.loss}
        save_training_state(checkpoint_path(args.out, step), KIND, net.config(), net, opt, step, extra=user)
        prune_checkpoints(args.out, args.keep)

    while step < args.steps and time.time() - t0 < budget:
        # Learning rate: halved at 60 % and again at 85 % of the run (by steps or time, whichever is further).
        frac = max(step / args.steps, (time.time() - t0) / budget)
        lr = args.lr * (0.5 ** ((frac > 0.6) + (frac > 0.85)))
        for g in opt.param_groups:
            g["lr"] = lr
        sampler.rng = np.random.default_rng([args.seed, step])  # batch depends on (seed, step): exact resume
        b = sampler.sample(args.batch)
        n = len(b)
        d = net(torch.cat([b.anchor, b.positive, b.negative]))  # one BN batch for all three
        loss = triplet_batch_loss(args.loss, d[:n], d[n:2 * n], d[2 * n:], **params)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        bar.update(loss=loss.item(), lr=lr)
        if step % args.eval_every == 0 or step == args.steps:
            scores = evaluate(net, sets)
            bar.write(f"step {step} ({time.time() - t0:.0f} s) loss {bar.averages['loss']:.4g} "
                      + " ".join(f"{k} {v:.4f}" for k, v in scores.items()))
        if step % args.ckpt_every == 0:
            save()
    bar.close()
    scores = evaluate(net, sets)
    print(f"final step {step} ({time.time() - t0:.0f} s): " + " ".join(f"{k} {v:.4f}" for k, v in scores.items()),
          flush=True)
    save(final=True)
    if args.export:
        net.eval()
        save_checkpoint(args.export, KIND, net.config(), net.state_dict(),
                        {"scores": scores, "step": step, "loss": args.loss, "data": list(args.data),
                         "holdout": list(holdout)}, half=True)
        print(f"wrote {args.export} ({os.path.getsize(args.export) / 2**20:.2f} MiB)")
    return scores


def register_cli(sub: argparse._SubParsersAction) -> None:
    """Add `flowmatch train patchbatch`."""
    p = sub.add_parser("patchbatch", help="train the PatchBatch descriptor network",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", action="append", default=None,
                   help="synthetic[:N], real[:FOLDER], sintel:ROOT, kitti2012:ROOT, kitti2015:ROOT, chairs:ROOT "
                        "(repeatable; default synthetic:400 and real)")
    p.add_argument("--holdout", default=",".join(DEFAULT_HOLDOUT),
                   help="comma-separated sample-case folder names kept out of training for evaluation")
    p.add_argument("--variant", choices=VARIANTS, default="dense")
    p.add_argument("--bn", choices=("unit", "channel"), default=None,
                   help="batch norm: unit (paper, per position) or channel; default unit for paper, channel for dense")
    p.add_argument("--width", type=float, default=0.5, help="channel multiplier (1.0 = the paper's 512-D net)")
    p.add_argument("--loss", choices=tuple(LOSSES), default="cent-drlim-sd")
    p.add_argument("--margin", type=float, default=100.0)
    p.add_argument("--lam", type=float, default=0.8, help="λ of CENT-DrLIM+SD")
    p.add_argument("--neg-min", type=float, default=1.0)
    p.add_argument("--neg-max", type=float, default=8.0)
    p.add_argument("--far-negatives", type=float, default=0.1, help="share of random far negatives")
    p.add_argument("--no-augment", action="store_true")
    p.add_argument("--batch", type=int, default=128, help="triplets per step")
    p.add_argument("--steps", type=int, default=100_000)
    p.add_argument("--time-budget", type=float, default=0.0, help="stop after this many minutes (0 = no limit)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--synthetic-size", type=int, default=224)
    p.add_argument("--frames-per-source", type=int, default=64)
    p.add_argument("--real-share", type=float, default=0.3)
    p.add_argument("--eval-every", type=int, default=200)
    p.add_argument("--eval-size", type=int, default=2048)
    p.add_argument("--ckpt-every", type=int, default=200)
    p.add_argument("--keep", type=int, default=3, help="checkpoints kept in --out")
    p.add_argument("--out", default="runs/patchbatch")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--export", default=None, help="write the final fp16 weights here")
    p.add_argument("--threads", type=int, default=1, help="torch threads (1 on a shared machine)")

    def run(args: argparse.Namespace) -> int:
        args.data = args.data or ["synthetic:400", "real"]
        if args.batch < 2 or args.steps < 1 or args.eval_every < 1 or args.ckpt_every < 1:
            raise InputError("--batch must be >= 2 and --steps, --eval-every, --ckpt-every positive")
        train(args)
        return 0

    p.set_defaults(func=run)
