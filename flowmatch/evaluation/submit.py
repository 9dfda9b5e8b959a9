"""Benchmark submissions: test-set flow in each benchmark's upload structure.

- Sintel: <out>/{clean,final}/<scene>/frame_XXXX.flo, one per frame but the last of each scene,
  numbered like the first frame of the pair (frame_0001.flo is the flow from frame_0001.png to
  frame_0002.png).
- KITTI 2012 / 2015: <out>/flow/XXXXXX_10.png, 16-bit KITTI PNGs (every pixel marked valid).

Every file is written atomically; with zip_=True the folder is also packed into <out>.zip (the
archive's root holds clean/ and final/, or flow/, as the upload servers expect).  Under torchrun
the frames are sharded across ranks like flowmatch.evaluate (flowmatch.distributed).
"""
from __future__ import annotations

import os
import re
import zipfile
from typing import Any, Sequence

from .. import io
from .._atomic import atomic_path
from ..data import datasets as ds
from ..distributed import DistInfo, collective_backend, distributed, gather_objects, shard, shared_failure
from ..errors import DatasetLayoutError, InputError
from .harness import MethodRun, check_method, progress_bar

SUBMIT_DATASETS = ("sintel", "kitti2012", "kitti2015")


def sintel_target(sample: Any) -> tuple[str, int]:
    """(scene, frame number of img1) of a Sintel sample, from meta or from its name."""
    meta = sample.meta or {}
    scene, frame = meta.get("scene"), meta.get("frame")
    if scene is None or frame is None:
        m = re.match(r"^(?P<scene>.+?)[/_]+(?:frame_)?(?P<frame>\d+)$", str(getattr(sample, "name", "")))
        if not m:
            raise DatasetLayoutError(f"cannot tell the scene and frame of Sintel sample {sample.name!r}")
        scene, frame = scene or m["scene"], int(m["frame"]) if frame is None else frame
    return str(scene), int(frame)


def kitti_target(sample: Any) -> str:
    """The KITTI frame id (e.g. "000123") of a sample, from meta or from its name."""
    meta = sample.meta or {}
    fid = meta.get("id") or meta.get("frame_id")
    if fid is None:
        m = re.search(r"(\d{6})(?:_10)?", str(getattr(sample, "name", "")))
        if not m:
            raise DatasetLayoutError(f"cannot tell the KITTI frame id of sample {sample.name!r}")
        fid = m[1]
    return f"{int(fid):06d}"


def _output_paths(dataset: str, samples: Sequence[Any], out: str, pass_: str) -> list[str]:
    paths = []
    for s in samples:
        if dataset == "sintel":
            scene, frame = sintel_target(s)
            paths.append(os.path.join(out, pass_, scene, f"frame_{frame:04d}.flo"))
        else:
            paths.append(os.path.join(out, "flow", f"{kitti_target(s)}_10.png"))
    return paths


def _jobs(dataset: str, root: str, passes: Sequence[str], split: str) -> list[tuple[Any, str]]:
    """(sample source, pass or "") for each part of the submission."""
    if dataset == "sintel":
        bad = [p for p in passes if p not in ("clean", "final")]
        if bad or not passes:
            raise InputError(f"Sintel passes are clean and final, got {list(passes)}")
        return [(ds.Sintel(root, split=split, pass_=p), p) for p in passes]
    return [(ds.Kitti(root, year=int(dataset[-4:]), split=split, gt="occ"), "")]


def _write_part(dataset: str, data: Any, pass_: str, out: str, run: MethodRun, n: int, progress: bool,
                dist: DistInfo) -> list[str]:
    """This rank's flow files among the first n frames of one part (a Sintel pass or the KITTI set)."""
    mine = shard(range(n), dist)
    bar = progress_bar(len(mine), progress and dist.is_main, f"{dataset} {pass_}".strip())
    written = []
    for i in mine:
        s = data[i]
        path = _output_paths(dataset, [s], out, pass_)[0]
        io.write_flow(path, run.flow(s.img1, s.img2))
        written.append(path)
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return written


def submit(dataset: str, root: str, method: str, out: str, *, passes: Sequence[str] = ("clean", "final"),
           split: str = "test", zip_: bool = False, device: str = "cpu", options: dict | None = None,
           limit: int | None = None, progress: bool = True) -> list[str]:
    """Run `method` on the test split of `dataset` and write the upload structure under `out`.

    Returns the list of flow files written (all ranks' files under torchrun) and, when zipped, the
    archive path last."""
    if dataset not in SUBMIT_DATASETS:
        raise InputError(f"submissions exist for {', '.join(SUBMIT_DATASETS)}, not {dataset!r}")
    check_method(method)
    if not root or not os.path.isdir(root):
        raise DatasetLayoutError(f"dataset root {root!r} is not a folder; pass --root PATH")
    if os.path.exists(out) and not os.path.isdir(out):
        raise InputError(f"--out {out!r} exists and is not a folder")
    jobs = _jobs(dataset, root, passes, split)
    run = MethodRun(method, device, dict(options or {}))
    with distributed(backend=collective_backend()) as dist:
        written: list[str] = []
        with shared_failure(dist):
            for data, p in jobs:
                n = len(data) if limit is None else min(limit, len(data))
                if n == 0:
                    raise DatasetLayoutError(f"no frames found for {dataset} ({split}) under {root!r}")
                written += _write_part(dataset, data, p, out, run, n, progress, dist)
        if dist.distributed:
            written = sorted(p for part in gather_objects(written, dist) for p in part)
    if zip_ and dist.is_main:
        written.append(zip_folder(out, [os.path.join(out, p) for p in (passes if dataset == "sintel" else ["flow"])]))
    return written


def zip_folder(out: str, folders: Sequence[str]) -> str:
    """Pack `folders` (inside `out`) into <out>.zip with paths relative to `out`, atomically."""
    target = os.path.normpath(out) + ".zip"
    with atomic_path(target) as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for folder in folders:
                for dirpath, _, files in sorted(os.walk(folder)):
                    for f in sorted(files):
                        if f.startswith("."):  # temporary files of an interrupted write
                            continue
                        full = os.path.join(dirpath, f)
                        zf.write(full, os.path.relpath(full, out))
    return target
