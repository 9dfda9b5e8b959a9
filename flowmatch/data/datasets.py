"""Readers for the official optical-flow dataset layouts, as sequences of FlowSample.

Each dataset lists its frame pairs when constructed (file names only, nothing is decoded) and
loads one pair per `dataset[i]`; `dataset.frame_pairs` exposes the listing (paths, name, meta) so
evaluation can iterate or shard pairs without loading them.  A folder or file missing from the
official layout raises DatasetLayoutError naming it and what was expected.

Layouts (root = the folder you downloaded and unpacked):

- Sintel: <root>/{training,test}/{clean,final}/<scene>/frame_XXXX.png, training/flow/<scene>/
  frame_XXXX.flo (flow from frame i to i+1), training/occlusions/ and training/invalid/ (binary
  PNGs, optional).  Pairs are consecutive frames of a scene.
- KITTI 2012: <root>/{training,testing}/{colored_0 | image_0}/XXXXXX_{10,11}.png,
  training/{flow_occ,flow_noc}/XXXXXX_10.png (16-bit KITTI flow PNGs).
- KITTI 2015: <root>/{training,testing}/image_2/XXXXXX_{10,11}.png, training/{flow_occ,
  flow_noc,obj_map}/XXXXXX_10.png.
- FlyingChairs: <root>/data/XXXXX_{img1,img2}.ppm + XXXXX_flow.flo, and FlyingChairs_train_val.txt
  (one line per pair in numeric order: 1 = train, 2 = val) in <root> or <root>/data.
- Middlebury: <root>/other-data/<scene>/frame{10,11}.png + <root>/other-gt-flow/<scene>/flow10.flo
  (split "training"; split "test" reads eval-data/<scene>/ without ground truth).

Images are returned as H×W×3 uint8 RGB (grey images are repeated to three channels); flow as
H×W×2 float32 pixels, x (u) first; valid as H×W bool.  Test splits have flow = valid = None.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

import numpy as np

from ..errors import DatasetLayoutError, InputError

__all__ = ["FlowSample", "FramePair", "FlowDataset", "Sintel", "Kitti", "FlyingChairs", "Middlebury",
           "SyntheticFlow", "SampleCases", "sample_case_dirs", "read_sample_case", "collate"]


@dataclass
class FlowSample:
    """One image pair with its ground truth.

    img1, img2: H×W×3 uint8 RGB.  flow: H×W×2 float32 (pixels, x (u) first) from img1 to img2, or
    None when the split has no ground truth.  valid: H×W bool (True where flow is known) or None.
    occlusion: H×W bool (True = img1 pixel not visible in img2) or None when the dataset has none.
    name: a stable identifier ("alley_1/frame_0001", "000123_10", ...).  meta: per-dataset
    extras (scene/frame, KITTI id and masks, ...).
    """

    img1: np.ndarray
    img2: np.ndarray
    flow: np.ndarray | None
    valid: np.ndarray | None
    occlusion: np.ndarray | None = None
    name: str = ""
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class FramePair:
    """The files of one pair, without loading them.

    img1, img2: image paths.  flow: ground-truth path or None.  extra: other per-pair files by role
    (e.g. "occlusion", "invalid", "flow_noc", "obj_map").  name, meta: as in the loaded FlowSample."""

    img1: str | None
    img2: str | None
    flow: str | None
    name: str
    extra: dict[str, str] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)


# ----------------------------------------------------------------------------------------------
# helpers

def _require_dir(path: str, what: str) -> str:
    if not os.path.isdir(path):
        raise DatasetLayoutError(f"missing folder {path!r}: expected {what}")
    return path


def _require_file(path: str, what: str) -> str:
    if not os.path.isfile(path):
        raise DatasetLayoutError(f"missing file {path!r}: expected {what}")
    return path


def _listdir(path: str) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except OSError as e:
        raise DatasetLayoutError(f"cannot list folder {path!r}: {e.strerror}") from e


def _rgb(img: np.ndarray, path: str) -> np.ndarray:
    """H×W×3 uint8 RGB from an image as stored (grey -> 3 channels; 16 bit -> 8 bit)."""
    if img.dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    if img.dtype != np.uint8:
        raise DatasetLayoutError(f"{path!r}: expected an 8- or 16-bit image, got {img.dtype}")
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    return img


def _read_rgb(path: str) -> np.ndarray:
    from .. import io
    return _rgb(io.read_image(path), path)


def _check_same_size(sample: FlowSample, pair: FramePair) -> FlowSample:
    shapes = {"img1": sample.img1.shape[:2], "img2": sample.img2.shape[:2]}
    if sample.flow is not None:
        shapes["flow"] = sample.flow.shape[:2]
    if sample.occlusion is not None:
        shapes["occlusion"] = sample.occlusion.shape[:2]
    if len(set(shapes.values())) != 1:
        raise DatasetLayoutError(f"pair {pair.name!r}: files differ in size {shapes} "
                                 f"({pair.img1}, {pair.img2}, {pair.flow})")
    return sample


def _split_name(split: str, names: dict[str, str], dataset: str) -> str:
    try:
        return names[split]
    except (KeyError, TypeError):
        raise InputError(f"{dataset}: split={split!r} is not one of {', '.join(sorted(names))}") from None


class FlowDataset(Sequence[FlowSample]):
    """A sequence of FlowSample over a list of FramePair; subclasses implement `_load(pair)`.

    Works as a torch Dataset (len + integer indexing); `frame_pairs` lists the files."""

    def __init__(self, pairs: list[FramePair]) -> None:
        self._pairs = pairs

    @property
    def frame_pairs(self) -> list[FramePair]:
        """The pairs' files, names and meta in dataset order (nothing is loaded)."""
        return list(self._pairs)

    def __len__(self) -> int:
        return len(self._pairs)

    def __getitem__(self, index: int) -> FlowSample:  # type: ignore[override]
        if isinstance(index, slice):
            raise InputError("dataset slicing is not supported; index pairs one at a time "
                             "(or use frame_pairs for the listing)")
        if not isinstance(index, (int, np.integer)):
            raise InputError(f"dataset index must be an int, got {type(index).__name__}")
        n = len(self._pairs)
        i = int(index) + n if index < 0 else int(index)
        if not 0 <= i < n:
            raise IndexError(f"index {index} out of range for a dataset of {n} pairs")
        return self._load(self._pairs[i])

    def __iter__(self) -> Iterator[FlowSample]:
        for i in range(len(self)):
            yield self[i]

    def _load(self, pair: FramePair) -> FlowSample:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self)} pairs)"


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
        split = _split_name(split, {"training": "training", "train": "training", "test": "test",
                                    "testing": "test"}, "Sintel")
        if pass_ not in ("clean", "final"):
            raise InputError(f"Sintel: pass_={pass_!r} must be 'clean' or 'final'")
        self.root, self.split, self.pass_ = root, split, pass_
        _require_dir(root, "the MPI-Sintel root (holding training/ and test/)")
        base = _require_dir(os.path.join(root, split), f"Sintel's {split}/ folder under the root")
        img_dir = _require_dir(os.path.join(base, pass_), f"the {pass_} pass: {split}/{pass_}/<scene>/frame_XXXX.png")
        has_gt = split == "training"
        flow_dir = _require_dir(os.path.join(base, "flow"), "ground truth: training/flow/<scene>/frame_XXXX.flo") \
            if has_gt else None
        extras = {role: os.path.join(base, role) for role in ("occlusions", "invalid")}
        extras = {role: p for role, p in extras.items() if has_gt and os.path.isdir(p)}
        scenes = [s for s in _listdir(img_dir) if os.path.isdir(os.path.join(img_dir, s))]
        if not scenes:
            raise DatasetLayoutError(f"no scene folders in {img_dir!r}: expected "
                                     f"{split}/{pass_}/<scene>/frame_XXXX.png")
        pairs: list[FramePair] = []
        for scene in scenes:
            frames = dict(sorted((int(m.group(1)), f) for f in _listdir(os.path.join(img_dir, scene))
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
                    flow = _require_file(os.path.join(flow_dir, scene, stem + ".flo"),
                                         f"the flow of {scene}/{f1} -> {f2}")
                    for role, d in extras.items():
                        extra[role] = _require_file(os.path.join(d, scene, f1),
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
        img1, img2 = _read_rgb(pair.img1), _read_rgb(pair.img2)
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
        return _check_same_size(FlowSample(img1, img2, flow, valid, occ, pair.name, meta), pair)


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
        split = _split_name(split, {"training": "training", "train": "training", "testing": "testing",
                                    "test": "testing"}, "Kitti")
        if gt not in ("occ", "noc"):
            raise InputError(f"Kitti: gt={gt!r} must be 'occ' (all pixels) or 'noc' (non-occluded)")
        self.root, self.year, self.split, self.gt = root, int(year), split, gt
        _require_dir(root, f"the KITTI {year} flow root (holding training/ and testing/)")
        base = _require_dir(os.path.join(root, split), f"KITTI's {split}/ folder under the root")
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
                gt_dirs[sub] = _require_dir(os.path.join(base, sub), f"KITTI {year} ground truth {sub}/XXXXXX_10.png")
        ids = [m.group(1) for f in _listdir(img_dir) if (m := _KITTI_FRAME.match(f))]
        if not ids:
            raise DatasetLayoutError(f"no XXXXXX_10.png frames in {img_dir!r}")
        pairs = []
        for fid in ids:
            img2 = _require_file(os.path.join(img_dir, f"{fid}_11.png"), f"the second frame of {fid}")
            extra = {sub: _require_file(os.path.join(d, f"{fid}_10.png"), f"{sub} of frame {fid}")
                     for sub, d in gt_dirs.items()}
            flow = extra.get(f"flow_{gt}")
            pairs.append(FramePair(os.path.join(img_dir, f"{fid}_10.png"), img2, flow, name=f"{fid}_10",
                                   extra=extra, meta={"id": fid, "year": self.year}))
        super().__init__(pairs)

    def _load(self, pair: FramePair) -> FlowSample:
        from .. import io
        img1, img2 = _read_rgb(pair.img1), _read_rgb(pair.img2)
        meta = dict(pair.meta)
        if pair.flow is None:
            return _check_same_size(FlowSample(img1, img2, None, None, None, pair.name, meta), pair)
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
        return _check_same_size(FlowSample(img1, img2, flow, valid, occlusion, pair.name, meta), pair)


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
        split = _split_name(split, {"train": "train", "training": "train", "val": "val", "validation": "val",
                                    "test": "val", "all": "all"}, "FlyingChairs")
        self.root, self.split = root, split
        _require_dir(root, "the Flying Chairs root (holding data/)")
        data = _require_dir(os.path.join(root, "data"),
                            "Flying Chairs frames data/XXXXX_img1.ppm, _img2.ppm, _flow.flo")
        nums = sorted((int(m.group(1)), m.group(1)) for f in _listdir(data) if (m := _CHAIRS_FRAME.match(f)))
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
            img2 = _require_file(os.path.join(data, f"{stem}_img2.ppm"), f"the second frame of pair {stem}")
            flow = _require_file(os.path.join(data, f"{stem}_flow.flo"), f"the flow of pair {stem}")
            pairs.append(FramePair(os.path.join(data, f"{stem}_img1.ppm"), img2, flow, name=stem,
                                   meta={"index": num}))
        super().__init__(pairs)

    def _load(self, pair: FramePair) -> FlowSample:
        from .. import io
        flow, valid = io.read_flow(pair.flow)
        return _check_same_size(FlowSample(_read_rgb(pair.img1), _read_rgb(pair.img2), flow, valid, None,
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
        split = _split_name(split, {"training": "training", "train": "training", "test": "test",
                                    "testing": "test"}, "Middlebury")
        self.root, self.split = root, split
        _require_dir(root, "the Middlebury flow root (holding other-data/ and other-gt-flow/)")
        training = split == "training"
        folder = "other-data" if training else "eval-data"
        data = _require_dir(os.path.join(root, folder), f"{folder}/<scene>/frame10.png, frame11.png")
        gt = _require_dir(os.path.join(root, "other-gt-flow"), "other-gt-flow/<scene>/flow10.flo") if training else None
        listed, expected = (gt, "other-gt-flow/<scene>/flow10.flo") if training else (data, "eval-data/<scene>/frame10.png")
        scenes = [s for s in _listdir(listed) if os.path.isdir(os.path.join(listed, s))]
        if not scenes:
            raise DatasetLayoutError(f"no scene folders in {listed!r}: expected {expected}")
        pairs = []
        for s in scenes:
            flow = _require_file(os.path.join(gt, s, "flow10.flo"), f"the ground truth of scene {s}") if training else None
            img1 = _require_file(os.path.join(data, s, "frame10.png"), f"the first frame of scene {s}")
            img2 = _require_file(os.path.join(data, s, "frame11.png"), f"the second frame of scene {s}")
            pairs.append(FramePair(img1, img2, flow, name=s, meta={"scene": s}))
        super().__init__(pairs)

    def _load(self, pair: FramePair) -> FlowSample:
        from .. import io
        flow = valid = None
        if pair.flow is not None:
            flow, valid = io.read_flow(pair.flow)
        return _check_same_size(FlowSample(_read_rgb(pair.img1), _read_rgb(pair.img2), flow, valid, None,
                                           pair.name, dict(pair.meta)), pair)


# ----------------------------------------------------------------------------------------------
# sample cases (the ../shared/data/real layout)

def _case_file(folder: str, stem: str) -> str | None:
    """First file named `stem`.<ext> in `folder` (sorted), or None."""
    hits = sorted(f for f in os.listdir(folder) if os.path.splitext(f)[0] == stem
                  and os.path.isfile(os.path.join(folder, f)))
    return os.path.join(folder, hits[0]) if hits else None


def sample_case_dirs(root: str | None = None) -> list[str]:
    """Case folders <root>/<group>/<case>/ that hold an img1.* file, sorted by "<group>/<case>".

    root defaults to flowmatch._paths.real_data_dir().  Lightweight: reads no image.  Raises
    DatasetLayoutError when root is missing (an empty list when it has no case folder)."""
    if root is None:
        from .._paths import real_data_dir
        root = real_data_dir()
    if root is None or not os.path.isdir(root):
        raise DatasetLayoutError(f"sample-case folder {root!r} not found: expected <root>/<group>/<case>/ with "
                                 "img1.*, img2.*, flow.flo or flow_gt.png (pass root= or set FLOWMATCH_REAL_DATA)")
    found = []
    for group in sorted(_listdir(root)):
        gdir = os.path.join(root, group)
        if not os.path.isdir(gdir):
            continue
        for case in sorted(_listdir(gdir)):
            cdir = os.path.join(gdir, case)
            if os.path.isdir(cdir) and _case_file(cdir, "img1") is not None:
                found.append(cdir)
    return found


def read_sample_case(folder: str, name: str | None = None) -> FlowSample:
    """One sample case: img1.*, img2.* (as stored, via flowmatch.io.read_image), flow.flo or
    flow_gt.png (KITTI 16-bit), optional invalid.png and occlusions.png (nonzero = invalid / occluded).

    valid = flow valid & ~invalid; occlusion is None without occlusions.png.  name defaults to
    "<group>/<case>" from the last two path parts; meta holds group, case and dir."""
    from .. import io

    _require_dir(folder, "a sample-case folder with img1.*, img2.* and flow.flo or flow_gt.png")
    img1, img2 = _case_file(folder, "img1"), _case_file(folder, "img2")
    flo = _case_file(folder, "flow") or _case_file(folder, "flow_gt")
    if img1 is None or img2 is None or flo is None:
        raise DatasetLayoutError(f"{folder!r} is not a sample case: it needs img1.*, img2.* and flow.flo "
                                 "(or flow_gt.png)")
    flow, valid = io.read_flow(flo)
    inv_path, occ_path = os.path.join(folder, "invalid.png"), os.path.join(folder, "occlusions.png")
    if os.path.isfile(inv_path):
        valid = valid & ~io.read_mask(inv_path)
    occ = io.read_mask(occ_path) if os.path.isfile(occ_path) else None
    norm = os.path.normpath(folder)
    case, group = os.path.basename(norm), os.path.basename(os.path.dirname(norm))
    return FlowSample(io.read_image(img1), io.read_image(img2), flow, valid, occ,
                      name=name or f"{group}/{case}", meta={"group": group, "case": case, "dir": folder})


class SampleCases(Sequence[FlowSample]):
    """The real sample pairs: every <root>/<group>/<case>/ folder (see sample_case_dirs), read on access.

    root defaults to flowmatch._paths.real_data_dir(); a missing root raises DatasetLayoutError.
    Item i is a FlowSample named "<group>/<case>" (images as stored, flow H×W×2 float32 px,
    valid = flow valid & ~invalid.png, occlusion from occlusions.png or None).  `dirs` and `names`
    list the cases without reading them."""

    def __init__(self, root: str | None = None) -> None:
        self.dirs = sample_case_dirs(root)
        self.names = ["/".join(os.path.normpath(d).split(os.sep)[-2:]) for d in self.dirs]

    def __len__(self) -> int:
        return len(self.dirs)

    def __getitem__(self, i: int) -> FlowSample:  # type: ignore[override]
        if isinstance(i, slice):
            raise InputError("SampleCases does not support slices; index one case at a time")
        if not -len(self) <= i < len(self):
            raise IndexError(f"case index {i} out of range for {len(self)} cases")
        return read_sample_case(self.dirs[i], self.names[i])


# ----------------------------------------------------------------------------------------------
# procedural

class SyntheticFlow(FlowDataset):
    """`n` procedural flying-shapes pairs (flowmatch.data.synthetic.generate_pair), generated on access.

    Pair i is deterministic: its seed is derived from (seed, i), so any index can be drawn alone
    and in any order (DataLoader workers included).  Extra keyword options go to generate_pair."""

    def __init__(self, n: int, height: int = 384, width: int = 512, seed: int = 0, **options: Any) -> None:
        from .synthetic import generate_pair

        if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 0:
            raise InputError(f"SyntheticFlow: n={n!r} must be an int >= 0")
        if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
            raise InputError(f"SyntheticFlow: seed={seed!r} must be an int >= 0")
        if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 4 for v in (height, width)):
            raise InputError(f"SyntheticFlow: height={height!r}, width={width!r} must be ints >= 4")
        if options:  # reject bad options here rather than later inside a DataLoader worker
            try:
                generate_pair(8, 8, 0, **options)
            except TypeError as e:
                raise InputError(f"SyntheticFlow: unknown generator option ({e}); see generate_pair") from None
        self.height, self.width, self.seed, self.options = int(height), int(width), int(seed), dict(options)
        super().__init__([FramePair(None, None, None, name=f"synthetic_{i:06d}", meta={"index": i})
                          for i in range(int(n))])

    def _load(self, pair: FramePair) -> FlowSample:
        from .synthetic import generate_pair
        i = pair.meta["index"]
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, i]))
        p = generate_pair(self.height, self.width, rng, **self.options)
        return FlowSample(p.img1, p.img2, p.flow, p.valid, p.occlusion, pair.name, {"index": i})


# ----------------------------------------------------------------------------------------------
# batching

def collate(samples: Sequence[FlowSample]) -> dict[str, Any]:
    """Stack FlowSamples of equal size into torch tensors (a DataLoader collate_fn).

    Returns img1, img2: N×3×H×W float32 in [0, 1]; flow: N×2×H×W float32 (pixels, x first);
    valid: N×H×W bool; occlusion: N×H×W bool (False where a sample has none); names: list[str].
    Samples without ground truth get flow 0 and valid False."""
    import torch

    if not samples:
        raise InputError("collate: got no samples")
    shapes = {s.img1.shape[:2] for s in samples}
    if len(shapes) != 1:
        raise InputError(f"collate: samples differ in size {sorted(shapes)}; crop or resize them first "
                         "(FlowAugment(crop=...))")
    h, w = shapes.pop()

    def img(x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(x)).permute(2, 0, 1).float().div_(255.0)

    zeros_flow = np.zeros((h, w, 2), np.float32)
    zeros_mask = np.zeros((h, w), bool)
    return {
        "img1": torch.stack([img(s.img1) for s in samples]),
        "img2": torch.stack([img(s.img2) for s in samples]),
        "flow": torch.stack([torch.from_numpy(np.ascontiguousarray(s.flow if s.flow is not None else zeros_flow))
                             .permute(2, 0, 1).float() for s in samples]),
        "valid": torch.stack([torch.from_numpy(np.ascontiguousarray(s.valid if s.valid is not None else zeros_mask))
                              for s in samples]),
        "occlusion": torch.stack([torch.from_numpy(np.ascontiguousarray(
            s.occlusion if s.occlusion is not None else zeros_mask)) for s in samples]),
        "names": [s.name for s in samples],
    }
