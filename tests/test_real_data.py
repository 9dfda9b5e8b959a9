"""The real sample pairs in ../shared/data/real: every ground truth parses, fits its frames, and
warping img2 by it reproduces img1 far better than zero flow."""
from __future__ import annotations

import os

import numpy as np
import pytest

import flowmatch.io as fio
import flowmatch.metrics as M
from flowmatch._paths import real_data_dir
from flowmatch.data.datasets import SampleCases
from flowmatch.warp import backward_warp


def _cases() -> list[str]:
    root = real_data_dir()
    if root is None:
        return ["<absent>"]  # the real_data fixture skips it
    return SampleCases(root).names


def _load(root: str, case: str):
    d = os.path.join(root, case)
    gt_path = next(os.path.join(d, n) for n in ("flow.flo", "flow_gt.png") if os.path.exists(os.path.join(d, n)))
    ext = ".png" if os.path.exists(os.path.join(d, "img1.png")) else ".ppm"
    img1, img2 = fio.read_image(os.path.join(d, "img1" + ext)), fio.read_image(os.path.join(d, "img2" + ext))
    gt, valid = fio.read_flow(gt_path)
    masks = {n: fio.read_mask(os.path.join(d, n + ".png"))
             for n in ("occlusions", "invalid") if os.path.exists(os.path.join(d, n + ".png"))}
    return gt_path, img1, img2, gt, valid, masks


@pytest.mark.parametrize("case", _cases())
def test_ground_truth_parses_and_fits(real_data, case):
    gt_path, img1, img2, gt, valid, masks = _load(real_data, case)
    assert img1.shape == img2.shape and img1.dtype == np.uint8 and img1.ndim == 3
    assert gt.shape == img1.shape[:2] + (2,) and gt.dtype == np.float32
    assert valid.shape == img1.shape[:2] and np.isfinite(gt).all()
    for name, m in masks.items():
        assert m.shape == img1.shape[:2], name
    if gt_path.endswith(".png"):   # sparse KITTI ground truth (about a quarter valid)
        assert 0.1 < valid.mean() < 0.6
        assert np.abs(gt[valid]).max() < 512 and (gt[~valid] == 0).all()
    else:
        assert valid.all()
        # Sintel/Chairs motions are at most a few hundred pixels
        assert 0 < np.abs(gt).max() < 500
    if "occlusions" in masks:
        assert 0 < masks["occlusions"].mean() < 0.5


@pytest.mark.parametrize("case", _cases())
def test_warping_by_ground_truth_reconstructs_img1(real_data, case):
    _, img1, img2, gt, valid, masks = _load(real_data, case)
    scored = valid.copy()
    for m in masks.values():   # non-occluded, valid pixels only
        scored &= ~m
    warped, inside = backward_warp(img2, gt)
    zero, _ = backward_warp(img2, np.zeros_like(gt))
    sel = scored & inside
    assert sel.sum() > 1000
    err_gt = np.abs(warped - img1)[sel].mean()
    err_zero = np.abs(zero - img1)[sel].mean()
    # Without an occlusion mask (Chairs) occluded pixels stay in, so the margin is smaller.
    assert err_gt < (0.5 if "occlusions" in masks or not valid.all() else 0.6) * err_zero, (err_gt, err_zero)
    # the wrong sign is no good either (the convention img1(x) ~ img2(x + flow) holds)
    wrong, inside_w = backward_warp(img2, -gt)
    sel_w = sel & inside_w
    assert err_gt < 0.8 * np.abs(wrong - img1)[sel_w].mean()


def test_sintel_protocol_on_real_ground_truth(real_data):
    cases = [c for c in _cases() if c.startswith("sintel")]
    if not cases:
        pytest.skip("no Sintel samples")
    acc = M.SintelMetrics()
    total, count = 0.0, 0
    for case in cases:
        _, _, _, gt, valid, masks = _load(real_data, case)
        v = valid & ~masks["invalid"]
        acc.add(np.zeros_like(gt), gt, v, masks["occlusions"])
        mag = np.linalg.norm(gt.astype(np.float64), axis=2)   # EPE of zero flow = |gt|
        total, count = total + mag[v].sum(), count + int(v.sum())
    r = acc.result()
    assert r["EPE-all"] == pytest.approx(total / count, rel=1e-9)
    assert r["n-matched"] + r["n-unmatched"] == r["n-all"] == count
    assert r["n-s0-10"] + r["n-s10-40"] + r["n-s40+"] == count
