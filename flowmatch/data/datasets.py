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

The readers live in base.py (shared), benchmarks.py, sample_cases.py and synthetic_dataset.py;
this module is their public name.  Images are returned as H×W×3 uint8 RGB (grey images are repeated to three channels); flow as
H×W×2 float32 pixels, x (u) first; valid as H×W bool.  Test splits have flow = valid = None.
"""
from __future__ import annotations

from .base import FlowDataset, FlowSample, FramePair, collate
from .benchmarks import FlyingChairs, Kitti, Middlebury, Sintel
from .sample_cases import SampleCases, read_sample_case, sample_case_dirs
from .synthetic_dataset import SyntheticFlow

__all__ = ["FlowSample", "FramePair", "FlowDataset", "Sintel", "Kitti", "FlyingChairs", "Middlebury",
           "SyntheticFlow", "SampleCases", "sample_case_dirs", "read_sample_case", "collate"]
