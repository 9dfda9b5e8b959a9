"""Training FlowNetS / FlowNetC: multiscale EPE loss, Adam with the paper's schedule, checkpoints,
resume, DistributedDataParallel through torchrun.

    flowmatch train flownets --data synthetic --steps 2000 --out runs/s
    flowmatch train flownetc --data chairs --root /data/FlyingChairs_release --out runs/c --resume
    torchrun --nproc_per_node 2 -m flowmatch train flownets --data synthetic ...

Determinism (what makes resume and DDP exact): the samples of global step s are fixed by
(seed, s) alone -- synthetic pairs are generated from a per-sample seed, dataset items come from a
per-epoch permutation, augmentation draws from a per-sample generator -- and rank r of W takes
slots r, r+W, ... of the global batch.  So an interrupted run resumed from its last checkpoint
(model, optimizer, step, RNG state, loss history) continues exactly, and W processes with batch b
follow the same loss curve as one process with batch W·b (up to float rounding).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from types import SimpleNamespace
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .._atomic import atomic_open
from ..errors import CheckpointError, DatasetLayoutError, InputError
from ..models.flownet import DIV_FLOW, build_model
from . import common

# Loss weights of flow2 .. flow6 (finest first), as in the published training.
MULTISCALE_WEIGHTS = (0.005, 0.01, 0.02, 0.08, 0.32)
DATA_KINDS = ("synthetic", "chairs", "sintel", "kitti")


# ---------------------------------------------------------------------------------------------
# losses


def _downsample_target(flow: torch.Tensor, valid: torch.Tensor | None, size: tuple[int, int]
                       ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Area-average the target flow (N×2×H×W) to `size`, over valid pixels only."""
    if valid is None:
        return F.adaptive_avg_pool2d(flow, size), None
    v = valid.to(flow.dtype).unsqueeze(1)
    num = F.adaptive_avg_pool2d(flow * v, size)
    den = F.adaptive_avg_pool2d(v, size)
    return num / den.clamp_min(1e-6), den[:, 0] > 0


def _mean_epe(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
    epe = torch.linalg.vector_norm(pred - target, dim=1)  # N×h×w
    if valid is None:
        return epe.mean()
    return (epe * valid).sum() / valid.sum().clamp_min(1)


def multiscale_epe(preds: Sequence[torch.Tensor], flow: torch.Tensor, valid: torch.Tensor | None = None,
                   weights: Sequence[float] = MULTISCALE_WEIGHTS, div_flow: float = DIV_FLOW
                   ) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """FlowNet's multiscale loss: Σ_k weight_k · mean EPE(pred_k, target / div_flow pooled to scale k).

    preds: (flow2, ..., flow6), N×2×h_k×w_k, in input pixels / div_flow.  flow: N×2×H×W target in
    pixels.  valid: N×H×W bool (None = all valid).  Returns (loss, per-scale EPE in the network's
    units, finest first)."""
    if len(preds) != len(weights):
        raise InputError(f"multiscale_epe: {len(preds)} predictions but {len(weights)} weights")
    target = flow / div_flow
    loss = flow.new_zeros(())
    epes = []
    for pred, w in zip(preds, weights):
        t, v = _downsample_target(target, valid, pred.shape[-2:])
        e = _mean_epe(pred, t, v)
        epes.append(e.detach())
        loss = loss + w * e
    return loss, epes


def full_resolution_epe(flow2: torch.Tensor, flow: torch.Tensor, valid: torch.Tensor | None = None,
                        div_flow: float = DIV_FLOW) -> torch.Tensor:
    """Mean EPE in pixels of flow2 (upsampled ×4, ×div_flow) against the full-size target."""
    up = F.interpolate(flow2.detach() * div_flow, size=flow.shape[-2:], mode="bilinear", align_corners=False)
    return _mean_epe(up, flow, valid)


# ---------------------------------------------------------------------------------------------
# configuration


@dataclass
class TrainConfig:
    """Everything a training run depends on.  Schedule defaults are the paper's (lr 1e-4, halved
    every 100k steps after 300k; FlowNetC warm-up from 1e-6 over the first 10k steps)."""

    model: str = "flownets"
    width: float = 1.0
    batch_norm: bool = False
    data: str = "synthetic"
    root: str | None = None
    split: str = "training"
    sintel_pass: str = "clean"
    kitti_year: int = 2015
    crop: tuple[int, int] = (384, 448)        # H, W of training samples (multiples of 64)
    batch_size: int = 8                       # per process
    steps: int = 1000
    lr: float = 1e-4
    decay_start: int = 300_000
    decay_every: int = 100_000
    warmup_steps: int | None = None           # None: 10k for FlowNetC, 0 for FlowNetS
    warmup_start_lr: float = 1e-6
    weight_decay: float = 0.0
    augment: bool = True
    max_motion: float = 40.0                  # synthetic data only
    motion_min: float = 1.0                   # synthetic: per-pair max motion drawn in [motion_min, 1]·max_motion
    noise: float = 0.0                        # synthetic data only (grey levels)
    illumination: float = 0.0                 # synthetic data only
    synthetic_pairs: int | None = None        # synthetic: cycle this many distinct pairs (None = endless)
    seed: int = 0
    out: str = "runs/flownet"
    ckpt_every: int = 500
    keep: int = 3
    resume: bool | str = False
    init: str | None = None                   # start from these weights (fine-tuning); model config must match
    threads: int | None = None
    device: str = "auto"
    tensorboard: str | None = None
    progress: bool = True
    half_final: bool = False

    def validate(self) -> None:
        if self.model not in ("flownets", "flownetc"):
            raise InputError(f"model must be 'flownets' or 'flownetc', got {self.model!r}")
        if self.data not in DATA_KINDS:
            raise InputError(f"--data must be one of {DATA_KINDS}, got {self.data!r}")
        if self.data != "synthetic" and not self.root:
            raise InputError(f"--data {self.data} needs --root (the dataset folder)")
        h, w = self.crop
        if not 0.0 <= self.motion_min <= 1.0:
            raise InputError(f"--motion-min must be in [0, 1], got {self.motion_min}")
        if h < 64 or w < 64:
            raise InputError(f"--crop must be at least 64×64, got {h}×{w}")
        for name in ("batch_size", "steps", "ckpt_every"):
            if int(getattr(self, name)) < 1:
                raise InputError(f"{name} must be >= 1, got {getattr(self, name)}")

    @property
    def warmup(self) -> int:
        if self.warmup_steps is not None:
            return self.warmup_steps
        return 10_000 if self.model == "flownetc" else 0

    def model_config(self) -> dict[str, Any]:
        return {"width": float(self.width), "batch_norm": bool(self.batch_norm)}


# Settings that must not change when resuming (the sample stream and the model depend on them).
_RESUME_FIXED = ("model", "width", "batch_norm", "data", "root", "split", "sintel_pass", "kitti_year",
                 "crop", "batch_size", "seed", "augment", "max_motion", "noise", "illumination",
                 "synthetic_pairs", "motion_min")


# ---------------------------------------------------------------------------------------------
# data


def _random_crop(sample: dict[str, np.ndarray], size: tuple[int, int], rng: np.random.Generator
                 ) -> dict[str, np.ndarray]:
    h, w = sample["img1"].shape[:2]
    ch, cw = size
    if h < ch or w < cw:
        raise InputError(f"a training sample of {w}×{h} is smaller than --crop {cw}×{ch}; lower --crop")
    y = int(rng.integers(0, h - ch + 1))
    x = int(rng.integers(0, w - cw + 1))
    return {k: v[y:y + ch, x:x + cw] for k, v in sample.items()}


def _open_dataset(cfg: TrainConfig):
    root = cfg.root
    if not os.path.isdir(root):
        raise DatasetLayoutError(f"dataset folder {root!r} does not exist or is not a folder (--root)")
    if not os.access(root, os.R_OK | os.X_OK):
        raise DatasetLayoutError(f"dataset folder {root!r} is not readable; check its permissions (--root)")
    from ..data import datasets

    if cfg.data == "chairs":
        split = {"training": "train", "validation": "val"}.get(cfg.split, cfg.split)
        return datasets.FlyingChairs(root, split=split)
    if cfg.data == "sintel":
        return datasets.Sintel(root, split=cfg.split, pass_=cfg.sintel_pass)
    return datasets.Kitti(root, year=cfg.kitti_year, split=cfg.split)


def _make_augment(cfg: TrainConfig):
    """The paper's augmentations (engineer B's FlowAugment), cropping to cfg.crop."""
    if not cfg.augment:
        return None
    from ..data.augment import FlowAugment

    return FlowAugment(crop=tuple(int(v) for v in cfg.crop))


class SampleStream:
    """The training samples of each global step, fixed by (seed, step).

    `batch(step, slots)` returns image/flow/valid tensors for the given slots of that step's
    global batch (img N×3×H×W float in [0, 1], flow N×2×H×W pixels, valid N×H×W bool)."""

    def __init__(self, cfg: TrainConfig, global_batch: int) -> None:
        self.cfg = cfg
        self.global_batch = global_batch
        self.dataset = None if cfg.data == "synthetic" else _open_dataset(cfg)
        if self.dataset is not None and len(self.dataset) == 0:
            raise DatasetLayoutError(f"dataset {cfg.data!r} under {cfg.root!r} has no samples for split {cfg.split!r}")
        self.augment = _make_augment(cfg)
        self._perms: dict[int, np.ndarray] = {}

    def _raw(self, g: int) -> dict[str, np.ndarray]:
        cfg = self.cfg
        if self.dataset is None:
            from ..data.synthetic import generate_pair

            if cfg.synthetic_pairs:
                g = g % cfg.synthetic_pairs
            rng = np.random.default_rng([cfg.seed, 0, g])
            motion = cfg.max_motion
            if cfg.motion_min < 1.0:  # a spread of motion magnitudes, small ones included
                motion *= cfg.motion_min + (1.0 - cfg.motion_min) * np.random.default_rng([cfg.seed, 4, g]).random()
            p = generate_pair(cfg.crop[0], cfg.crop[1], rng, max_motion=motion, noise=cfg.noise,
                              illumination=cfg.illumination)
            return {"img1": p.img1, "img2": p.img2, "flow": p.flow, "valid": p.valid}
        n = len(self.dataset)
        epoch, pos = divmod(g, n)
        if epoch not in self._perms:
            self._perms = {epoch: np.random.default_rng([cfg.seed, 1, epoch]).permutation(n)}
        s = self.dataset[int(self._perms[epoch][pos])]
        valid = s.valid if s.valid is not None else np.ones(s.flow.shape[:2], bool)
        return {"img1": s.img1, "img2": s.img2, "flow": s.flow, "valid": valid}

    def _sample(self, g: int) -> dict[str, np.ndarray]:
        s = self._raw(g)
        rng = np.random.default_rng([self.cfg.seed, 2, g])
        if self.augment is not None:
            out = self.augment(SimpleNamespace(**s), rng)
            s = {"img1": out.img1, "img2": out.img2, "flow": out.flow, "valid": out.valid}
        if s["img1"].shape[:2] != tuple(self.cfg.crop):
            s = _random_crop(s, self.cfg.crop, rng)
        return s

    def batch(self, step: int, slots: Sequence[int]) -> dict[str, torch.Tensor]:
        samples = [self._sample(step * self.global_batch + j) for j in slots]

        def img(x: np.ndarray) -> torch.Tensor:
            t = torch.from_numpy(np.ascontiguousarray(x)).float()
            if t.ndim == 2:
                t = t[..., None].expand(-1, -1, 3)
            scale = 65535.0 if x.dtype == np.uint16 else (255.0 if x.dtype == np.uint8 or t.max() > 1.5 else 1.0)
            return t.permute(2, 0, 1) / scale

        out = {
            "img1": torch.stack([img(s["img1"]) for s in samples]),
            "img2": torch.stack([img(s["img2"]) for s in samples]),
            "flow": torch.stack([torch.from_numpy(np.ascontiguousarray(s["flow"], np.float32)).permute(2, 0, 1)
                                 for s in samples]),
            "valid": torch.stack([torch.from_numpy(np.ascontiguousarray(s["valid"], bool)) for s in samples]),
        }
        if not torch.isfinite(out["flow"][out["valid"].unsqueeze(1).expand_as(out["flow"])]).all():
            raise InputError(f"step {step}: the target flow has NaN/inf at valid pixels; check the dataset")
        out["flow"] = torch.nan_to_num(out["flow"], nan=0.0, posinf=0.0, neginf=0.0)
        return out


def heldout_pairs(n: int, height: int, width: int, seed: int = 12345, **options: Any) -> list:
    """Synthetic pairs never seen in training (training seeds use another stream)."""
    from ..data.synthetic import generate_pair

    return [generate_pair(height, width, np.random.default_rng([seed, 3, k]), **options) for k in range(n)]


# ---------------------------------------------------------------------------------------------
# the loop


@dataclass
class TrainResult:
    step: int
    history: list[dict[str, float]] = field(default_factory=list)
    final_path: str | None = None


def _resume_path(cfg: TrainConfig) -> str | None:
    if cfg.resume is False or cfg.resume is None:
        return None
    if cfg.resume is True:
        return common.latest_checkpoint(cfg.out)  # None: nothing yet, start fresh
    if not os.path.isfile(cfg.resume):
        raise CheckpointError(f"--resume {cfg.resume!r}: no such checkpoint file")
    return cfg.resume


def _write_history(path: str, history: list[dict[str, float]]) -> None:
    with atomic_open(path, "w") as fh:
        json.dump(history, fh)


def train(cfg: TrainConfig) -> TrainResult:
    """Run (or resume) a training run; see the module docstring.  Returns the loss history."""
    cfg.validate()
    if cfg.threads:
        torch.set_num_threads(int(cfg.threads))
    info = common.init_distributed(cfg.device)
    try:
        return _train(cfg, info)
    finally:
        common.cleanup_distributed()


def _train(cfg: TrainConfig, info: common.DistInfo) -> TrainResult:
    common.seed_everything(cfg.seed + info.rank)
    model = build_model(cfg.model, **cfg.model_config()).to(info.device)
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if name.endswith("bias") or p.ndim == 1 else decay).append(p)
    optimizer = torch.optim.Adam([{"params": decay, "weight_decay": cfg.weight_decay},
                                  {"params": no_decay, "weight_decay": 0.0}],
                                 lr=cfg.lr, betas=(0.9, 0.999))
    schedule = common.step_decay_schedule(cfg.lr, cfg.decay_start, cfg.decay_every, 0.5,
                                          cfg.warmup, cfg.warmup_start_lr)
    step, history = 0, []
    run_settings = {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(cfg).items()}
    run_settings["world_size"] = info.world_size
    path = _resume_path(cfg)
    if cfg.init and path is None:
        # fine-tuning: weights only; optimizer, step and schedule start fresh
        from ..checkpoint import load_checkpoint, load_state_into

        ckpt = load_checkpoint(cfg.init, cfg.model)
        if ckpt.config != model.config:
            raise CheckpointError(f"--init {cfg.init!r} holds a {cfg.model} with config {ckpt.config}, but this run "
                                  f"builds {model.config}; pass the same --width/--batch-norm")
        load_state_into(model, ckpt.model, source=f"--init {cfg.init!r}")
    if path is not None:
        step, user = common.load_training_state(path, cfg.model, model, optimizer, config=model.config)
        old = user.get("settings", {})
        changed = {k: (old.get(k), run_settings[k]) for k in _RESUME_FIXED + ("world_size",)
                   if k in old and old.get(k) != run_settings[k]}
        if changed:
            raise CheckpointError(f"cannot resume from {path!r}: these settings differ (checkpoint vs now): "
                                  f"{changed}; resume with the same settings or start a new --out folder")
        history = list(user.get("history", []))
    ddp_model = common.wrap_ddp(model, info)
    stream = SampleStream(cfg, cfg.batch_size * info.world_size)
    slots = common.shard(list(range(cfg.batch_size * info.world_size)), info)
    bar = common.Progress(cfg.steps, start=step, desc=f"train {cfg.model}", enabled=cfg.progress and info.is_main)
    tb = common.ScalarLogger(cfg.tensorboard, enabled=info.is_main)
    if info.is_main:
        os.makedirs(cfg.out, exist_ok=True)

    def checkpoint(at: int) -> None:
        if info.is_main:
            common.save_training_state(common.checkpoint_path(cfg.out, at), cfg.model, model.config, model,
                                       optimizer, at, extra={"history": history, "settings": run_settings})
            common.prune_checkpoints(cfg.out, cfg.keep)
            _write_history(os.path.join(cfg.out, "history.json"), history)
        common.barrier(info)

    model.train()
    t0 = time.time()
    while step < cfg.steps:
        lr = schedule(step)
        common.set_lr(optimizer, lr)
        batch = {k: v.to(info.device) for k, v in stream.batch(step, slots).items()}
        a, b = model.normalise(batch["img1"], batch["img2"])
        preds = ddp_model(a, b)
        loss, _ = multiscale_epe(preds, batch["flow"], batch["valid"], div_flow=model.div_flow)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        epe = full_resolution_epe(preds[0], batch["flow"], batch["valid"], model.div_flow)
        loss_all = float(common.all_reduce_mean(loss.detach().cpu(), info))
        epe_all = float(common.all_reduce_mean(epe.cpu(), info))
        step += 1
        history.append({"step": step, "loss": loss_all, "epe": epe_all, "lr": lr})
        bar.update(loss=loss_all, epe=epe_all)
        tb.scalars(step, loss=loss_all, epe=epe_all, lr=lr)
        if step % cfg.ckpt_every == 0 or step == cfg.steps:
            checkpoint(step)
    bar.close()
    tb.close()
    final = None
    if info.is_main:
        final = os.path.join(cfg.out, "final.safetensors")
        from ..checkpoint import save_checkpoint

        save_checkpoint(final, cfg.model, model.config, model.state_dict(),
                        {"step": step, "train_seconds": time.time() - t0}, half=cfg.half_final)
    common.barrier(info)
    return TrainResult(step=step, history=history, final_path=final)


# ---------------------------------------------------------------------------------------------
# command line


def _add_arguments(p: argparse.ArgumentParser, model: str) -> None:
    d = TrainConfig(model=model)
    p.add_argument("--data", choices=DATA_KINDS, default=d.data, help="training data (default: synthetic)")
    p.add_argument("--root", help="dataset folder (chairs, sintel, kitti)")
    p.add_argument("--split", default=d.split, help="dataset split (default: training)")
    p.add_argument("--pass", dest="sintel_pass", default=d.sintel_pass, choices=("clean", "final"))
    p.add_argument("--year", dest="kitti_year", type=int, default=d.kitti_year, choices=(2012, 2015))
    p.add_argument("--crop", type=int, nargs=2, metavar=("H", "W"), default=list(d.crop))
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="per process")
    p.add_argument("--steps", type=int, default=d.steps)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--decay-start", type=int, default=d.decay_start)
    p.add_argument("--decay-every", type=int, default=d.decay_every)
    p.add_argument("--warmup", dest="warmup_steps", type=int, default=None,
                   help="linear LR warm-up steps (default: 10000 for flownetc, 0 for flownets)")
    p.add_argument("--warmup-start-lr", type=float, default=d.warmup_start_lr)
    p.add_argument("--weight-decay", type=float, default=d.weight_decay)
    p.add_argument("--width", type=float, default=d.width, help="channel multiplier (1 = published)")
    p.add_argument("--batch-norm", action="store_true")
    p.add_argument("--no-augment", dest="augment", action="store_false")
    p.add_argument("--max-motion", type=float, default=d.max_motion, help="synthetic: largest motion, px")
    p.add_argument("--motion-min", type=float, default=d.motion_min,
                   help="synthetic: draw each pair's max motion in [motion-min, 1]·max-motion (default 1: fixed)")
    p.add_argument("--noise", type=float, default=d.noise, help="synthetic: image noise, grey levels")
    p.add_argument("--illumination", type=float, default=d.illumination, help="synthetic: brightness change")
    p.add_argument("--synthetic-pairs", type=int, default=None, metavar="N",
                   help="synthetic: cycle N fixed pairs instead of fresh ones every step")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--out", default=f"runs/{model}", help="run folder (checkpoints, history.json, final.safetensors)")
    p.add_argument("--ckpt-every", type=int, default=d.ckpt_every)
    p.add_argument("--keep", type=int, default=d.keep, help="checkpoints to keep (0 = all)")
    p.add_argument("--resume", nargs="?", const=True, default=False, metavar="CKPT",
                   help="resume from CKPT, or from the newest checkpoint in --out")
    p.add_argument("--init", metavar="WEIGHTS", help="start from these weights (fine-tuning)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads per process")
    p.add_argument("--device", default=d.device, choices=("auto", "cpu", "cuda"))
    p.add_argument("--tensorboard", metavar="DIR", help="write TensorBoard scalars (needs tensorboard)")
    p.add_argument("--no-progress", dest="progress", action="store_false")
    p.add_argument("--half-final", action="store_true", help="store final.safetensors in float16")


def _run(args: argparse.Namespace) -> int:
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    cfg = TrainConfig(**{k: v for k, v in vars(args).items() if k in names})
    cfg.crop = tuple(cfg.crop)
    res = train(cfg)
    if res.final_path:
        last = res.history[-1] if res.history else {}
        print(f"trained {cfg.model} to step {res.step}: loss {last.get('loss', float('nan')):.4f}, "
              f"EPE {last.get('epe', float('nan')):.3f} px; weights {res.final_path}")
    return 0


def register_cli(subparsers: argparse._SubParsersAction) -> None:
    """`flowmatch train flownets|flownetc ...`"""
    for model, desc in (("flownets", "FlowNetS"), ("flownetc", "FlowNetC")):
        p = subparsers.add_parser(model, help=f"train {desc}")
        _add_arguments(p, model)
        p.set_defaults(func=_run, model=model)
