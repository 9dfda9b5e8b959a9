"""Training FlowNetS / FlowNetC: `flowmatch train flownets|flownetc ...`.

    flowmatch train flownetc --out runs/c                                  # flying photos, ~1.4 h here
    flowmatch train flownetc --data flying-photos-final --init runs/c/final.safetensors --steps 1000 \\
        --lr 5e-5 --out runs/c_final                                      # Sintel-final-like fine-tuning
    flowmatch train flownetc --out runs/c --resume                         # continue the newest checkpoint
    flowmatch train flownetc --device cuda --workers 12 --batch-size 16 --crop 320 448 --steps 60000 --out runs/g
    torchrun --nproc_per_node 2 -m flowmatch train flownets --data synthetic ...

Data (``--data``, repeatable, ``NAME[:ARG][@WEIGHT]``, flowmatch.data.sources; default flying-photos)
with FlowNet's geometric and photometric augmentations, made in ``--workers`` processes
(flowmatch.train.flownet_data).  Loss: the multiscale EPE (flowmatch.train.flownet_loss); Adam, a
warm-up + cosine schedule fitted to ``--steps``.  ``--precision auto`` runs bf16 autocast where the
device has native bf16 (CUDA GPUs with bf16, AMX / AVX-512-BF16 CPUs), fp32 elsewhere; master weights
and Adam state stay fp32.  The run folder gets config.json and history.json at the start (history:
one row per step, held-out real EPE every ``--eval-every`` steps), a checkpoint after ``--first-ckpt``
steps, then every ``--ckpt-every`` steps or ``--ckpt-minutes``, on SIGINT / SIGTERM (exit 130 / 143)
and at the end, then final.safetensors.

Determinism: the samples of step s depend on (seed, s) alone, so a run resumed from a checkpoint
(model, optimizer, step, RNG state, history) continues exactly, and W processes with batch b follow
the curve of one process with batch W·b (up to float rounding).
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
from ..errors import CheckpointError, InputError
from ..models.flownet import build_model
from ..precision import autocast, resolve_precision
from . import common
from .config_cli import add_config_arguments, config_from_args
from .flownet_config import RESUME_FIXED, FlowNetTrainConfig, TrainConfig, parse_device
from .flownet_data import FlowBatches, heldout_pairs, images_to_float, make_loader, resolve_specs
from .flownet_loss import MULTISCALE_WEIGHTS, full_resolution_epe, multiscale_epe

__all__ = ["FlowNetTrainConfig", "TrainConfig", "TrainResult", "train", "register_cli", "FlowBatches",
           "heldout_pairs", "multiscale_epe", "full_resolution_epe", "MULTISCALE_WEIGHTS"]


@dataclass
class TrainResult:
    """What a run ended with: its step, loss history, final weights (None when stopped by a signal)."""
    step: int
    history: list[dict[str, float]] = field(default_factory=list)
    final_path: str | None = None
    stopped_by: int | None = None      # the signal number when SIGINT/SIGTERM ended the run early

    @property
    def exit_code(self) -> int:
        return 128 + self.stopped_by if self.stopped_by else 0


def _setup_device(cfg: FlowNetTrainConfig) -> common.DistInfo:
    kind, index = parse_device(cfg.device)
    info = common.init_distributed(kind)
    if index is not None and not info.distributed:
        if index >= torch.cuda.device_count():
            raise InputError(f"--device {cfg.device}: only {torch.cuda.device_count()} CUDA device(s) visible")
        info = dataclasses.replace(info, device=torch.device("cuda", index))
        torch.cuda.set_device(info.device)
    return info


def default_workers(device: torch.device) -> int:
    """1 data worker on a CPU (the cores train), up to 8 feeding a GPU."""
    return 1 if device.type == "cpu" else max(1, min(8, (os.cpu_count() or 2) - 1))


def train(cfg: FlowNetTrainConfig) -> TrainResult:
    """Run (or resume) a training run; see the module docstring."""
    cfg.validate()
    cfg.data = resolve_specs(cfg.data, cfg.root, cfg.kitti_year)
    if cfg.threads:
        torch.set_num_threads(int(cfg.threads))
    info = _setup_device(cfg)
    try:
        return _Run(cfg, info).loop()
    finally:
        common.cleanup_distributed()


class _Run:
    """One training process: model, optimizer, run folder, checkpoints."""

    def __init__(self, cfg: FlowNetTrainConfig, info: common.DistInfo):
        self.cfg, self.info = cfg, info
        self.precision = resolve_precision(cfg.precision, info.device)
        common.seed_everything(cfg.seed + info.rank)
        self.model = build_model(cfg.model, **cfg.model_config()).to(info.device)
        if cfg.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        decay, no_decay = [], []
        for name, p in self.model.named_parameters():
            (no_decay if name.endswith("bias") or p.ndim == 1 else decay).append(p)
        self.opt = torch.optim.Adam([{"params": decay, "weight_decay": cfg.weight_decay},
                                     {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr)
        self.settings = {**cfg.settings(), "world_size": info.world_size}
        self.step, self.elapsed0, self.history = 0, 0.0, []
        self._restore()
        if info.is_main:  # the run folder, config.json and history.json from the start
            os.makedirs(cfg.out, exist_ok=True)
            with atomic_open(os.path.join(cfg.out, "config.json"), "w") as fh:
                json.dump({**self.settings, "precision_resolved": self.precision, "device_resolved": str(info.device)},
                          fh, indent=1)
            self._write_history()

    def _restore(self) -> None:
        cfg = self.cfg
        path = self._resume_path()
        if cfg.init and path is None:  # fine-tuning: weights only; optimizer, step and schedule start fresh
            common.load_init_weights(cfg.init, cfg.model, self.model, self.model.config, "--width/--batch-norm")
        if path is None:
            return
        self.step, user = common.load_training_state(path, cfg.model, self.model, self.opt, config=self.model.config)
        old = user.get("settings", {})
        changed = {k: (old.get(k), self.settings[k]) for k in RESUME_FIXED + ("world_size",)
                   if k in old and old.get(k) != self.settings[k]}
        if changed:
            raise CheckpointError(f"cannot resume from {path!r}: these settings differ (checkpoint vs now): "
                                  f"{changed}; resume with the same settings or start a new --out folder")
        self.history, self.elapsed0 = list(user.get("history", [])), float(user.get("elapsed", 0.0))
        if self.info.is_main:
            print(f"resumed from step {self.step} ({path})", flush=True)

    def _resume_path(self) -> str | None:
        r = self.cfg.resume
        if r is False or r is None:
            return None
        if r is True:
            return common.latest_checkpoint(self.cfg.out)  # None: nothing yet, start fresh
        if not os.path.isfile(r):
            raise CheckpointError(f"--resume {r!r}: no such checkpoint file")
        return r

    def _write_history(self) -> None:
        with atomic_open(os.path.join(self.cfg.out, "history.json"), "w") as fh:
            json.dump(self.history, fh)

    def save(self) -> None:
        if self.info.is_main:
            cfg = self.cfg
            user = {"history": self.history, "settings": self.settings, "elapsed": time.time() - self.t0}
            common.save_training_state(common.checkpoint_path(cfg.out, self.step), cfg.model, self.model.config,
                                       self.model, self.opt, self.step, extra=user)
            common.prune_checkpoints(cfg.out, cfg.keep)
            self._write_history()
        self.last_ckpt = time.time()
        common.barrier(self.info)

    def _batch(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
        dev, cl = self.info.device, self.cfg.channels_last
        b = {k: v.to(dev, non_blocking=True) for k, v in batch.items()}
        return images_to_float(b["img1"], cl), images_to_float(b["img2"], cl), b["flow"], b["valid"]

    def train_step(self, ddp_model: torch.nn.Module, batch: dict[str, torch.Tensor], lr: float) -> dict[str, float]:
        """One optimizer step on `batch`; returns the loss and full-resolution EPE averaged over ranks."""
        common.set_lr(self.opt, lr)
        img1, img2, flow, valid = self._batch(batch)
        a, b = self.model.normalise(img1, img2)
        with autocast(self.info.device, self.precision):
            preds = ddp_model(a, b)
        loss, _ = multiscale_epe([p.float() for p in preds], flow, valid, div_flow=self.model.div_flow)
        if not torch.isfinite(loss):
            raise InputError(f"step {self.step}: the loss is {loss.item()}; lower --lr or check the data")
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        epe = full_resolution_epe(preds[0].float(), flow, valid, self.model.div_flow)
        return {"loss": float(common.all_reduce_mean(loss.detach().cpu(), self.info)),
                "epe": float(common.all_reduce_mean(epe.cpu(), self.info))}

    def _stop_everywhere(self, stop: common.GracefulStop) -> bool:
        # A signal that reached one rank stops them all at the same step (no rank left waiting).
        if not self.info.distributed:
            return stop.requested
        return float(common.all_reduce_mean(float(stop.requested), self.info)) > 0

    def loop(self) -> TrainResult:
        cfg, info = self.cfg, self.info
        workers = cfg.workers if cfg.workers is not None else default_workers(info.device)
        slots = common.shard(list(range(cfg.batch_size * info.world_size)), info)
        data = FlowBatches(cfg.data, cfg.crop, slots, cfg.seed, cfg.steps, augment=cfg.augment,
                           gen_scale=cfg.gen_scale, photos=cfg.photos, split=cfg.split, sintel_pass=cfg.sintel_pass)
        heldout = []
        if cfg.eval_every and info.is_main:
            from .flownet_eval import heldout_real
            heldout = heldout_real()
        schedule = common.fitted_schedule(cfg.lr, cfg.steps, cfg.warmup)
        budget = cfg.time_budget * 60 if cfg.time_budget else float("inf")
        if info.distributed and info.device.type == "cuda":  # one set of BN statistics over all ranks
            self.model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
        ddp_model = common.wrap_ddp(self.model, info)
        bar = common.Progress(cfg.steps, start=self.step, desc=f"train {cfg.model}", enabled=cfg.progress and info.is_main)
        tb = common.ScalarLogger(cfg.tensorboard, enabled=info.is_main)
        self.t0, self.last_ckpt = time.time() - self.elapsed0, time.time()
        batches = make_loader(data, self.step, workers, pin_memory=info.device.type == "cuda")
        self.model.train()
        stopped = None
        with common.GracefulStop() as stop:
            while self.step < cfg.steps and time.time() - self.t0 < budget:
                if self._stop_everywhere(stop):
                    stopped = stop.signal or 15
                    break
                # With a time budget the schedule follows whichever is further along: steps or time.
                at = self.step if budget == float("inf") else max(self.step, int(cfg.steps * (time.time() - self.t0) / budget))
                lr = schedule(at)
                row = self.train_step(ddp_model, next(batches), lr)
                self.step += 1
                row = {"step": self.step, **row, "lr": lr}
                if heldout and (self.step % cfg.eval_every == 0 or self.step == cfg.steps):
                    row.update(self._evaluate(heldout))
                    bar.write(" ".join(f"{k} {v:.4g}" for k, v in row.items()))
                self.history.append(row)
                bar.update(loss=row["loss"], epe=row["epe"], lr=lr)
                tb.scalars(self.step, **{k: v for k, v in row.items() if k != "step"})
                if (self.step == cfg.first_ckpt or self.step % cfg.ckpt_every == 0 or self.step == cfg.steps
                        or time.time() - self.last_ckpt > cfg.ckpt_minutes * 60):
                    self.save()
            bar.close()
            tb.close()
            del batches  # ends the worker processes
            if stopped is not None or self.step < cfg.steps:
                self.save()
            if stopped is not None:
                if info.is_main:
                    print(f"stopped by signal {stopped} at step {self.step}; checkpoint written, --resume continues",
                          flush=True)
                return TrainResult(self.step, self.history, None, stopped)
        return TrainResult(self.step, self.history, self._final(), None)

    def _evaluate(self, heldout: list[Any]) -> dict[str, float]:
        from .flownet_eval import evaluate_real
        return evaluate_real(self.model, heldout, self.info.device, self.precision)

    def _final(self) -> str | None:
        path = None
        if self.info.is_main:
            from ..checkpoint import save_checkpoint

            path = os.path.join(self.cfg.out, "final.safetensors")
            state = {k: v.contiguous() for k, v in self.model.state_dict().items()}
            save_checkpoint(path, self.cfg.model, self.model.config, state,
                            {"step": self.step, "train_seconds": time.time() - self.t0, "data": list(self.cfg.data)},
                            half=self.cfg.half_final)
        common.barrier(self.info)
        return path


# ---------------------------------------------------------------------------------------------
# command line

_MANUAL = ("resume", "sintel_pass", "kitti_year")


def _add_arguments(p: argparse.ArgumentParser, model: str) -> None:
    add_config_arguments(p, FlowNetTrainConfig)
    p.add_argument("--pass", "--sintel-pass", dest="sintel_pass", default="clean", choices=("clean", "final"),
                   help="Sintel pass (dataset source sintel)")
    p.add_argument("--year", "--kitti-year", dest="kitti_year", type=int, default=2015, choices=(2012, 2015),
                   help="KITTI year of a plain --data kitti")
    p.add_argument("--resume", nargs="?", const=True, default=False, metavar="CKPT",
                   help="resume from CKPT, or from the newest checkpoint in --out")
    p.set_defaults(out=f"runs/{model}")


def _run(args: argparse.Namespace) -> int:
    cfg = config_from_args(FlowNetTrainConfig, args, model=args.model,
                           **{k: getattr(args, k) for k in _MANUAL})
    res = train(cfg)
    if res.final_path:
        last = res.history[-1] if res.history else {}
        print(f"trained {cfg.model} to step {res.step}: loss {last.get('loss', float('nan')):.4f}, "
              f"EPE {last.get('epe', float('nan')):.3f} px; weights {res.final_path}")
    return res.exit_code


def register_cli(subparsers: argparse._SubParsersAction) -> None:
    """`flowmatch train flownets|flownetc ...` (options from FlowNetTrainConfig)."""
    for model, desc in (("flownets", "FlowNetS"), ("flownetc", "FlowNetC")):
        p = subparsers.add_parser(model, help=f"train {desc}", description=__doc__,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
        _add_arguments(p, model)
        p.set_defaults(func=_run, model=model)
