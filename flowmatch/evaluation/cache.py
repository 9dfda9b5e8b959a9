"""The per-frame results cache of an evaluation folder, so `flowmatch eval --resume` finishes an
interrupted run instead of starting over.

Layout under OUT:
  eval_settings.json       the settings record: every setting that determines a frame's numbers
                           (dataset, root realpath, split, pass, method, its effective options, device
                           type, flowmatch version, identity of the weights a method loads) and the
                           name of the cache folder holding frames of exactly these settings.
  frames-<token>/NNNNNN.json   one file per finished frame (index NNNNNN): its metric-accumulator
                           state (plain numbers, flowmatch.metrics state()) and its per-frame record.

`--limit` is not a setting (a resumed run may evaluate more or fewer frames); `--out`, `--panels`,
`--save-flows` and the progress bar do not change numbers either.

Policy.  With resume: a record of other settings is refused (InputError naming the differing keys,
nothing written); a matching record's cached frames are reused.  Without resume (or with resume and
no record yet): a fresh run.  It writes a new record naming a new, empty cache folder (one atomic
rename switches from the old cache to the new one, so a record never names frames of other
settings), then deletes the old cache folder and the flows the old run saved (OUT/flows/*.flo).

Every frame file is written atomically under a unique temporary (flowmatch._atomic), so ranks of a
torchrun job write their own frames side by side and a killed run leaves complete frames only.
"""
from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
import re
import secrets
import shutil
import sys
from dataclasses import dataclass
from typing import Any

from .._atomic import atomic_open, clean_stale_temps
from ..errors import InputError
from .._settings import settings_differences

__all__ = ["RECORD", "settings", "FrameCache", "claim", "read_record"]

RECORD = "eval_settings.json"
VERSION = 1
_CACHE_NAME = re.compile(r"^frames-[0-9a-f]{8}$")
_FRAME_FILE = re.compile(r"^(\d{6,})\.json$")


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def weights_identity(method: str, options: dict[str, Any]) -> dict[str, str] | None:
    """sha256 (16 hex digits) of the weights files a method may load: a `weights=PATH` option, or
    for methods that need weights every shipped weights file (about 12 MB, tens of milliseconds;
    conservative: a change to any shipped file invalidates the cache).  None for other methods."""
    from .._paths import DESCRIPTOR_WEIGHTS, FLOWNET_WEIGHTS, weights_path
    from ..methods.registry import get_method

    if isinstance(options.get("weights"), str) and os.path.isfile(options["weights"]):
        return {os.path.realpath(options["weights"]): _sha256(options["weights"])}
    if not get_method(method).needs_weights:
        return None
    files = sorted(set(FLOWNET_WEIGHTS.values()) | set(DESCRIPTOR_WEIGHTS.values()))
    return {f: _sha256(weights_path(f)) for f in files if os.path.isfile(weights_path(f))}


def settings(dataset: str, root: str | None, split: str, pass_: str, method: str, options: dict[str, Any],
             device: str, custom_samples: bool = False) -> dict[str, Any]:
    """The settings that determine every frame's numbers, as plain JSON values."""
    from ..methods.registry import get_method

    # the package is loaded before any of its modules; read its version without importing the
    # interface layer (flowmatch/__init__.py) from here
    version = getattr(sys.modules.get(__name__.split(".")[0]), "__version__", "unknown")

    effective = dict(sorted({**get_method(method).defaults, **options}.items()))
    s = {"dataset": dataset, "root": os.path.realpath(root) if root else None, "split": split,
         "pass": pass_ if dataset == "sintel" else None, "method": method, "options": effective,
         "device": str(device).split(":")[0], "flowmatch": version,
         "weights": weights_identity(method, effective)}
    if custom_samples:
        s["samples"] = "given by the caller (evaluate(samples=...))"
    return json.loads(json.dumps(s, default=repr))  # tuples -> lists, odd values -> their repr


def read_record(out: str) -> dict[str, Any] | None:
    """The folder's record ({"settings", "cache", ...}); None when there is none.  InputError when it
    exists but cannot be read."""
    path = os.path.join(out, RECORD)
    if not os.path.exists(path):
        return None
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read the evaluation settings record {path!r} ({exc})") from None
    if not (isinstance(data, dict) and isinstance(data.get("settings"), dict)
            and isinstance(data.get("cache"), str) and _CACHE_NAME.match(data["cache"])):
        raise InputError(f"{path!r} is not a flowmatch evaluation settings record")
    return data


def _differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    return settings_differences(old, new, {"weights": "other weights files than the cached frames were computed with"})


@dataclass(frozen=True)
class Claim:
    """What claim() decided: the cache folder's name, and how many cached frames a fresh start discarded."""
    cache: str
    discarded: int = 0


def claim(out: str, current: dict[str, Any], resume: bool) -> Claim:
    """Make OUT's record describe `current` (see the module docstring); return the cache to use.

    Raises InputError, before writing anything, when resume is asked for and OUT's record holds
    other settings (or cannot be read)."""
    old = read_record(out) if resume else _read_quietly(out)
    if resume and old is not None:
        diffs = _differences(old["settings"], current)
        if diffs:
            raise InputError(f"--resume: --out {out!r} holds frames evaluated with other settings ({'; '.join(diffs)}); "
                             f"run without --resume to start over there, or choose another --out")
        os.makedirs(os.path.join(out, old["cache"]), exist_ok=True)
        clean_stale_temps(os.path.join(out, old["cache"]))
        return Claim(old["cache"])
    name = f"frames-{secrets.token_hex(4)}"
    os.makedirs(os.path.join(out, name))
    with atomic_open(os.path.join(out, RECORD), "w") as fh:
        json.dump({"flowmatch_eval_record": VERSION, "settings": current, "cache": name}, fh, indent=1, sort_keys=True)
    discarded = 0
    if old is not None:  # the record now names the new cache: the old frames and flows are unreferenced
        old_dir = os.path.join(out, old["cache"])
        discarded = len(FrameCache(old_dir).indices())
        shutil.rmtree(old_dir, ignore_errors=True)
        for f in glob.glob(os.path.join(glob.escape(out), "flows", "*.flo")):
            with contextlib.suppress(OSError):
                os.unlink(f)
    return Claim(name, discarded)


def _read_quietly(out: str) -> dict[str, Any] | None:
    try:
        return read_record(out)
    except InputError:  # an unreadable record is replaced by a fresh run (its cache folder is unknown)
        return None


class FrameCache:
    """The frames of one cache folder: load(index, name) / store(index, name, state, record)."""

    def __init__(self, folder: str) -> None:
        self.folder = folder

    def path(self, index: int) -> str:
        return os.path.join(self.folder, f"{index:06d}.json")

    def indices(self) -> list[int]:
        """Indices of the cached frames (sorted)."""
        try:
            names = os.listdir(self.folder)
        except OSError:
            return []
        return sorted(int(m[1]) for f in names if (m := _FRAME_FILE.match(f)))

    def load(self, index: int, name: str) -> dict[str, Any] | None:
        """The cached frame {"state", "record", ...}, or None when it is not cached.

        InputError when the cached frame has another name: the dataset under the root changed (frames
        added or removed) since the cache was written, so cached indices mean other frames."""
        try:
            with open(self.path(index), encoding="utf-8") as fh:
                data = json.load(fh)
        except FileNotFoundError:
            return None
        except (OSError, ValueError):  # written atomically, so only damage from outside: recompute it
            return None
        if not isinstance(data, dict) or not {"name", "state", "record"} <= set(data):
            return None
        if data["name"] != name:
            raise InputError(f"--resume: cached frame {index} of {self.folder!r} is {data['name']!r} but the dataset's "
                             f"frame {index} is now {name!r}; the dataset changed since: run without --resume")
        return data

    def store(self, index: int, name: str, state: dict[str, Any], record: dict[str, Any]) -> None:
        """Write one finished frame (atomically; NaN is kept as JSON NaN so the state is exact)."""
        with atomic_open(self.path(index), "w") as fh:
            json.dump({"flowmatch_eval_frame": VERSION, "index": index, "name": name, "state": state,
                       "record": record}, fh)

    # progress of every rank: rank 0 counts the frames and waits for each rank's "done" marker
    def count(self, n: int) -> int:
        return sum(1 for i in self.indices() if i < n)

    def mark_done(self, run: str, rank: int) -> None:
        with open(os.path.join(self.folder, f".done.{run}.{rank}"), "w"):
            pass

    def all_done(self, run: str, world_size: int) -> bool:
        return all(os.path.exists(os.path.join(self.folder, f".done.{run}.{r}")) for r in range(world_size))

    def clear_marks(self, run: str) -> None:
        for f in glob.glob(os.path.join(glob.escape(self.folder), f".done.{run}.*")):
            with contextlib.suppress(OSError):
                os.unlink(f)
