"""The benchmark datasets `flowmatch eval` knows, opened from their official layouts."""
from __future__ import annotations

import os
from typing import Any, Sequence

from ..data import datasets as ds
from ..errors import DatasetLayoutError, InputError

DATASETS = ("sintel", "kitti2012", "kitti2015", "middlebury", "chairs")


def open_dataset(dataset: str, root: str, split: str = "training", pass_: str = "clean") -> Sequence[Any]:
    """The dataset `dataset` under `root` as a sequence of FlowSample (flowmatch.data.datasets).

    KITTI samples hold the all-pixels ("occ") ground truth, with the non-occluded mask in
    meta["noc_valid"], since the official tables report both."""
    if dataset not in DATASETS:
        raise InputError(f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}")
    if not root or not os.path.isdir(root):
        raise DatasetLayoutError(f"dataset root {root!r} is not a folder; pass --root PATH to the "
                                 f"{dataset} dataset (the folder holding its official layout)")
    if dataset == "sintel":
        if pass_ not in ("clean", "final"):
            raise InputError(f"--pass must be clean or final, got {pass_!r}")
        return ds.Sintel(root, split=split, pass_=pass_)
    if dataset in ("kitti2012", "kitti2015"):
        # sample.flow/valid = flow_occ (all pixels); meta["noc_valid"] = the flow_noc mask
        return ds.Kitti(root, year=int(dataset[-4:]), split=split, gt="occ")
    if dataset == "chairs":
        return ds.FlyingChairs(root, split={"training": "train", "validation": "val"}.get(split, split))
    return ds.Middlebury(root, split=split)
