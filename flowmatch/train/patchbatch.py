"""Training the PatchBatch descriptor network: `flowmatch train patchbatch ...`.

    flowmatch train patchbatch --out runs/pb                  # sensible defaults: photo data, hard negatives
    flowmatch train patchbatch --out runs/pb --resume         # continue the newest checkpoint exactly

Data (``--data``, repeatable, ``NAME[:ARG][@WEIGHT]``, see flowmatch.data.sources): by default flying
photos and photo pairs (real photographs under exact motions) from ``--photos`` (default
../shared/data/photos).  Every step draws ``--frames-per-batch`` fresh pairs and cuts ``--batch``
triplets from them: positive at the ground-truth match, negative 1-8 px from it (or, for
``--far-negatives`` of them, anywhere farther).  ``--mining hardest`` (default) replaces each sampled
negative by the nearest other positive of the batch when that one is nearer (in-batch hard-negative
mining, HardNet-style), skipping positives of the same pair within ``--neg-min`` px (true matches).
All six losses of flowmatch.losses take the mined triplets.

Judged every ``--eval-every`` steps on fixed triplets of the held-out real pairs
(flowmatch.data.sources.HELD_OUT_REAL) and of validation photo pairs: FPR95 and the hardest-negative
share.  The run folder gets ``config.json`` and ``history.json`` from the start, a checkpoint after
``--first-ckpt`` steps, then every ``--ckpt-every`` steps or ``--ckpt-minutes`` minutes, on SIGINT /
SIGTERM (exit 130 / 143) and at the end; fp16 weight snapshots every ``--snapshot-every`` steps in
``snapshots/`` for a learning curve (benchmarks/bench_descriptor_pipeline.py scores them in the pipeline).
Precision: ``--precision auto`` uses bf16 autocast only on CPUs with native bf16 (flowmatch.precision).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from dataclasses import dataclass, field
from typing import Any

import torch

from .._atomic import atomic_open
from .._outputs import check_outputs, folder
from ..data.patch_pairs import check_negative_shares
from ..errors import InputError
from ..losses import LOSSES, triplet_batch_loss
from ..image import INPUT_NORMS
from ..models.patchbatch import VARIANTS, PatchBatchNet
from ..precision import PRECISIONS, autocast, resolve_precision
from . import common
from .config_cli import add_config_arguments, config_from_args
from .descriptor_scores import descriptor_scores, embed, evaluate, fpr_at_recall, hardest_negative_share  # noqa: F401
from .patchbatch_data import TripletBatches, heldout_sets
from .with_raw import with_raw

KIND = "patchbatch"
__all__ = ["PatchBatchTrainConfig", "train", "mine_hardest", "register_cli"]


@dataclass
class PatchBatchTrainConfig:
    """Every setting of a descriptor training run (the CLI options are built from these fields)."""
    data: list = field(default_factory=lambda: ["flying-photos@0.6", "photos@0.4"],
                       metadata={"help": "training source NAME[:ARG][@WEIGHT] (flowmatch.data.sources)"})
    photos: str | None = field(default=None, metadata={"help": "photo folder (default ../shared/data/photos)"})
    variant: str = field(default="dense", metadata={"choices": VARIANTS})
    bn: str | None = field(default=None, metadata={"choices": ("unit", "channel"),
                                                   "help": "batch norm kind (default: unit for paper, channel for dense)"})
    width: float = field(default=0.5, metadata={"help": "channel multiplier (1.0 = the paper's 512-D net)"})
    input_norm: str = field(default="global", metadata={"choices": INPUT_NORMS,
                                                        "help": "the net's input: the frame normalised by its mean/std "
                                                                "(global) or then by its local contrast (local: "
                                                                "flowmatch.image.local_normalize)"})
    loss: str = field(default="cent-drlim-sd", metadata={"choices": tuple(LOSSES)})
    margin: float = field(default=25.0, metadata={"help": "loss margin (distance units of the descriptor; "
                                                          "about 1 with --raw-weight, whose descriptors have norm 1)"})
    raw_weight: float = field(default=0.0, metadata={"help": "train for the combined descriptor: the loss sees "
                                                             "[√(1-w)·n/|n|, √w·raw 9×9] (flowmatch.train.with_raw; 0 = the net alone)"})
    init: str | None = field(default=None, metadata={"help": "start from these weights (a patchbatch checkpoint or "
                                                             "exported weights; fine-tuning: optimizer and step start fresh)"})
    lam: float = field(default=0.8, metadata={"help": "λ of CENT-DrLIM+SD"})
    mining: str = field(default="hardest", metadata={"choices": ("none", "hardest"),
                                                     "help": "in-batch hard-negative mining"})
    neg_min: float = field(default=1.0, metadata={"help": "near negatives at least this far from the match, px"})
    neg_max: float = field(default=8.0, metadata={"help": "and at most this far, px"})
    far_negatives: float = field(default=0.1, metadata={"help": "share of random far negatives"})
    boundary_negatives: float = field(default=0.0, metadata={
        "help": "share of motion-boundary negatives: anchors with another motion in their context, negative "
                "where that motion would carry them (flowmatch.data.patch_pairs)"})
    augment: bool = field(default=True, metadata={"help": "per-patch photometric augmentation"})
    batch: int = field(default=128, metadata={"help": "triplets per step"})
    frames_per_batch: int = field(default=4, metadata={"help": "fresh pairs drawn per step"})
    size: tuple = field(default=(256, 256), metadata={"type": int, "metavar": ("H", "W"),
                                                      "help": "size of generated pairs"})
    steps: int = field(default=6000, metadata={"help": "training steps (about 1 h at width 0.5 on 2 cores)"})
    lr: float = field(default=1e-3)
    warmup: int | None = field(default=None, metadata={"type": int, "help": "warm-up steps (default 3 %% of --steps)"})
    time_budget: float = field(default=0.0, metadata={"help": "stop after this many minutes (0 = no limit)"})
    precision: str = field(default="auto", metadata={"choices": PRECISIONS})
    channels_last: bool = field(default=True, metadata={"help": "channels_last memory format (faster oneDNN convs)"})
    workers: int = field(default=1, metadata={"help": "data worker processes (0 = in the training process)"})
    seed: int = field(default=0)
    eval_every: int = field(default=500)
    eval_size: int = field(default=2048, metadata={"help": "triplets per held-out set"})
    first_ckpt: int = field(default=50, metadata={"help": "first checkpoint after this many steps"})
    ckpt_every: int = field(default=500)
    ckpt_minutes: float = field(default=5.0, metadata={"help": "also checkpoint after this many minutes"})
    snapshot_every: int = field(default=1000, metadata={"help": "fp16 weight snapshots for the learning curve (0 = none)"})
    keep: int = field(default=2, metadata={"help": "checkpoints kept in --out"})
    out: str = field(default="runs/patchbatch", metadata={"help": "run folder"})
    resume: bool = field(default=False, metadata={"help": "continue from the newest checkpoint in --out"})
    export: str | None = field(default=None, metadata={"help": "write the final fp16 weights here"})
    threads: int | None = field(default=None, metadata={"type": int, "help": "torch threads (default: all cores)"})
    progress: bool = field(default=True, metadata={"help": "progress bar with ETA"})

    def validate(self) -> None:
        for name in ("batch", "steps", "eval_every", "ckpt_every", "frames_per_batch", "first_ckpt"):
            if int(getattr(self, name)) < 1:
                raise InputError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if self.batch < 2:
            raise InputError(f"--batch must be >= 2, got {self.batch}")
        for name in ("lr", "margin"):
            v = float(getattr(self, name))
            if not (v > 0 and v < float("inf")):
                raise InputError(f"--{name} must be a positive finite number, got {v}")
        if not 0 <= self.raw_weight < 1:
            raise InputError(f"--raw-weight must be in [0, 1), got {self.raw_weight}")
        if self.raw_weight and self.input_norm != "global":
            # with_raw cuts the raw part from the training patches, which then would not be the frame pass's
            raise InputError("--raw-weight needs --input-norm global")
        # checked here too, not only by the sampler: batches are first cut in worker processes
        check_negative_shares(self.far_negatives, self.boundary_negatives, ("--far-negatives", "--boundary-negatives"))
        if not 0 <= self.lam <= 1:
            raise InputError(f"--lam must be in [0, 1], got {self.lam}")
        if self.workers < 0 or (self.threads is not None and self.threads < 1):
            raise InputError("--workers must be >= 0 and --threads >= 1")
        if len(self.size) != 2 or min(self.size) < 96:
            raise InputError(f"--size must be two values >= 96, got {self.size}")
        # the exported weights must not land on the photos the run reads
        check_outputs({"--export": self.export}, {"--photos": folder(self.photos)})

    # Settings a resumed run must share with its checkpoints (the batches and the model depend on them).
    FIXED = ("data", "variant", "bn", "width", "input_norm", "batch", "frames_per_batch", "size", "seed", "neg_min",
             "neg_max", "far_negatives", "boundary_negatives", "augment", "raw_weight", "init")


def mine_hardest(da: torch.Tensor, dp: torch.Tensor, dn: torch.Tensor, frame: torch.Tensor, xy2: torch.Tensor,
                 exclude_px: float) -> torch.Tensor:
    """In-batch hard negatives: for anchor i the nearest positive p_j (j ≠ i, and not a positive of the
    same pair within exclude_px of i's match, which would be a true match) replaces its sampled
    negative when it is nearer than that negative.  B×D descriptors; frame B, xy2 B×2 (px) -> B×D."""
    d = torch.cdist(da.float(), dp.float())
    same = (frame[:, None] == frame[None, :]) & (torch.cdist(xy2, xy2) < exclude_px)
    d = d.masked_fill(same | torch.eye(len(d), dtype=torch.bool), float("inf"))
    dmin, j = d.min(1)
    harder = dmin < torch.linalg.vector_norm(da.float() - dn.float(), dim=1)
    return torch.where(harder[:, None], dp[j], dn)


def _loss_params(cfg: PatchBatchTrainConfig) -> dict[str, float]:
    if cfg.loss == "cent-drlim-sd":
        return {"margin": cfg.margin, "lam": cfg.lam}
    if cfg.loss == "contrastive":
        return {"neg_margin": cfg.margin}
    return {"margin": cfg.margin}


def _loader(cfg: PatchBatchTrainConfig, patch_size: int, start: int) -> Any:
    data = TripletBatches(cfg.data, patch_size, cfg.batch, cfg.frames_per_batch, tuple(cfg.size), cfg.seed,
                          cfg.steps, photos=cfg.photos, neg_min=cfg.neg_min, neg_max=cfg.neg_max,
                          far_negatives=cfg.far_negatives, boundary_negatives=cfg.boundary_negatives,
                          augment=cfg.augment, input_norm=cfg.input_norm)
    return common.step_batches(data, start, cfg.steps, cfg.workers)


class _RunFolder:
    """config.json, history.json and checkpoints of one run folder."""

    def __init__(self, cfg: PatchBatchTrainConfig):
        self.cfg, self.out = cfg, cfg.out
        os.makedirs(os.path.join(self.out, "snapshots"), exist_ok=True)
        self.settings = {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(cfg).items()}
        with atomic_open(os.path.join(self.out, "config.json"), "w") as fh:
            json.dump(self.settings, fh, indent=1)

    def history(self, rows: list[dict[str, Any]]) -> None:
        with atomic_open(os.path.join(self.out, "history.json"), "w") as fh:
            json.dump(rows, fh)

    def check_resume(self, old: dict[str, Any], path: str) -> None:
        changed = {k: (old.get(k), self.settings[k]) for k in PatchBatchTrainConfig.FIXED
                   if k in old and old[k] != self.settings[k]}
        if changed:
            from ..errors import CheckpointError
            raise CheckpointError(f"cannot resume from {path!r}: these settings differ (checkpoint vs now): "
                                  f"{changed}; resume with the same settings or use a new --out folder")


def train(cfg: PatchBatchTrainConfig) -> dict[str, float]:
    """Run (or resume) a descriptor training run; returns the last held-out scores."""
    cfg.validate()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    precision = resolve_precision(cfg.precision, "cpu")
    common.seed_everything(cfg.seed)
    net = PatchBatchNet(cfg.variant, bn=cfg.bn, width=cfg.width, input_norm=cfg.input_norm)
    if cfg.channels_last:
        net = net.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    run = _RunFolder(cfg)
    step, elapsed0, history = 0, 0.0, []
    latest = common.latest_checkpoint(cfg.out) if cfg.resume else None
    if cfg.init and not latest:  # fine-tuning: weights only
        # the input normalisation may change on fine-tuning (the weights fit either; the run adapts them)
        common.load_init_weights(cfg.init, KIND, net, net.config(), "--variant/--width/--bn",
                                 ignore=("input_norm",))
    if latest:
        step, user = common.load_training_state(latest, KIND, net, opt, config=net.config())
        run.check_resume(user.get("settings", {}), latest)
        elapsed0, history = float(user.get("elapsed", 0.0)), list(user.get("history", []))
        print(f"resumed from step {step} ({latest})", flush=True)
    sets = heldout_sets(net.patch_size, cfg.eval_size, photos=cfg.photos, input_norm=cfg.input_norm)
    schedule = common.fitted_schedule(cfg.lr, cfg.steps, cfg.warmup)
    params = _loss_params(cfg)
    budget = cfg.time_budget * 60 if cfg.time_budget else float("inf")
    t0 = time.time() - elapsed0
    last_ckpt = time.time()
    scores: dict[str, float] = dict(history[-1]) if history else {}

    def save() -> None:
        nonlocal last_ckpt
        user = {"elapsed": time.time() - t0, "history": history, "settings": run.settings, "scores": scores}
        common.save_training_state(common.checkpoint_path(cfg.out, step), KIND, net.config(), net, opt, step,
                                   extra=user)
        common.prune_checkpoints(cfg.out, cfg.keep)
        run.history(history)
        last_ckpt = time.time()

    def score() -> None:
        nonlocal scores
        scores = {"step": step, "seconds": round(time.time() - t0, 1), **evaluate(net, sets)}
        if cfg.raw_weight:
            scores.update(evaluate(net, sets, raw_weight=cfg.raw_weight, prefix="combined:"))
        history.append({**scores, "loss": bar.averages.get("loss", float("nan"))})
        bar.write(" ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in scores.items()))

    run.history(history)
    bar = common.Progress(cfg.steps, start=step, desc=f"patchbatch-{cfg.variant}", enabled=cfg.progress)
    with common.GracefulStop() as stop:
        batches = _loader(cfg, net.patch_size, step)
        while step < cfg.steps and time.time() - t0 < budget and not stop.requested:
            # With a time budget the schedule follows whichever is further along: steps or time.
            lr = schedule(max(step, int(cfg.steps * (time.time() - t0) / budget)) if budget < float("inf") else step)
            common.set_lr(opt, lr)
            try:
                b = next(batches)
            except RuntimeError:
                if stop.requested:  # a worker ended by the same signal: checkpoint what we have
                    break
                raise
            n = b["anchor"].shape[0]
            x = torch.cat([b["anchor"], b["positive"], b["negative"]])
            if cfg.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast("cpu", precision):
                d = net(x).float()  # one BN batch for all three
            if cfg.raw_weight:
                d = with_raw(d, x, cfg.raw_weight)
            da, dp, dn = d[:n], d[n:2 * n], d[2 * n:]
            if cfg.mining == "hardest":
                dn = mine_hardest(da, dp, dn, b["frame"], b["xy2"], cfg.neg_min)
            loss = triplet_batch_loss(cfg.loss, da, dp, dn, **params)
            if not torch.isfinite(loss):
                raise InputError(f"step {step}: the loss is {loss.item()}; lower --lr or check the data")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            bar.update(loss=loss.item(), lr=lr)
            if step % cfg.eval_every == 0:
                score()
            if cfg.snapshot_every and step % cfg.snapshot_every == 0:
                _export(net, os.path.join(cfg.out, "snapshots", f"step_{step:08d}.safetensors"), cfg, step, scores)
            if (step == cfg.first_ckpt or step % cfg.ckpt_every == 0
                    or time.time() - last_ckpt > cfg.ckpt_minutes * 60):
                save()
        bar.close()
        if not stop.requested and step % cfg.eval_every:
            score()
        save()
        if stop.requested:
            print(f"stopped by signal {stop.signal} at step {step}; checkpoint written, --resume continues",
                  flush=True)
            raise SystemExit(stop.exit_code)
    if cfg.export:
        _export(net, cfg.export, cfg, step, scores)
        print(f"wrote {cfg.export} ({os.path.getsize(cfg.export) / 2**20:.2f} MiB)")
    return scores


def _export(net: PatchBatchNet, path: str, cfg: PatchBatchTrainConfig, step: int, scores: dict[str, Any]) -> None:
    """fp16 weights of `net` (eval mode, contiguous) for flowmatch.descriptors."""
    from ..checkpoint import save_checkpoint

    state = {k: v.contiguous() for k, v in net.state_dict().items()}
    save_checkpoint(path, KIND, net.config(), state,
                    {"scores": scores, "step": step, "loss": cfg.loss, "data": list(cfg.data),
                     "mining": cfg.mining}, half=True)


def register_cli(sub: argparse._SubParsersAction) -> None:
    """Add `flowmatch train patchbatch` (options from PatchBatchTrainConfig)."""
    p = sub.add_parser("patchbatch", help="train the PatchBatch descriptor network",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_arguments(p, PatchBatchTrainConfig)

    def run(args: argparse.Namespace) -> int:
        train(config_from_args(PatchBatchTrainConfig, args))
        return 0

    p.set_defaults(func=run)
