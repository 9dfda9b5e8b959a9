"""The real sample pairs: <root>/<group>/<case>/ folders with img1.*, img2.* and flow.flo or
flow_gt.png (the ../shared/data/real layout)."""
from __future__ import annotations

import os
from typing import Sequence

from ..errors import DatasetLayoutError, InputError
from .base import FlowSample, listdir, require_dir


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
    for group in sorted(listdir(root)):
        gdir = os.path.join(root, group)
        if not os.path.isdir(gdir):
            continue
        for case in sorted(listdir(gdir)):
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

    require_dir(folder, "a sample-case folder with img1.*, img2.* and flow.flo or flow_gt.png")
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




# The groups the project reports real-pair numbers in: (label, name prefix, part of the name).
REPORT_GROUPS = (("Sintel clean", "sintel/", "_clean_"), ("Sintel final", "sintel/", "_final_"),
                 ("Chairs", "flyingchairs/", ""), ("KITTI 2012", "kitti2012/", ""))


def report_group(name: str) -> str:
    """The report group ("Sintel clean", "Sintel final", "Chairs", "KITTI 2012", else "other") of a
    sample case named "<group>/<case>"."""
    for label, prefix, part in REPORT_GROUPS:
        if name.startswith(prefix) and part in name:
            return label
    return "other"
