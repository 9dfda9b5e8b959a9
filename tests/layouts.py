"""Miniature copies of the official dataset layouts, for tests (readers, evaluation, submissions).

Each make_* writes a tiny dataset under `tmp` from the procedural generator (exact flow, known
occlusions) and returns its root.  With real=<path of ../shared/data/real> the real sample pairs are
linked into the layout instead (see each function).  Ground truth written here round-trips through
flowmatch.io, so what the readers return can be compared with the generator's output:

    root = make_sintel(tmp_path)                 # training/{clean,final,flow,occlusions,invalid}, test/
    root = make_kitti(tmp_path, year=2015)       # training/{image_2,flow_occ,flow_noc,obj_map}, testing/
    root = make_chairs(tmp_path)                 # data/XXXXX_{img1,img2}.ppm, _flow.flo + split file
    root = make_middlebury(tmp_path)             # other-data/, other-gt-flow/, eval-data/

`truth(root)` returns the generator's ground truth of the last make_* call on that root (by name).
"""
from __future__ import annotations

import os
import shutil
from typing import Any, Sequence

import numpy as np

from flowmatch import io
from flowmatch.data.synthetic import generate_sequence

# root -> {pair name: dict(flow=..., occlusion=..., valid=..., layers=...)}; filled by make_*.
_TRUTH: dict[str, dict[str, dict[str, Any]]] = {}


def truth(root: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """Ground truth written by the last make_* call for `root`: {pair name: {flow, valid, occlusion, ...}}."""
    return _TRUTH[os.fspath(root)]


def _link(src: str, dst: str) -> None:
    """Symlink a real sample file into the layout (copy if links are not possible)."""
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    if os.path.lexists(dst):
        os.unlink(dst)  # never write through an old link into the shared real samples
    try:
        os.symlink(os.path.abspath(src), dst)
    except OSError:
        shutil.copyfile(src, dst)


def _sequence(size: tuple[int, int], seed: int, frames: int, max_motion: float | None = None) -> Any:
    h, w = size
    mm = max_motion if max_motion is not None else max(2.0, min(h, w) / 8.0)
    return generate_sequence(h, w, seed, frames=frames, max_motion=mm, num_shapes=(2, 4))


def _final_pass(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A stand-in for Sintel's final pass: the clean frame with noise (blur/fog are not needed here)."""
    noisy = img.astype(np.float32) + rng.normal(0, 4.0, img.shape)
    return np.clip(noisy + 0.5, 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------------------------

def make_sintel(tmp: str | os.PathLike, scenes: Sequence[str] = ("alley_1", "cave_2"), frames: int = 3,
                size: tuple[int, int] = (48, 64), passes: Sequence[str] = ("clean", "final"),
                test_scenes: Sequence[str] = ("ambush_1",), occlusions: bool = True, invalid: bool = True,
                seed: int = 0, real: str | None = None) -> str:
    """MPI-Sintel layout under tmp/sintel: training/{pass}/<scene>/frame_0001.png .. frame_<frames>.png,
    training/flow/<scene>/frame_XXXX.flo (frames-1 per scene), training/occlusions/ and
    training/invalid/ (binary PNGs; invalid marks the top-left 2×2 pixels of each frame) and
    test/{pass}/<scene>/frame_XXXX.png without ground truth.

    With `real`, the real Sintel samples (<scene>_<pass>_<frame>/) are linked in instead of the
    synthetic training scenes: frame N and N+1 of that scene and pass, with their flow and masks."""
    root = os.path.join(os.fspath(tmp), "sintel")
    tr = os.path.join(root, "training")
    gt: dict[str, dict[str, Any]] = {}
    if real is not None:
        src_dir = os.path.join(real, "sintel")
        for case in sorted(os.listdir(src_dir)):
            scene, pass_, frame = case.rsplit("_", 2)
            n = int(frame)
            d = os.path.join(src_dir, case)
            _link(os.path.join(d, "img1.png"), os.path.join(tr, pass_, scene, f"frame_{n:04d}.png"))
            _link(os.path.join(d, "img2.png"), os.path.join(tr, pass_, scene, f"frame_{n + 1:04d}.png"))
            for sub, name in (("flow", "flow.flo"), ("occlusions", "occlusions.png"), ("invalid", "invalid.png")):
                ext = os.path.splitext(name)[1]
                dst = os.path.join(tr, sub, scene, f"frame_{n:04d}{ext}")
                if not os.path.exists(dst):
                    _link(os.path.join(d, name), dst)
            gt[f"{scene}/frame_{n:04d}"] = {"case": d}
    else:
        rng = np.random.default_rng(seed)
        for j, scene in enumerate(scenes):
            seq = _sequence(size, seed * 1000 + j, frames)
            for k, img in enumerate(seq.frames):
                for p in passes:
                    out = img if p == "clean" else _final_pass(img, rng)
                    io.write_image(os.path.join(tr, p, scene, f"frame_{k + 1:04d}.png"), out)
            for k, (flow, occ) in enumerate(zip(seq.flows, seq.occlusions)):
                stem = f"frame_{k + 1:04d}"
                inv = np.zeros(flow.shape[:2], bool)
                if invalid:
                    inv[:2, :2] = True
                io.write_flo(os.path.join(tr, "flow", scene, stem + ".flo"), flow)
                if occlusions:
                    io.write_mask(os.path.join(tr, "occlusions", scene, stem + ".png"), occ)
                if invalid:
                    io.write_mask(os.path.join(tr, "invalid", scene, stem + ".png"), inv)
                gt[f"{scene}/{stem}"] = {"flow": flow, "occlusion": occ, "valid": ~inv, "layers": seq.layers[k]}
    for j, scene in enumerate(test_scenes):
        seq = _sequence(size, seed * 1000 + 500 + j, frames)
        for k, img in enumerate(seq.frames):
            for p in passes:
                io.write_image(os.path.join(root, "test", p, scene, f"frame_{k + 1:04d}.png"), img)
    _TRUTH[root] = gt
    return root


def make_kitti(tmp: str | os.PathLike, year: int = 2015, n: int = 3, size: tuple[int, int] = (40, 96),
               test: int = 2, gray: bool = False, density: float = 0.5, seed: int = 0,
               real: str | None = None) -> str:
    """KITTI flow layout under tmp/kitti<year>: training/<images>/XXXXXX_10.png, _11.png,
    training/flow_occ/ and flow_noc/ (16-bit KITTI PNGs), for 2015 training/obj_map/ (uint8
    object ids = the generator's shape layers), and testing/<images>/ without ground truth.

    <images> is image_2 (2015), colored_0 (2012) or image_0 (2012 with gray=True, 8-bit grey).
    Ground truth is sparse like the lidar's: flow_occ is valid on a random `density` share of the
    pixels, flow_noc on those of them that are not occluded.

    With `real` (2012 only), the real KITTI sample 000157_10 is linked in as the only training pair;
    its flow_gt.png serves as both flow_occ and flow_noc."""
    if year not in (2012, 2015):
        raise ValueError("year must be 2012 or 2015")
    root = os.path.join(os.fspath(tmp), f"kitti{year}")
    img_dir = "image_2" if year == 2015 else ("image_0" if gray else "colored_0")
    tr = os.path.join(root, "training")
    gt: dict[str, dict[str, Any]] = {}
    rng = np.random.default_rng(seed)
    if real is not None:
        if year != 2012:
            raise ValueError("the real KITTI sample is from KITTI 2012")
        d = os.path.join(real, "kitti2012", "000157_10")
        _link(os.path.join(d, "img1.png"), os.path.join(tr, img_dir, "000157_10.png"))
        _link(os.path.join(d, "img2.png"), os.path.join(tr, img_dir, "000157_11.png"))
        for sub in ("flow_occ", "flow_noc"):
            _link(os.path.join(d, "flow_gt.png"), os.path.join(tr, sub, "000157_10.png"))
        gt["000157_10"] = {"case": d}
    else:
        for i in range(n):
            seq = _sequence(size, seed * 1000 + i, 2)
            fid = f"{i:06d}"
            imgs = seq.frames
            if gray:
                imgs = [np.round(f.astype(np.float32).mean(axis=2)).astype(np.uint8) for f in imgs]
            io.write_image(os.path.join(tr, img_dir, f"{fid}_10.png"), imgs[0])
            io.write_image(os.path.join(tr, img_dir, f"{fid}_11.png"), imgs[1])
            flow, occ = seq.flows[0], seq.occlusions[0]
            occ_valid = rng.random(flow.shape[:2]) < density
            noc_valid = occ_valid & ~occ
            io.write_kitti_flow(os.path.join(tr, "flow_occ", f"{fid}_10.png"), flow, occ_valid)
            io.write_kitti_flow(os.path.join(tr, "flow_noc", f"{fid}_10.png"), flow, noc_valid)
            if year == 2015:
                io.write_image(os.path.join(tr, "obj_map", f"{fid}_10.png"), seq.layers[0])
            gt[f"{fid}_10"] = {"flow": flow, "occlusion": occ, "occ_valid": occ_valid, "noc_valid": noc_valid,
                               "obj_map": seq.layers[0], "img1": imgs[0], "img2": imgs[1]}
    for i in range(test):
        seq = _sequence(size, seed * 1000 + 500 + i, 2)
        fid = f"{i:06d}"
        for k, suffix in enumerate(("10", "11")):
            img = seq.frames[k]
            if gray:
                img = np.round(img.astype(np.float32).mean(axis=2)).astype(np.uint8)
            io.write_image(os.path.join(root, "testing", img_dir, f"{fid}_{suffix}.png"), img)
    _TRUTH[root] = gt
    return root


def make_chairs(tmp: str | os.PathLike, n: int = 4, size: tuple[int, int] = (48, 64),
                split: Sequence[int] | None = None, split_file: bool = True, seed: int = 0,
                real: str | None = None) -> str:
    """Flying Chairs layout under tmp/chairs: data/XXXXX_img1.ppm, _img2.ppm, _flow.flo (numbered
    from 00001) and FlyingChairs_train_val.txt in the root (`split`: one 1 = train / 2 = val per
    pair; default: the last pair is val, the others train).

    With `real`, the real Flying Chairs samples are linked in (in sorted folder order) instead."""
    root = os.path.join(os.fspath(tmp), "chairs")
    data = os.path.join(root, "data")
    gt: dict[str, dict[str, Any]] = {}
    if real is not None:
        cases = sorted(os.listdir(os.path.join(real, "flyingchairs")))
        for i, case in enumerate(cases, start=1):
            d = os.path.join(real, "flyingchairs", case)
            stem = f"{i:05d}"
            _link(os.path.join(d, "img1.ppm"), os.path.join(data, f"{stem}_img1.ppm"))
            _link(os.path.join(d, "img2.ppm"), os.path.join(data, f"{stem}_img2.ppm"))
            _link(os.path.join(d, "flow.flo"), os.path.join(data, f"{stem}_flow.flo"))
            gt[stem] = {"case": d}
        n = len(cases)
    else:
        for i in range(1, n + 1):
            seq = _sequence(size, seed * 1000 + i, 2)
            stem = f"{i:05d}"
            io.write_image(os.path.join(data, f"{stem}_img1.ppm"), seq.frames[0])
            io.write_image(os.path.join(data, f"{stem}_img2.ppm"), seq.frames[1])
            io.write_flo(os.path.join(data, f"{stem}_flow.flo"), seq.flows[0])
            gt[stem] = {"flow": seq.flows[0], "occlusion": seq.occlusions[0], "img1": seq.frames[0],
                        "img2": seq.frames[1]}
    if split is None:
        split = [1] * (n - 1) + [2] if n > 1 else [1] * n
    if len(split) != n:
        raise ValueError(f"split has {len(split)} entries for {n} pairs")
    if split_file:
        os.makedirs(root, exist_ok=True)
        with open(os.path.join(root, "FlyingChairs_train_val.txt"), "w") as fh:
            fh.write("".join(f"{v}\n" for v in split))
    for stem, v in zip(sorted(gt), split):
        gt[stem]["split"] = v
    _TRUTH[root] = gt
    return root


def make_middlebury(tmp: str | os.PathLike, scenes: Sequence[str] = ("Dimetrodon", "Venus"),
                    no_gt_scenes: Sequence[str] = ("Beanbags",), test_scenes: Sequence[str] = ("Army",),
                    size: tuple[int, int] = (48, 64), seed: int = 0) -> str:
    """Middlebury layout under tmp/middlebury: other-data/<scene>/frame10.png, frame11.png for every
    scene (also `no_gt_scenes`, which have no ground truth, like the official other-data), other-gt-flow/
    <scene>/flow10.flo (occluded pixels stored as unknown, 1e10, like the official ground truth) and
    eval-data/<scene>/frame10.png, frame11.png for `test_scenes`."""
    root = os.path.join(os.fspath(tmp), "middlebury")
    gt: dict[str, dict[str, Any]] = {}
    for j, scene in enumerate(list(scenes) + list(no_gt_scenes)):
        seq = _sequence(size, seed * 1000 + j, 2)
        io.write_image(os.path.join(root, "other-data", scene, "frame10.png"), seq.frames[0])
        io.write_image(os.path.join(root, "other-data", scene, "frame11.png"), seq.frames[1])
        if scene in scenes:
            valid = ~seq.occlusions[0]
            io.write_flo(os.path.join(root, "other-gt-flow", scene, "flow10.flo"), seq.flows[0], valid)
            gt[scene] = {"flow": seq.flows[0], "valid": valid, "occlusion": seq.occlusions[0]}
    for j, scene in enumerate(test_scenes):
        seq = _sequence(size, seed * 1000 + 500 + j, 2)
        io.write_image(os.path.join(root, "eval-data", scene, "frame10.png"), seq.frames[0])
        io.write_image(os.path.join(root, "eval-data", scene, "frame11.png"), seq.frames[1])
    _TRUTH[root] = gt
    return root
