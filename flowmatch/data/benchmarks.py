"""Readers of the official benchmark layouts: MPI-Sintel, KITTI 2012 / 2015, Flying Chairs,
Middlebury (layouts in flowmatch.data.datasets)."""
from __future__ import annotations

import os
import re

import numpy as np

from ..errors import DatasetLayoutError, InputError
from .base import (FlowDataset, FlowSample, FramePair, check_same_size, listdir, read_rgb, require_dir, require_file,
                   split_name)


# ----------------------------------------------------------------------------------------------
# MPI-Sintel

_SINTEL_FRAME = re.compile(r"^frame_(\d+)\.png$")


class Sintel(FlowDataset):
    """MPI-Sintel: consecutive frame pairs of every scene of one pass.

    Args:
        root: the folder holding training/ and/or test/.
        split: "training" or "test" (no ground truth).
        pass_: "clean" or "final".

    Samples: flow from training/flow; valid = known flow and not marked in training/invalid (when
    present); occlusion from training/occlusions (when present, else None).  meta: scene, frame
    (number of img1), pass, and "invalid" (H×W bool) when present."""

    def __init__(self, root: str | os.PathLike, split: str = "training", pass_: str = "clean") -> None:
        root = os.fspath(root)
        split = split_name(split, {"training": "training", "train": "training", "test": "test",
                                    "testing": "test"}, "Sintel")
        if pass_ not in ("clean", "final"):
            raise InputError(f"Sintel: pass_={pass_!r} must be 'clean' or 'final'")
        self.root, self.split, self.pass_ = root, split, pass_
        require_dir(root, "the MPI-Sintel root (holding training/ and test/)")
        base = require_dir(os.path.join(root, split), f"Sintel's {split}/ folder under the root")
        img_dir = require_dir(os.path.join(base, pass_), f"the {pass_} pass: {split}/{pass_}/<scene>/frame_XXXX.png")
        has_gt = split == "training"
        flow_dir = require_dir(os.path.join(base, "flow"), "ground truth: training/flow/<scene>/frame_XXXX.flo") \
            if has_gt else None
        extras = {role: os.path.join(base, role) for role in ("occlusions", "invalid")}
        extras = {role: p for role, p in extras.items() if has_gt and os.path.isdir(p)}
        scenes = [s for s in listdir(img_dir) if os.path.isdir(os.path.join(img_dir, s))]
        if not scenes:
            raise DatasetLayoutError(f"no scene folders in {img_dir!r}: expected "
                                     f"{split}/{pass_}/<scene>/frame_XXXX.png")
        pairs: list[FramePair] = []
        for scene in scenes:
            frames = dict(sorted((int(m.group(1)), f) for f in listdir(os.path.join(img_dir, scene))
                                 if (m := _SINTEL_FRAME.match(f))))
            # a pair is frame n -> n+1 (the official scenes are contiguous; gaps are skipped)
            for n1, f1 in frames.items():
                if n1 + 1 not in frames:
                    continue
                f2 = frames[n1 + 1]
                stem = f1[:-4]
                flow = None
                extra: dict[str, str] = {}
                if flow_dir is not None:
                    flow = require_file(os.path.join(flow_dir, scene, stem + ".flo"),
                                         f"the flow of {scene}/{f1} -> {f2}")
                    for role, d in extras.items():
                        extra[role] = require_file(os.path.join(d, scene, f1),
                                                    f"the {role} mask of {scene}/{f1} ({role}/ exists)")
                pairs.append(FramePair(os.path.join(img_dir, scene, f1), os.path.join(img_dir, scene, f2), flow,
                                       name=f"{scene}/{stem}", extra=extra,
                                       meta={"scene": scene, "frame": n1, "pass": pass_}))
        if not pairs:
            raise DatasetLayoutError(f"no frame pairs under {img_dir!r}: each scene needs at least two "
                                     "frame_XXXX.png")
        super().__init__(pairs)

    def _load(self, pair: FramePair) -> FlowSample:
        from .. import io
        img1, img2 = read_rgb(pair.img1), read_rgb(pair.img2)
        flow = valid = occ = None
        meta = dict(pair.meta)
        if pair.flow is not None:
            flow, valid = io.read_flow(pair.flow)
            if "invalid" in pair.extra:
                invalid = io.read_mask(pair.extra["invalid"])
                if invalid.shape != valid.shape:
                    raise DatasetLayoutError(f"{pair.extra['invalid']!r} is {invalid.shape}, the flow "
                                             f"{pair.flow!r} is {valid.shape}")
                meta["invalid"] = invalid
                valid = valid & ~invalid
            if "occlusions" in pair.extra:
                occ = io.read_mask(pair.extra["occlusions"])
        return check_same_size(FlowSample(img1, img2, flow, valid, occ, pair.name, meta), pair)


# ----------------------------------------------------------------------------------------------
# KITTI 2012 / 2015

_KITTI_FRAME = re.compile(r"^(\d{6})_10\.png$")


class Kitti(FlowDataset):
    """KITTI flow 2012 or 2015: pairs XXXXXX_10.png -> XXXXXX_11.png.

    Args:
        root: the folder holding training/ and/or testing/.
        year: 2012 (images from colored_0, else image_0) or 2015 (image_2).
        split: "training" or "testing" ("test" also accepted; no ground truth).
        gt: "occ" (all pixels, flow_occ) or "noc" (non-occluded only, flow_noc): which one becomes
            sample.flow / sample.valid.

    meta (training): id ("000123"), year, occ_valid and noc_valid (both H×W bool masks; a pixel
    valid in flow_occ but not in flow_noc is occluded), and for 2015 obj_map (H×W uint8, 0 =
    background, > 0 = moving object).  sample.occlusion = occ_valid & ~noc_valid on training."""

    def __init__(self, root: str | os.PathLike, year: int = 2015, split: str = "training",
                 gt: str = "occ") -> None:
        root = os.fspath(root)
        if year not in (2012, 2015):
            raise InputError(f"Kitti: year={year!r} must be 2012 or 2015")
        split = split_name(split, {"training": "training", "train": "training", "testing": "testing",
                                    "test": "testing"}, "Kitti")
        if gt not in ("occ", "noc"):
            raise InputError(f"Kitti: gt={gt!r} must be 'occ' (all pixels) or 'noc' (non-occluded)")
        self.root, self.year, self.split, self.gt = root, int(year), split, gt
        require_dir(root, f"the KITTI {year} flow root (holding training/ and testing/)")
        base = require_dir(os.path.join(root, split), f"KITTI's {split}/ folder under the root")
        if year == 2012:
            cands = ["colored_0", "image_0"]
        else:
            cands = ["image_2"]
        img_dir = next((os.path.join(base, c) for c in cands if os.path.isdir(os.path.join(base, c))), None)
        if img_dir is None:
            raise DatasetLayoutError(f"missing folder {os.path.join(base, cands[0])!r}: expected KITTI {year} "
                                     f"images {split}/{' or '.join(cands)}/XXXXXX_10.png and XXXXXX_11.png")
        has_gt = split == "training"
        gt_dirs: dict[str, str] = {}
        if has_gt:
            for sub in ("flow_occ", "flow_noc") + (("obj_map",) if year == 2015 else ()):
                gt_dirs[sub] = require_dir(os.path.join(base, sub), f"KITTI {year} ground truth {sub}/XXXXXX_10.png")
        ids = [m.group(1) for f in listdir(img_dir) if (m := _KITTI_FRAME.match(f))]
        if not ids:
            raise DatasetLayoutError(f"no XXXXXX_10.png frames in {img_dir!r}")
        pairs = []
        for fid in ids:
            img2 = require_file(os.path.join(img_dir, f"{fid}_11.png"), f"the second frame of {fid}")
            extra = {sub: require_file(os.path.join(d, f"{fid}_10.png"), f"{sub} of frame {fid}")
                     for sub, d in gt_dirs.items()}
            flow = extra.get(f"flow_{gt}")
            pairs.append(FramePair(os.path.join(img_dir, f"{fid}_10.png"), img2, flow, name=f"{fid}_10",
                                   extra=extra, meta={"id": fid, "year": self.year}))
        super().__init__(pairs)

    def _load(self, pair: FramePair) -> FlowSample:
        from .. import io
        img1, img2 = read_rgb(pair.img1), read_rgb(pair.img2)
        meta = dict(pair.meta)
        if pair.flow is None:
            return check_same_size(FlowSample(img1, img2, None, None, None, pair.name, meta), pair)
        occ_flow, occ_valid = io.read_kitti_flow(pair.extra["flow_occ"])
        noc_flow, noc_valid = io.read_kitti_flow(pair.extra["flow_noc"])
        if occ_valid.shape != noc_valid.shape:
            raise DatasetLayoutError(f"{pair.extra['flow_occ']!r} and {pair.extra['flow_noc']!r} differ in size")
        meta["occ_valid"], meta["noc_valid"] = occ_valid, noc_valid
        if "obj_map" in pair.extra:
            obj = io.read_image(pair.extra["obj_map"])
            obj = obj if obj.ndim == 2 else obj[..., 0]
            if obj.shape != occ_valid.shape:
                raise DatasetLayoutError(f"{pair.extra['obj_map']!r} is {obj.shape}, the flow is {occ_valid.shape}")
            meta["obj_map"] = np.minimum(obj, 255).astype(np.uint8)
        flow, valid = (occ_flow, occ_valid) if self.gt == "occ" else (noc_flow, noc_valid)
        occlusion = occ_valid & ~noc_valid
        return check_same_size(FlowSample(img1, img2, flow, valid, occlusion, pair.name, meta), pair)


# ----------------------------------------------------------------------------------------------
# Flying Chairs

_CHAIRS_FRAME = re.compile(r"^(\d+)_img1\.ppm$")
SPLIT_FILE = "FlyingChairs_train_val.txt"


class FlyingChairs(FlowDataset):
    """Flying Chairs: data/XXXXX_img1.ppm, XXXXX_img2.ppm, XXXXX_flow.flo.

    Args:
        root: the folder holding data/ (e.g. FlyingChairs_release).
        split: "train" (split file value 1), "val" (value 2) or "all" (no split file needed).
            The split file FlyingChairs_train_val.txt is looked up in root, then root/data.

    meta: index (the pair's number)."""

    def __init__(self, root: str | os.PathLike, split: str = "train") -> None:
        root = os.fspath(root)
        split = split_name(split, {"train": "train", "training": "train", "val": "val", "validation": "val",
                                    "test": "val", "all": "all"}, "FlyingChairs")
        self.root, self.split = root, split
        require_dir(root, "the Flying Chairs root (holding data/)")
        data = require_dir(os.path.join(root, "data"),
                            "Flying Chairs frames data/XXXXX_img1.ppm, _img2.ppm, _flow.flo")
        nums = sorted((int(m.group(1)), m.group(1)) for f in listdir(data) if (m := _CHAIRS_FRAME.match(f)))
        if not nums:
            raise DatasetLayoutError(f"no XXXXX_img1.ppm files in {data!r}")
        keep = [True] * len(nums)
        if split != "all":
            split_file = next((p for p in (os.path.join(root, SPLIT_FILE), os.path.join(data, SPLIT_FILE))
                               if os.path.isfile(p)), None)
            if split_file is None:
                raise DatasetLayoutError(f"missing file {os.path.join(root, SPLIT_FILE)!r}: expected the Flying "
                                         "Chairs split file (one 1 = train / 2 = val per pair); or use split='all'")
            with open(split_file) as fh:
                values = [t for t in fh.read().split()]
            if len(values) != len(nums) or any(v not in ("1", "2") for v in values):
                raise DatasetLayoutError(f"{split_file!r} has {len(values)} entries (expected {len(nums)}, one "
                                         f"1 or 2 per pair in {data!r})")
            want = "1" if split == "train" else "2"
            keep = [v == want for v in values]
        pairs = []
        for (num, stem), k in zip(nums, keep):
            if not k:
                continue
            img2 = require_file(os.path.join(data, f"{stem}_img2.ppm"), f"the second frame of pair {stem}")
            flow = require_file(os.path.join(data, f"{stem}_flow.flo"), f"the flow of pair {stem}")
            pairs.append(FramePair(os.path.join(data, f"{stem}_img1.ppm"), img2, flow, name=stem,
                                   meta={"index": num}))
        super().__init__(pairs)

    def _load(self, pair: FramePair) -> FlowSample:
        from .. import io
        flow, valid = io.read_flow(pair.flow)
        return check_same_size(FlowSample(read_rgb(pair.img1), read_rgb(pair.img2), flow, valid, None,
                                           pair.name, dict(pair.meta)), pair)


# ----------------------------------------------------------------------------------------------
# Middlebury

class Middlebury(FlowDataset):
    """Middlebury flow: other-data/<scene>/frame10.png, frame11.png + other-gt-flow/<scene>/flow10.flo.

    Args:
        root: the folder holding other-data/ and other-gt-flow/ (or eval-data/ for split="test").
        split: "training" (scenes that have ground truth) or "test" (eval-data/, no ground truth).

    valid = pixels whose flow is known (Middlebury marks unknown pixels with 1e10).  meta: scene."""

    def __init__(self, root: str | os.PathLike, split: str = "training") -> None:
        root = os.fspath(root)
        split = split_name(split, {"training": "training", "train": "training", "test": "test",
                                    "testing": "test"}, "Middlebury")
        self.root, self.split = root, split
        require_dir(root, "the Middlebury flow root (holding other-data/ and other-gt-flow/)")
        training = split == "training"
        folder = "other-data" if training else "eval-data"
        data = require_dir(os.path.join(root, folder), f"{folder}/<scene>/frame10.png, frame11.png")
        gt = require_dir(os.path.join(root, "other-gt-flow"), "other-gt-flow/<scene>/flow10.flo") if training else None
        listed, expected = (gt, "other-gt-flow/<scene>/flow10.flo") if training else (data, "eval-data/<scene>/frame10.png")
        scenes = [s for s in listdir(listed) if os.path.isdir(os.path.join(listed, s))]
        if not scenes:
            raise DatasetLayoutError(f"no scene folders in {listed!r}: expected {expected}")
        pairs = []
        for s in scenes:
            flow = require_file(os.path.join(gt, s, "flow10.flo"), f"the ground truth of scene {s}") if training else None
            img1 = require_file(os.path.join(data, s, "frame10.png"), f"the first frame of scene {s}")
            img2 = require_file(os.path.join(data, s, "frame11.png"), f"the second frame of scene {s}")
            pairs.append(FramePair(img1, img2, flow, name=s, meta={"scene": s}))
        super().__init__(pairs)

    def _load(self, pair: FramePair) -> FlowSample:
        from .. import io
        flow = valid = None
        if pair.flow is not None:
            flow, valid = io.read_flow(pair.flow)
        return check_same_size(FlowSample(read_rgb(pair.img1), read_rgb(pair.img2), flow, valid, None,
                                           pair.name, dict(pair.meta)), pair)


