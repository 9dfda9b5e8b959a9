"""The evaluation harness (flowmatch/evaluation/, `flowmatch eval`) on miniature dataset layouts."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

import flowmatch
from flowmatch import io, metrics
from flowmatch.cli import main
from flowmatch.errors import DatasetLayoutError, InputError
from flowmatch.evaluate import ImageMeanMetrics, evaluate
from flowmatch.evaluation import cache

import layouts  # miniature official dataset layouts (tests/layouts.py, on the path via conftest.py)

METHOD = "farneback"


def _json_metrics(d: dict) -> dict:
    """NaN -> None, like the report's JSON."""
    return {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in d.items()}


def _assert_same_metrics(got: dict, want: dict) -> None:
    want = _json_metrics(want)
    assert set(got) == set(want)
    for k, v in want.items():
        if v is None:
            assert got[k] is None, k
        else:
            assert got[k] == pytest.approx(v, rel=1e-12, abs=1e-12), k


def _flow(path1: str, path2: str) -> np.ndarray:
    return flowmatch.flow(io.read_image(path1), io.read_image(path2), method=METHOD)


def test_sintel_metrics_equal_the_accumulator_fed_by_hand(tmp_path):
    root = layouts.make_sintel(tmp_path, scenes=("alley_1", "cave_2"), frames=3)
    out = str(tmp_path / "out")
    report = evaluate("sintel", root, METHOD, pass_="final", out=out, progress=False)
    by_hand = metrics.SintelMetrics()
    names = []
    for name, t in sorted(layouts.truth(root).items()):
        scene, stem = name.split("/")
        n = int(stem[-4:])
        d = os.path.join(root, "training", "final", scene)
        f = _flow(os.path.join(d, f"frame_{n:04d}.png"), os.path.join(d, f"frame_{n + 1:04d}.png"))
        by_hand.add(f, t["flow"], t["valid"], t["occlusion"])
        names.append(name.replace("/", "_"))
    _assert_same_metrics(report["metrics"], by_hand.result())
    assert [r["name"] for r in report["frames"]] == names
    with open(os.path.join(out, "results.json")) as fh:
        assert json.load(fh)["metrics"] == report["metrics"]
    md = open(os.path.join(out, "results.md")).read()
    assert f"| EPE-all [px] | {report['metrics']['EPE-all']:.4f} |" in md
    frames = {r["name"]: r for r in report["frames"]}
    for n in names:  # per-frame rows: EPE [px], Out >3px [%], the frame's own matched / unmatched EPE
        r = frames[n]
        assert r["metrics"]["EPE-all"] == pytest.approx(r["epe"], rel=1e-12)
        assert (f"| {n} | {r['epe']:.4f} | {r['outliers_3px']:.4f} | {r['metrics']['EPE-matched']:.4f} | "
                f"{r['metrics']['EPE-unmatched']:.4f} |") in md
    assert "| frame | EPE [px] | Out >3px [%] | EPE-matched [px] | EPE-unmatched [px] | time [s] |" in md
    assert json.load(open(os.path.join(out, "results.json")))["units"]["EPE-all"] == "px"


@pytest.mark.parametrize("year", [2012, 2015])
def test_kitti_metrics_equal_the_accumulator_fed_by_hand(tmp_path, year):
    root = layouts.make_kitti(tmp_path, year=year, n=3)
    report = evaluate(f"kitti{year}", root, METHOD, progress=False)
    by_hand = metrics.Kitti2012Metrics() if year == 2012 else metrics.Kitti2015Metrics()
    img_dir = os.path.join(root, "training", "colored_0" if year == 2012 else "image_2")
    for name, t in sorted(layouts.truth(root).items()):
        fid = name[:6]
        f = _flow(os.path.join(img_dir, f"{fid}_10.png"), os.path.join(img_dir, f"{fid}_11.png"))
        gt, occ_valid = io.read_kitti_flow(os.path.join(root, "training", "flow_occ", f"{fid}_10.png"))
        np.testing.assert_array_equal(occ_valid, t["occ_valid"])
        if year == 2012:
            by_hand.add(f, gt, occ_valid, noc_valid=t["noc_valid"])
        else:
            by_hand.add(f, gt, occ_valid, obj_map=t["obj_map"], noc_valid=t["noc_valid"])
    want = by_hand.result()
    assert ("Out-Noc-3" in want) if year == 2012 else ("Fl-fg" in want and "Fl-all-noc" in want)
    _assert_same_metrics(report["metrics"], want)


@pytest.mark.parametrize("dataset", ["chairs", "middlebury"])
def test_per_image_datasets_average_over_images(tmp_path, dataset):
    if dataset == "chairs":
        root = layouts.make_chairs(tmp_path, n=3)
        cases = [(s, os.path.join(root, "data", f"{s}_img1.ppm"), os.path.join(root, "data", f"{s}_img2.ppm"),
                  t["flow"], None) for s, t in sorted(layouts.truth(root).items()) if t["split"] == 1]
    else:
        root = layouts.make_middlebury(tmp_path)
        cases = [(s, os.path.join(root, "other-data", s, "frame10.png"), os.path.join(root, "other-data", s, "frame11.png"),
                  t["flow"], t["valid"]) for s, t in sorted(layouts.truth(root).items())]
    report = evaluate(dataset, root, METHOD, progress=False)
    epes, aes = [], []
    for name, p1, p2, gt, valid in cases:
        f = _flow(p1, p2)
        epes.append(metrics.epe(f, gt, valid))
        aes.append(metrics.angular_error(f, gt, valid))
    assert report["metrics"]["images"] == len(cases)
    assert report["metrics"]["epe"] == pytest.approx(np.mean(epes), rel=1e-12)
    assert report["metrics"]["angular_error"] == pytest.approx(np.mean(aes), rel=1e-12)
    assert [r["epe"] for r in report["frames"]] == pytest.approx(epes, rel=1e-12)


def test_image_mean_metrics_merge_equals_sequential_adds():
    rng = np.random.default_rng(0)
    frames = [(rng.normal(size=(8, 9, 2)), rng.normal(size=(8, 9, 2))) for _ in range(4)]
    seq = ImageMeanMetrics()
    parts = []
    for f, g in frames:
        seq.add(f, g)
        one = ImageMeanMetrics()
        one.add(f, g)
        parts.append(one.state())
    assert ImageMeanMetrics().merge(parts).result() == seq.result()


def test_limit_panels_and_the_command(tmp_path, capsys):
    root = layouts.make_sintel(tmp_path, scenes=("alley_1",), frames=3)
    out = str(tmp_path / "out")
    assert main(["eval", "--dataset", "sintel", "--root", root, "--method", METHOD, "--limit", "1",
                 "--out", out, "--panels", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert f"{METHOD} on sintel (training, clean pass): 1 frames" in printed
    report = json.load(open(os.path.join(out, "results.json")))
    # an aligned table, one metric per line, display names with units
    rows = dict(re.split(r"\s{2,}", line.strip()) for line in printed.splitlines() if "[px]" in line)
    assert rows["EPE-all [px]"] == f"{report['metrics']['EPE-all']:.4f}"
    assert max(len(line) for line in printed.splitlines() if "wrote" not in line) < 80  # not one 600-char line
    assert json.load(open(os.path.join(out, "results.json")))["frames_evaluated"] == 1
    panel = io.read_image(os.path.join(out, "panels", "alley_1_frame_0001.png"))
    assert panel.shape[:2] == (2 * 48, 2 * 64)


def test_bad_layouts_and_arguments_raise_named_errors(tmp_path, capsys):
    root = layouts.make_sintel(tmp_path, scenes=("alley_1",), frames=2)
    with pytest.raises(InputError, match="unknown flow method"):
        evaluate("sintel", root, "no-such-method", progress=False)
    with pytest.raises(InputError, match="unknown dataset"):
        evaluate("sintelx", root, METHOD, progress=False)
    with pytest.raises(DatasetLayoutError, match="not a folder"):
        evaluate("sintel", str(tmp_path / "missing"), METHOD, progress=False)
    with pytest.raises(InputError, match="--limit"):
        evaluate("sintel", root, METHOD, limit=0, progress=False)
    shutil.rmtree(os.path.join(root, "training", "flow"))
    with pytest.raises(DatasetLayoutError, match="flow"):
        evaluate("sintel", root, METHOD, progress=False)
    kitti = layouts.make_kitti(tmp_path, year=2015, n=1)
    shutil.rmtree(os.path.join(kitti, "training", "flow_noc"))
    assert main(["eval", "--dataset", "kitti2015", "--root", kitti, "--method", METHOD]) == 1
    assert "flow_noc" in capsys.readouterr().err


def test_two_torchrun_processes_equal_one(tmp_path):
    root = layouts.make_sintel(tmp_path, scenes=("alley_1", "cave_2", "bamboo_1"), frames=3)  # 6 pairs
    one = evaluate("sintel", root, METHOD, progress=False)
    out = str(tmp_path / "two")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "flowmatch", "eval", "--dataset", "sintel", "--root", root, "--method", METHOD,
           "--out", out]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    two = json.load(open(os.path.join(out, "results.json")))
    assert two["world_size"] == 2 and one["world_size"] == 1
    assert two["metrics"] == one["metrics"]  # exactly, not approximately
    strip = lambda frames: [{k: v for k, v in f.items() if k != "seconds"} for f in frames]  # noqa: E731
    assert strip(two["frames"]) == strip(one["frames"])
    assert "6/6" in r.stderr  # rank 0's bar counts the frames of both ranks
    # each rank cached its own frames: a one-process resume reuses all six
    record = cache.read_record(out)
    assert cache.FrameCache(os.path.join(out, record["cache"])).indices() == list(range(6))
    assert not [f for f in os.listdir(os.path.join(out, record["cache"])) if f.startswith(".")]  # markers cleared
    resumed = evaluate("sintel", root, METHOD, out=out, progress=False, resume=True)
    assert resumed["frames_reused"] == 6 and resumed["metrics"] == one["metrics"]


@pytest.mark.slow
def test_a_failing_rank_stops_every_rank_with_a_named_error(tmp_path):
    root = layouts.make_sintel(tmp_path, scenes=("alley_1", "cave_2"), frames=3)
    with open(os.path.join(root, "training", "clean", "alley_1", "frame_0003.png"), "wb") as fh:
        fh.write(b"not a png")  # pair 1 (alley_1 frame 2 -> 3) runs on rank 1
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "flowmatch", "eval", "--dataset", "sintel", "--root", root, "--method", METHOD, "--quiet"]
    r = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300)
    assert r.returncode != 0
    assert "rank 1 failed: FlowFormatError" in r.stderr  # rank 0 names the failing rank
    assert "frame_0003.png" in r.stderr


def test_a_frame_without_valid_pixels_is_reported_as_missing_values(tmp_path, capsys):
    from flowmatch.data.base import FlowSample

    rng = np.random.default_rng(3)
    img = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
    gt = np.zeros((48, 64, 2), np.float32)
    samples = [FlowSample(img, img, gt, np.ones((48, 64), bool), name="seen"),
               FlowSample(img, img, gt, np.zeros((48, 64), bool), name="empty")]
    report = evaluate("middlebury", "", METHOD, samples=samples, out=str(tmp_path / "o"), progress=True)
    assert [r["epe"] for r in report["frames"]][1] is None  # NaN -> null, and the progress bar copes
    assert report["metrics"]["epe"] == pytest.approx(report["frames"][0]["epe"])  # the empty frame is left out
    assert "| empty | - | - |" in open(os.path.join(str(tmp_path / "o"), "results.md")).read()
