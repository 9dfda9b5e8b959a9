"""The PatchBatch pipeline end to end: known motion, the registered methods, CLI, degenerate inputs."""
import glob
import os
import re

import numpy as np
import pytest

import flowmatch
from flowmatch import _ext
from flowmatch.errors import InputError
from flowmatch.pipelines.patchbatch import NoMatchesWarning, patchbatch_flow

pytestmark = pytest.mark.skipif(not _ext.available(), reason="flowmatch._C not built")


def _shifted_pair(H=96, W=128, u=3, v=-2, seed=0):
    """A smooth random texture and the same texture moved by (u, v): flow is (u, v) wherever the
    source pixel is inside the frame."""
    import cv2

    rng = np.random.default_rng(seed)
    big = cv2.GaussianBlur(rng.uniform(0, 255, (H + 20, W + 20)).astype(np.float32), (0, 0), 1.5)
    big = cv2.normalize(big, None, 0, 255, cv2.NORM_MINMAX)
    img1 = big[10:10 + H, 10:10 + W]
    img2 = big[10 - v:10 - v + H, 10 - u:10 - u + W]  # img2(x + u, y + v) = img1(x, y)
    return np.repeat(img1[..., None], 3, 2).astype(np.uint8), np.repeat(img2[..., None], 3, 2).astype(np.uint8)


@pytest.mark.parametrize("descriptor", ["patchbatch", "raw"])
def test_translation_is_recovered(descriptor):
    a, b = _shifted_pair()
    flow = patchbatch_flow(a, b, preset="fast", descriptor=descriptor, descriptor_stride=2)
    assert flow.shape == (96, 128, 2) and flow.dtype == np.float32
    inner = flow[12:-12, 12:-12]
    err = np.linalg.norm(inner - np.float32([3, -2]), axis=2)
    assert np.median(err) < 0.25 and np.mean(err) < 0.6


@pytest.mark.parametrize("size", [{}, {"downscale": 2, "downscale_min_side": 32}])
def test_late_stages_rerun_on_cached_flows_equal_a_whole_run(size):
    # benchmarks/bench_late_stages.py relies on this: stages 3-5 re-run on one call's PatchMatch results
    # under other stage-3-5 options give what a whole pipeline run with those options gives
    from flowmatch.pipelines.patchbatch.pipeline import late_stages
    from flowmatch.pipelines.patchbatch.presets import resolve_config

    a, b = _shifted_pair(H=128, W=160)
    out, st = patchbatch_flow(a, b, preset="fast", descriptor="raw", return_stages=True, **size)
    assert st["downscale"] == (2 if size else 1) and st["matching_frame"].shape[:2] == (128 // st["downscale"], 160 // st["downscale"])
    late = dict(consistency=2.0, edge_sigma=3.0, nn=16, refine_iterations=2)
    cfg = resolve_config("fast", descriptor="raw", **size, **late)
    m, dense, got = late_stages(st["flow_ab"], st["flow_ba"], st["cost_ab"], st["matching_frame"], a.astype(np.float32),
                                b.astype(np.float32), cfg, st["downscale"])
    want, st2 = patchbatch_flow(a, b, preset="fast", descriptor="raw", return_stages=True, **size, **late)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(dense, st2["interpolated"])
    assert len(m) == len(st2["matches"]) and not np.array_equal(got, out)


def test_registered_methods_and_verbose_timings(capsys):
    names = {m.name for m in flowmatch.methods()}
    assert {"patchbatch-fast", "patchbatch-accurate"} <= names
    a, b = _shifted_pair(u=2, v=1)
    flow = flowmatch.flow(a, b, method="patchbatch-fast", verbose=True, descriptor_stride=2)
    err = np.linalg.norm(flow[12:-12, 12:-12] - np.float32([2, 1]), axis=2)
    assert np.median(err) < 0.25
    stages = capsys.readouterr().err
    for k, stage in enumerate(("descriptors", "patchmatch", "consistency", "interpolate", "refine"), 1):
        assert re.search(rf"\] {k}/5 {stage} +\d+\.\d+ s", stages), stages
    assert re.search(r"\] total +\d+\.\d+ s", stages), stages
    with pytest.raises(InputError):
        flowmatch.flow(a, b, method="patchbatch-fast", no_such_option=1)


def test_no_surviving_match_gives_a_defined_flow_and_a_warning(monkeypatch):
    import torch

    from flowmatch.pipelines.patchbatch import pipeline

    a, b = _shifted_pair()

    def inconsistent(da, db, cfg, seed=0):
        H, W = da.shape[:2]
        far = torch.full((H, W, 2), 10.0 * max(H, W))  # every target leaves the image
        cost = torch.ones(H, W)
        return far, cost, far, cost

    monkeypatch.setattr(pipeline, "match_descriptors", inconsistent)
    with pytest.warns(NoMatchesWarning):
        flow = patchbatch_flow(a, b, preset="fast", descriptor="raw")
    assert flow.shape == (96, 128, 2) and np.isfinite(flow).all()


def test_image_too_small_for_the_descriptor_patch():
    a = np.zeros((20, 20, 3), np.uint8)
    with pytest.raises(InputError):
        patchbatch_flow(a, a, preset="fast")


def test_cli_flow_with_patchbatch_fast(tmp_path):
    from flowmatch import io
    from flowmatch.cli import main

    a, b = _shifted_pair(u=-2, v=2)
    io.write_image(tmp_path / "a.png", a)
    io.write_image(tmp_path / "b.png", b)
    rc = main(["flow", str(tmp_path / "a.png"), str(tmp_path / "b.png"), "-o", str(tmp_path / "out.flo"),
               "--viz", str(tmp_path / "out.png"), "--method", "patchbatch-fast", "--option", "descriptor_stride=2"])
    assert rc == 0
    flow, _ = io.read_flow(tmp_path / "out.flo")
    assert np.median(np.linalg.norm(flow[12:-12, 12:-12] - np.float32([-2, 2]), axis=2)) < 0.25
    assert os.path.getsize(tmp_path / "out.png") > 0


@pytest.mark.slow
def test_real_sintel_pair_fast_preset(real_data):
    case = sorted(glob.glob(os.path.join(real_data, "sintel", "alley_1_clean_*")))[0]
    a, b = flowmatch.io.read_image(os.path.join(case, "img1.png")), flowmatch.io.read_image(os.path.join(case, "img2.png"))
    gt, valid = flowmatch.io.read_flow(os.path.join(case, "flow.flo"))
    flow = flowmatch.flow(a, b, method="patchbatch-fast")
    epe = np.linalg.norm(flow - gt, axis=2)[valid].mean()
    zero = np.linalg.norm(gt, axis=2)[valid].mean()
    assert epe < 0.5 * zero, (epe, zero)


def test_match_size_keeps_small_frames_whole():
    from flowmatch.pipelines.patchbatch.pipeline import match_size
    assert match_size(436, 1024, 1) == (436, 1024, 1)
    assert match_size(436, 1024, 2) == (218, 512, 2)
    assert match_size(437, 1023, 2) == (218, 512, 2)  # rounded, the flow is rescaled per axis
    assert match_size(96, 128, 4) == (32, 43, 3)      # the largest factor that keeps 32 px
    assert match_size(63, 500, 2) == (63, 500, 1)
    assert match_size(436, 1024, 2, 200) == (218, 512, 2) and match_size(384, 512, 2, 200)[2] == 1
    from flowmatch.pipelines.patchbatch import PRESETS
    fast = PRESETS["fast"]  # halves Sintel-sized frames, keeps Chairs/KITTI-sized ones whole
    assert match_size(436, 1024, fast.downscale, fast.downscale_min_side)[2] == 2
    assert match_size(384, 512, fast.downscale, fast.downscale_min_side)[2] == 1


def test_downscaled_matching_recovers_the_motion_at_full_size():
    """downscale=2 matches at half size (descriptors, PatchMatch, interpolation) and refines at full
    size: the flow comes back at the frame's size, in its pixels (not the matching size's)."""
    a, b = _shifted_pair(H=128, W=160, u=6, v=-4)
    flow, st = patchbatch_flow(a, b, preset="fast", descriptor="raw", downscale=2, downscale_min_side=32,
                               return_stages=True)
    assert flow.shape == (128, 160, 2) and st["downscale"] == 2
    assert st["matching"].coarse_factor == st["config"].matching.coarse_factor // 2  # same coarse cells in px
    assert st["flow_ab"].shape[:2] == (32, 40)  # half size, descriptors every 2nd pixel
    err = np.linalg.norm(flow[16:-16, 16:-16] - np.float32([6, -4]), axis=2)
    assert np.median(err) < 0.25 and np.mean(err) < 0.6
    # the refinement ran at full size with the DIS allowance scaled by the factor (matches 2x coarser)
    from flowmatch.image import as_image
    from flowmatch.pipelines.patchbatch.refinement import refine
    cfg = st["config"].refinement
    assert st["refinement"].dis_max_change == 2 * cfg.dis_max_change
    again = refine(st["interpolated"], as_image(a, "a"), as_image(b, "b"), st["refinement"])
    np.testing.assert_array_equal(flow, again)
    with pytest.raises(InputError, match="downscale"):
        patchbatch_flow(a, b, preset="fast", downscale=0)


@pytest.mark.parametrize("shape,factor", [((12, 16, 5), 2), ((13, 11, 3), 4), ((7, 9, 2), 3), ((4, 6, 3), 1)])
def test_pool_descriptors_is_the_cell_mean_with_repeated_edges(shape, factor):
    """The coarse PatchMatch level's pooling against a float64 loop over cells; partial edge cells
    repeat the last row/column, and half input gives a float32 field."""
    import torch

    from flowmatch.pipelines.patchbatch.matching import pool_descriptors

    x = torch.randn(*shape, generator=torch.Generator().manual_seed(factor))
    H, W, D = shape
    Hc, Wc = -(-H // factor), -(-W // factor)
    ref = np.zeros((Hc, Wc, D))
    xd = x.double().numpy()
    for i in range(Hc):
        for j in range(Wc):
            cells = [xd[min(i * factor + a, H - 1), min(j * factor + b, W - 1)]
                     for a in range(factor) for b in range(factor)]
            ref[i, j] = np.mean(cells, axis=0)
    out = pool_descriptors(x, factor)
    assert out.dtype == torch.float32 and out.shape == (Hc, Wc, D) and out.is_contiguous()
    np.testing.assert_allclose(out.numpy(), ref, atol=1e-6)
    half = pool_descriptors(x.half(), factor)
    assert half.dtype == torch.float32
    np.testing.assert_allclose(half.numpy(), ref, atol=2e-3)
