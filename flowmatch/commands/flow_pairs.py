"""`flowmatch flow DIR --out OUTDIR [--pairs FILE]`: the flow of every pair of a folder.

Pairs are the consecutive frames of DIR in natural name order, or the lines of a pairs file
(`IMG1 IMG2 [OUT]`).  Every output is checked against every input before anything is computed
(flowmatch._outputs.check_outputs: none inside DIR, none a frame, no two the same); a pair whose
outputs all exist is kept unless --overwrite; each file is written atomically, so a run stopped by
an error or Ctrl-C leaves only complete files and a rerun continues where it stopped.

Under `torchrun --nproc_per_node N -m flowmatch flow DIR --out OUTDIR` each rank computes its
contiguous block of the pairs into the same folders (run_folder); a rerun with any number of ranks
computes only the pairs whose outputs are missing."""
from __future__ import annotations

import argparse
import contextlib
import logging
import os
import re
import shlex
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from .._outputs import check_outputs, folder
from ..errors import InputError
from ..io import IMAGE_EXTENSIONS

if TYPE_CHECKING:
    from ..distributed import DistInfo

log = logging.getLogger(__name__)

FRAME_EXTENSIONS = IMAGE_EXTENSIONS + (".pfm",)


@dataclass(frozen=True)
class Pair:
    img1: str
    img2: str
    out: str | None  # flow file (None: --viz only)
    viz: str | None  # picture


def natural_key(name: str) -> list[Any]:
    """Sort key that orders embedded numbers by value: frame_2 before frame_10."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def list_frames(directory: str) -> list[str]:
    """The image files directly inside `directory`, in natural name order."""
    names = [n for n in os.listdir(directory)
             if n.lower().endswith(FRAME_EXTENSIONS) and os.path.isfile(os.path.join(directory, n))]
    return [os.path.join(directory, n) for n in sorted(names, key=natural_key)]


def _stem(path: str, base: str) -> str:
    """Name of a frame without its extension, relative to `base` when it lies below it."""
    rel = os.path.relpath(path, base)
    if rel.startswith(os.pardir + os.sep) or rel == os.pardir or os.path.isabs(rel):
        rel = os.path.basename(path)
    return os.path.splitext(rel)[0]


def _flow_stem(name: str) -> str:
    """A flow file name without its extension (x.kitti.png -> x)."""
    return name[:-len(".kitti.png")] if name.lower().endswith(".kitti.png") else os.path.splitext(name)[0]


def read_pairs_file(path: str, base: str) -> list[tuple[str, str, str | None]]:
    """(img1, img2, out or None) per line of a pairs file; frame paths joined to `base`."""
    if not os.path.isfile(path):
        raise InputError(f"--pairs {path!r} does not exist or is not a file")
    with open(path, encoding="utf-8") as fh:
        lines = fh.read().splitlines()
    out = []
    for no, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            fields = shlex.split(line, comments=True)
        except ValueError as exc:
            raise InputError(f"--pairs {path!r} line {no}: {exc}") from None
        if len(fields) not in (2, 3):
            raise InputError(f"--pairs {path!r} line {no}: expected `IMG1 IMG2 [OUT]`, got {len(fields)} field(s)")
        out.append((os.path.join(base, fields[0]), os.path.join(base, fields[1]),
                    fields[2] if len(fields) == 3 else None))
    if not out:
        raise InputError(f"--pairs {path!r} lists no pair")
    return out


def plan(args: argparse.Namespace, check_flow_path: Callable[[str, str], None]) -> tuple[list[Pair], dict[str, Any]]:
    """The pairs to compute and the inputs they read (for check_outputs); check_flow_path(path, what)
    refuses an output name that is no flow file (flow.check_flow_path)."""
    directory = args.inputs[0] if args.inputs else None
    if directory is not None and not os.path.isdir(directory):
        raise InputError(f"DIR {directory!r} is not a folder (two frames: flowmatch flow IMG1 IMG2 -o OUT)")
    if args.out is None and args.viz is None:
        raise InputError("a folder of pairs needs --out OUTDIR (flow files) and/or --viz OUTDIR (pictures)")
    for what, path in (("--out", args.out), ("--viz", args.viz)):
        if path is not None and os.path.exists(path) and not os.path.isdir(path):
            raise InputError(f"{what} {path!r} is a file; for a folder of pairs it names the output folder")
        if path is not None and not os.path.exists(path) and path.lower().endswith((".flo", ".pfm", ".png", ".jpg")):
            raise InputError(f"{what} {path!r} looks like a file name; for a folder of pairs it names the output "
                             "folder (the file names come from the frames, or the third column of --pairs)")
    ext = ".kitti.png" if args.fmt in ("kitti.png", "png") else "." + args.fmt
    base = directory if directory is not None else os.path.dirname(os.path.abspath(args.pairs))
    if args.pairs:
        listed = read_pairs_file(args.pairs, base)
        named = [(a, b, o, f"{_stem(a, base)}_to_{os.path.basename(_stem(b, base))}") for a, b, o in listed]
    else:
        frames = list_frames(directory)
        if len(frames) < 2:
            raise InputError(f"DIR {directory!r} holds {len(frames)} frame(s) ({', '.join(FRAME_EXTENSIONS)}); "
                             "a flow needs two")
        named = [(a, b, None, _stem(a, base)) for a, b in zip(frames, frames[1:])]
    pairs = []
    for a, b, own, stem in named:
        out = viz = None
        if args.out is not None:
            out = os.path.join(args.out, own if own is not None else stem + ext)
            check_flow_path(out, "output")
        if args.viz is not None:
            viz = os.path.join(args.viz, (_flow_stem(own) if own is not None else stem) + ".png")
        pairs.append(Pair(a, b, out, viz))
    return pairs, {"DIR": folder(directory), "--pairs": args.pairs}


def check_pair_outputs(pairs: list[Pair], inputs: dict[str, Any], out_dirs: dict[str, Any]) -> None:
    """check_outputs for a folder of pairs, in time linear in the number of pairs: the output folders
    (out_dirs: label -> folder(path)) against DIR and the pairs file, then every output file against
    every frame and every other output through sets of (device, inode) and resolved paths."""
    from .._outputs import is_within
    from ..errors import OutputConflictError

    outputs = [(lbl, path) for p in pairs for lbl, path in (("--out", p.out), ("--viz", p.viz)) if path]
    check_outputs(out_dirs, inputs)
    frames: dict[tuple[int, int], str] = {}
    for p in pairs:
        for path in (p.img1, p.img2) + ((inputs["--pairs"],) if inputs.get("--pairs") else ()):
            st = os.stat(path)
            frames[(st.st_dev, st.st_ino)] = path
    seen: dict[Any, str] = {}
    directory = inputs["DIR"].path if inputs.get("DIR") else None
    for label, path in outputs:
        if directory is not None and is_within(path, directory):  # an OUT column of ../..
            raise OutputConflictError(f"{label} {path!r} lies inside the input folder DIR {directory!r}; outputs "
                                      "must not be written among the inputs")
        keys: list[Any] = [os.path.realpath(os.path.abspath(path))]
        if os.path.exists(path):
            st = os.stat(path)
            keys.append((st.st_dev, st.st_ino))
            if keys[1] in frames:
                raise OutputConflictError(f"{label} {path!r} is the same file as the frame {frames[keys[1]]!r}; "
                                          "writing it would destroy the input (choose another path)")
        for k in keys:
            if k in seen:
                raise OutputConflictError(f"two pairs write {path!r} (also {seen[k]!r}); give each pair its own "
                                          "output (the third column of --pairs)")
            seen[k] = path


def _checked_pairs(args: argparse.Namespace, check_flow_path: Callable[[str, str], None]) -> list[Pair]:
    """plan(args), its frames present and its outputs checked against every input."""
    pairs, found = plan(args, check_flow_path)
    for p in pairs:
        for what, path in (("IMG1", p.img1), ("IMG2", p.img2)):
            if not os.path.isfile(path):
                raise InputError(f"{what} {path!r} does not exist or is not a file")
    check_pair_outputs(pairs, found, {"--out": folder(args.out), "--viz": folder(args.viz)})
    return pairs


def _files(p: Pair) -> list[str]:
    return [x for x in (p.out, p.viz) if x]


def _scan(folders: set[str]) -> dict[str, int]:
    """path -> inode of the files in `folders` (one directory listing each, no stat calls)."""
    found: dict[str, int] = {}
    for d in folders:
        with contextlib.suppress(OSError), os.scandir(d) as entries:
            found.update((os.path.join(d, e.name), e.inode()) for e in entries)
    return found


class _JobCount:
    """Rank 0's count of the job's finished pairs, every rank's: a pair is finished once each of its
    outputs is a file other than the one there when the job started (an atomic write renames a new
    file into place, so --overwrite counts too).  The folders are listed at most once a second."""

    def __init__(self) -> None:
        self._pairs: list[list[str]] = []
        self._before: dict[str, int] = {}
        self._folders: set[str] = set()
        self._n, self._own, self._at = 0, 0, float("-inf")

    def snapshot(self, pairs: list[Pair]) -> None:
        """The outputs as they are before any rank writes (called before the ranks' first gather)."""
        self._folders = {os.path.dirname(x) for p in pairs for x in _files(p)}
        self._before = _scan(self._folders)

    def watch(self, todo: list[Pair]) -> None:
        self._pairs = [_files(p) for p in todo]

    def finished(self, own: int) -> int:
        """The job's finished pairs, given that this rank has finished `own` of its own so far."""
        if time.monotonic() - self._at >= 1.0:
            now = _scan(self._folders)
            self._n = sum(all(x in now and now[x] != self._before.get(x) for x in files) for files in self._pairs)
            self._at, self._own = time.monotonic(), own
        return self._n + own - self._own  # this rank's pairs since the last count are finished too


def run_folder(args: argparse.Namespace, method: str, options: dict[str, Any],
               check_flow_path: Callable[[str, str], None]) -> int:
    """Compute every pair of plan(args); log one line per pair with an ETA.

    Under torchrun each rank takes its contiguous block of the pairs (distributed.shard_range over
    the whole list, before finished pairs are skipped, so the split never depends on what a rank
    saw on disk), into the same folders; the requests are checked on every rank alike, a refused
    one fails every rank with the same error; rank 0 logs the job's progress and summary."""
    from .._atomic import clean_stale_temps
    from ..distributed import collective_backend, distributed, rank_device, shard_range, shared_check

    # the ranks exchange only small Python objects: gloo, on GPU machines too (FLOWMATCH_DIST_BACKEND overrides)
    with distributed(backend=collective_backend(use_cuda=False)) as dist:
        with shared_check(dist):  # before anything is written, on every rank
            pairs = _checked_pairs(args, check_flow_path)
            device = rank_device(args.device, dist)
        if dist.local_rank == 0:  # temporaries of killed writers of this machine (dead pids only)
            for d in {os.path.dirname(x) for p in pairs for x in _files(p)}:
                clean_stale_temps(d)
        block = shard_range(len(pairs), dist)
        todo = [i for i in block if args.overwrite or not all(os.path.exists(x) for x in _files(pairs[i]))]
        return _compute(pairs, todo, args, method, options, device, dist)


def _compute(pairs: list[Pair], todo: list[int], args: argparse.Namespace, method: str, options: dict[str, Any],
             device: str, dist: DistInfo) -> int:
    """Compute pairs[i] for i in `todo` (this rank's pairs without their outputs)."""
    from .. import io
    from ..distributed import gather_objects, shared_failure
    from ..methods.registry import flow

    job = _JobCount() if dist.distributed and dist.is_main else None
    if job is not None:
        job.snapshot(pairs)
    everyone = [i for share in gather_objects(todo, dist) for i in share]  # also a barrier: nobody wrote yet
    if job is not None:
        job.watch([pairs[i] for i in everyone])
    kept = len(pairs) - len(everyone)
    if kept and dist.is_main:
        log.info("%d of %d pairs already have their outputs: kept (--overwrite recomputes them)", kept, len(pairs))
    for d in {os.path.dirname(x) for i in todo for x in _files(pairs[i])}:
        os.makedirs(d, exist_ok=True)
    who = f"rank {dist.rank}: " if dist.distributed and not dist.is_main else ""
    cache: dict[str, Any] = {}  # consecutive pairs share a frame: read it once
    t_start, spent = time.perf_counter(), 0.0
    with shared_failure(dist):  # a failing pair fails every rank (after its own share), finished files kept
        for n, i in enumerate(todo, 1):
            p = pairs[i]
            frames = {k: cache[k] if k in cache else io.read_image(k) for k in (p.img1, p.img2)}
            cache = {p.img2: frames[p.img2]}
            t0 = time.perf_counter()
            result = flow(frames[p.img1], frames[p.img2], method=method, device=device,
                          value_range=args.value_range, **options)
            spent += time.perf_counter() - t0
            if p.out:
                io.write_flow(p.out, result)
            if p.viz:
                from ..viz import flow_to_color
                io.write_image(p.viz, flow_to_color(result))
            # rank 0 counts the whole job's finished pairs; the other ranks their own (shown with -vv)
            done, total = (job.finished(n), len(everyone)) if job is not None else (n, len(todo))
            eta = (time.perf_counter() - t_start) / done * (total - done)
            log.log(logging.INFO if dist.is_main else logging.DEBUG, "%s[%d/%d] %s -> %s: wrote %s (ETA %.0f s)",
                    who, done, total, os.path.basename(p.img1), os.path.basename(p.img2), " and ".join(_files(p)), eta)
    computed = sum(gather_objects(len(todo), dist))
    if not dist.distributed:
        log.info("%d pairs: %d computed with %s in %.1f s, %d kept", len(pairs), len(todo), method, spent, kept)
    elif dist.is_main:
        log.info("%d pairs: %d computed with %s in %.1f s on %d ranks, %d kept", len(pairs), computed, method,
                 time.perf_counter() - t_start, dist.world_size, kept)
    return 0
