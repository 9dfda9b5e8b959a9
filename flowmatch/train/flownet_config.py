"""Every setting of a FlowNetS / FlowNetC training run, as one dataclass the CLI is built from.

The defaults are a run that finishes here: width 0.25 with batch norm, 256×320 crops, batch 8,
2500 steps (about 2 s a step for FlowNetC on the 2 cores with the machine to itself: about 1.4 h),
flying-photos data with FlowNet's augmentations, Adam at 1e-4 under a warm-up + cosine schedule
fitted to the run length (flowmatch.train.common.fitted_schedule).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from ..errors import InputError
from ..precision import PRECISIONS

__all__ = ["FlowNetTrainConfig", "TrainConfig", "MODELS", "RESUME_FIXED", "parse_device"]

MODELS = ("flownets", "flownetc")

# Settings a resumed run must share with its checkpoints (the sample stream and the model depend on them).
RESUME_FIXED = ("model", "width", "batch_norm", "data", "root", "split", "sintel_pass", "kitti_year", "crop",
                "gen_scale", "batch_size", "seed", "augment", "photos")


def parse_device(device: str) -> tuple[str, int | None]:
    """"auto" | "cpu" | "cuda" | "cuda:N" -> (kind, index or None); InputError otherwise."""
    if device in ("auto", "cpu", "cuda"):
        return device, None
    kind, _, idx = str(device).partition(":")
    if kind == "cuda" and idx.isdigit():
        return "cuda", int(idx)
    raise InputError(f"--device must be auto, cpu, cuda or cuda:N, got {device!r}")


@dataclass
class FlowNetTrainConfig:
    """A FlowNet training run (`flowmatch train flownets|flownetc`; one option per field)."""
    model: str = field(default="flownets", metadata={"cli": False})
    data: list = field(default_factory=lambda: ["flying-photos"],
                       metadata={"help": "training source NAME[:ARG][@WEIGHT], e.g. flying-photos, "
                                         "flying-photos-final (fine-tuning), synthetic:400, chairs:/data/FlyingChairs "
                                         "(flowmatch.data.sources)"})
    photos: str | None = field(default=None, metadata={"help": "photo folder (default ../shared/data/photos)"})
    root: str | None = field(default=None, metadata={"help": "dataset folder for a plain --data chairs|sintel|kitti"})
    split: str = field(default="training", metadata={"help": "dataset split (dataset sources)"})
    sintel_pass: str = field(default="clean", metadata={"cli": False})
    kitti_year: int = field(default=2015, metadata={"cli": False})
    width: float = field(default=0.25, metadata={"help": "channel multiplier (1 = the published 38.7 M / 39.2 M "
                                                         "parameter networks)"})
    batch_norm: bool = field(default=True, metadata={"help": "batch norm after each conv (trains faster from scratch)"})
    crop: tuple = field(default=(256, 320), metadata={"type": int, "metavar": ("H", "W"),
                                                      "help": "training crop, multiples of 64"})
    gen_scale: float = field(default=1.2, metadata={"help": "generated pairs are this × --crop (room for the "
                                                            "geometric augmentation)"})
    augment: bool = field(default=True, metadata={"help": "FlowNet's geometric + photometric augmentation"})
    batch_size: int = field(default=8, metadata={"help": "samples per step and process"})
    steps: int = field(default=2500, metadata={"help": "training steps (default about 1.4 h for FlowNetC here)"})
    lr: float = field(default=1e-4, metadata={"help": "peak learning rate (Adam)"})
    warmup: int | None = field(default=None, metadata={"type": int, "help": "warm-up steps (default 3 %% of --steps)"})
    weight_decay: float = field(default=0.0, metadata={"help": "Adam weight decay (not on biases / norms)"})
    time_budget: float = field(default=0.0, metadata={"help": "stop after this many minutes (0 = no limit)"})
    precision: str = field(default="auto", metadata={"choices": PRECISIONS,
                                                     "help": "auto: bf16 autocast where the device has native bf16"})
    channels_last: bool = field(default=True, metadata={"help": "channels_last memory format"})
    workers: int | None = field(default=None, metadata={"type": int, "help": "data worker processes (default 1 "
                                                                               "on CPU, up to 8 on CUDA; 0 = inline)"})
    device: str = field(default="auto", metadata={"help": "auto, cpu, cuda or cuda:N"})
    threads: int | None = field(default=None, metadata={"type": int, "help": "torch threads (default: all cores)"})
    seed: int = field(default=0)
    eval_every: int = field(default=500, metadata={"help": "held-out real-pair EPE every N steps (0 = never)"})
    first_ckpt: int = field(default=50, metadata={"help": "first checkpoint after this many steps"})
    ckpt_every: int = field(default=500)
    ckpt_minutes: float = field(default=10.0, metadata={"help": "also checkpoint after this many minutes"})
    keep: int = field(default=3, metadata={"help": "checkpoints kept in --out (0 = all)"})
    out: str = field(default="runs/flownet", metadata={"help": "run folder"})
    resume: bool | str = field(default=False, metadata={"cli": False})
    init: str | None = field(default=None, metadata={"help": "start from these weights (fine-tuning)"})
    half_final: bool = field(default=False, metadata={"help": "store final.safetensors in float16"})
    tensorboard: str | None = field(default=None, metadata={"help": "write TensorBoard scalars here"})
    progress: bool = field(default=True, metadata={"help": "progress bar with ETA"})

    def validate(self) -> None:
        """InputError naming the option for any bad setting."""
        if self.model not in MODELS:
            raise InputError(f"model must be one of {MODELS}, got {self.model!r}")
        if isinstance(self.data, str):
            self.data = [self.data]
        if not self.data:
            raise InputError("--data: give at least one training source")
        for name in ("batch_size", "steps", "ckpt_every", "first_ckpt"):
            if int(getattr(self, name)) < 1:
                raise InputError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        for name in ("lr", "width", "gen_scale"):
            v = float(getattr(self, name))
            if not (math.isfinite(v) and v > 0):
                raise InputError(f"--{name.replace('_', '-')} must be a positive finite number, got {v}")
        if self.gen_scale < 1:
            raise InputError(f"--gen-scale must be >= 1 (pairs at least as large as --crop), got {self.gen_scale}")
        for name in ("weight_decay", "time_budget", "ckpt_minutes"):
            v = float(getattr(self, name))
            if not (math.isfinite(v) and v >= 0):
                raise InputError(f"--{name.replace('_', '-')} must be a finite number >= 0, got {v}")
        if len(self.crop) != 2 or min(self.crop) < 64 or any(int(c) % 64 for c in self.crop):
            raise InputError(f"--crop must be two multiples of 64 (at least 64), got {tuple(self.crop)}")
        if self.workers is not None and self.workers < 0:
            raise InputError(f"--workers must be >= 0, got {self.workers}")
        if self.threads is not None and self.threads < 1:
            raise InputError(f"--threads must be >= 1, got {self.threads}")
        if self.warmup is not None and self.warmup < 0:
            raise InputError(f"--warmup must be >= 0, got {self.warmup}")
        if self.eval_every < 0 or self.keep < 0:
            raise InputError("--eval-every and --keep must be >= 0")
        if self.precision not in PRECISIONS:
            raise InputError(f"--precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.sintel_pass not in ("clean", "final") or self.kitti_year not in (2012, 2015):
            raise InputError("--pass must be clean or final and --year 2012 or 2015")
        parse_device(self.device)

    def model_config(self) -> dict[str, Any]:
        return {"width": float(self.width), "batch_norm": bool(self.batch_norm)}

    def settings(self) -> dict[str, Any]:
        """JSON-ready settings (config.json, and the checkpoints' record for resume checks)."""
        from dataclasses import asdict
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}


TrainConfig = FlowNetTrainConfig  # the name before the split into flownet_*.py
