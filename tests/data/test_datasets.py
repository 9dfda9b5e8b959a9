"""Dataset readers on miniature official layouts (tests/layouts.py) and on the real samples."""
from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

from flowmatch import io
from flowmatch.data.datasets import (FlowSample, FlyingChairs, Kitti, Middlebury, SampleCases, Sintel,
                                     SyntheticFlow, collate)
from flowmatch.data.synthetic import generate_pair
from flowmatch.errors import DatasetLayoutError, InputError

from layouts import make_chairs, make_kitti, make_middlebury, make_sintel, truth

KITTI_STEP = 1.0 / 64  # KITTI PNG quantisation; rounding error <= half of it


# ----------------------------------------------------------------------------------------------
# Sintel

def test_sintel_pairs_and_values(tmp_path):
    root = make_sintel(tmp_path, scenes=("alley_1", "cave_2"), frames=3)
    gt = truth(root)
    for pass_ in ("clean", "final"):
        ds = Sintel(root, pass_=pass_)
        assert len(ds) == 4
        assert [p.name for p in ds.frame_pairs] == ["alley_1/frame_0001", "alley_1/frame_0002",
                                                    "cave_2/frame_0001", "cave_2/frame_0002"]
        fp = ds.frame_pairs[1]
        assert fp.img1.endswith(os.path.join(pass_, "alley_1", "frame_0002.png"))
        assert fp.img2.endswith(os.path.join(pass_, "alley_1", "frame_0003.png"))
        assert fp.flow.endswith(os.path.join("flow", "alley_1", "frame_0002.flo"))
        for s in ds:
            g = gt[s.name]
            assert s.img1.shape == (48, 64, 3) and s.img1.dtype == np.uint8
            np.testing.assert_array_equal(s.flow, g["flow"])
            np.testing.assert_array_equal(s.occlusion, g["occlusion"])
            np.testing.assert_array_equal(s.valid, g["valid"])  # invalid/ removes pixels
            assert not s.valid[:2, :2].any() and s.valid.sum() == s.valid.size - 4
            assert s.meta["scene"] == s.name.split("/")[0] and s.meta["pass"] == pass_
    s = Sintel(root, pass_="clean")[-1]
    assert s.name == "cave_2/frame_0002" and s.meta["frame"] == 2
    # clean frame k+1 is frame k's img2 (consecutive pairs share frames)
    np.testing.assert_array_equal(Sintel(root)[0].img2, Sintel(root)[1].img1)


def test_sintel_test_split_and_optional_masks(tmp_path):
    root = make_sintel(tmp_path, scenes=("alley_1",), frames=4, test_scenes=("ambush_1", "bamboo_3"),
                       occlusions=False, invalid=False)
    test = Sintel(root, split="test", pass_="final")
    assert len(test) == 6
    s = test[0]
    assert s.flow is None and s.valid is None and s.occlusion is None and s.img1.shape == (48, 64, 3)
    s = Sintel(root)[0]
    assert s.occlusion is None and s.valid.all()


def test_sintel_layout_errors(tmp_path):
    with pytest.raises(DatasetLayoutError, match="nowhere"):
        Sintel(tmp_path / "nowhere")
    root = make_sintel(tmp_path)
    shutil.rmtree(os.path.join(root, "training", "final"))
    with pytest.raises(DatasetLayoutError, match="final"):
        Sintel(root, pass_="final")
    os.remove(os.path.join(root, "training", "flow", "cave_2", "frame_0002.flo"))
    with pytest.raises(DatasetLayoutError, match="frame_0002.flo"):
        Sintel(root)
    shutil.rmtree(os.path.join(root, "training", "flow"))
    with pytest.raises(DatasetLayoutError, match="flow"):
        Sintel(root)
    with pytest.raises(InputError):
        Sintel(root, pass_="albedo")
    with pytest.raises(InputError):
        Sintel(root, split="validation")


def test_sintel_missing_mask_file_is_a_layout_error(tmp_path):
    root = make_sintel(tmp_path)
    os.remove(os.path.join(root, "training", "occlusions", "alley_1", "frame_0001.png"))
    with pytest.raises(DatasetLayoutError, match="occlusions"):
        Sintel(root)


# ----------------------------------------------------------------------------------------------
# KITTI

@pytest.mark.parametrize("year,gray", [(2012, False), (2012, True), (2015, False)])
def test_kitti_values_and_masks(tmp_path, year, gray):
    root = make_kitti(tmp_path, year=year, n=3, gray=gray)
    gt = truth(root)
    occ, noc = Kitti(root, year=year, gt="occ"), Kitti(root, year=year, gt="noc")
    assert len(occ) == len(noc) == 3
    assert [p.name for p in occ.frame_pairs] == ["000000_10", "000001_10", "000002_10"]
    for a, b in zip(occ, noc):
        g = gt[a.name]
        assert a.img1.shape == (40, 96, 3) and a.img1.dtype == np.uint8
        if gray:
            assert (a.img1[..., 0] == a.img1[..., 2]).all()
            np.testing.assert_array_equal(a.img1[..., 0], g["img1"])
        else:
            np.testing.assert_array_equal(a.img1, g["img1"])
        np.testing.assert_array_equal(a.valid, g["occ_valid"])
        np.testing.assert_array_equal(b.valid, g["noc_valid"])
        np.testing.assert_array_equal(a.meta["noc_valid"], g["noc_valid"])
        np.testing.assert_array_equal(b.meta["occ_valid"], g["occ_valid"])
        # half a quantisation step, plus float32 rounding near the 2^15 offset
        assert np.abs(a.flow - g["flow"])[a.valid].max() <= KITTI_STEP / 2 + 1e-4
        # occlusion = valid in flow_occ but not in flow_noc
        np.testing.assert_array_equal(a.occlusion, g["occ_valid"] & ~g["noc_valid"])
        assert a.meta["id"] == a.name[:6] and a.meta["year"] == year
        if year == 2015:
            np.testing.assert_array_equal(a.meta["obj_map"], g["obj_map"])
        else:
            assert "obj_map" not in a.meta


def test_kitti_testing_split(tmp_path):
    root = make_kitti(tmp_path, year=2015, n=1, test=3)
    for split in ("testing", "test"):
        ds = Kitti(root, year=2015, split=split)
        assert len(ds) == 3 and ds[2].flow is None and ds[2].valid is None and ds[2].img2.shape == (40, 96, 3)


def test_kitti_layout_errors(tmp_path):
    root = make_kitti(tmp_path, year=2015)
    with pytest.raises(DatasetLayoutError, match="colored_0"):
        Kitti(root, year=2012)  # a 2015 layout has image_2, not colored_0/image_0
    os.remove(os.path.join(root, "training", "image_2", "000001_11.png"))
    with pytest.raises(DatasetLayoutError, match="000001_11.png"):
        Kitti(root, year=2015)
    root = make_kitti(tmp_path / "b", year=2015)
    shutil.rmtree(os.path.join(root, "training", "obj_map"))
    with pytest.raises(DatasetLayoutError, match="obj_map"):
        Kitti(root, year=2015)
    root = make_kitti(tmp_path / "c", year=2012)
    os.remove(os.path.join(root, "training", "flow_noc", "000002_10.png"))
    with pytest.raises(DatasetLayoutError, match="flow_noc"):
        Kitti(root, year=2012)
    with pytest.raises(InputError):
        Kitti(root, year=2013)
    with pytest.raises(InputError):
        Kitti(root, year=2012, gt="all")


# ----------------------------------------------------------------------------------------------
# Flying Chairs, Middlebury

def test_chairs_split_file(tmp_path):
    root = make_chairs(tmp_path, n=5, split=[1, 2, 1, 1, 2])
    gt = truth(root)
    train, val, every = FlyingChairs(root, "train"), FlyingChairs(root, "val"), FlyingChairs(root, "all")
    assert [p.name for p in train.frame_pairs] == ["00001", "00003", "00004"]
    assert [p.name for p in val.frame_pairs] == ["00002", "00005"]
    assert len(every) == 5
    s = val[1]
    np.testing.assert_array_equal(s.flow, gt["00005"]["flow"])
    np.testing.assert_array_equal(s.img1, gt["00005"]["img1"])
    assert s.valid.all() and s.meta["index"] == 5


def test_chairs_layout_errors(tmp_path):
    root = make_chairs(tmp_path, n=3, split_file=False)
    with pytest.raises(DatasetLayoutError, match="FlyingChairs_train_val.txt"):
        FlyingChairs(root, "train")
    assert len(FlyingChairs(root, "all")) == 3
    with open(os.path.join(root, "FlyingChairs_train_val.txt"), "w") as fh:
        fh.write("1\n2\n")
    with pytest.raises(DatasetLayoutError, match="entries"):
        FlyingChairs(root, "train")
    os.remove(os.path.join(root, "data", "00002_flow.flo"))
    with pytest.raises(DatasetLayoutError, match="00002_flow.flo"):
        FlyingChairs(root, "all")
    with pytest.raises(DatasetLayoutError, match="data"):
        FlyingChairs(tmp_path)


def test_middlebury(tmp_path):
    root = make_middlebury(tmp_path, scenes=("Dimetrodon", "Venus"), no_gt_scenes=("Beanbags",))
    gt = truth(root)
    ds = Middlebury(root)
    assert [p.name for p in ds.frame_pairs] == ["Dimetrodon", "Venus"]  # scenes without gt are skipped
    for s in ds:
        np.testing.assert_array_equal(s.valid, gt[s.name]["valid"])  # unknown (1e10) pixels invalid
        np.testing.assert_array_equal(s.flow[s.valid], gt[s.name]["flow"][s.valid])
    test = Middlebury(root, split="test")
    assert len(test) == 1 and test[0].flow is None
    shutil.rmtree(os.path.join(root, "other-gt-flow"))
    with pytest.raises(DatasetLayoutError, match="other-gt-flow"):
        Middlebury(root)


# ----------------------------------------------------------------------------------------------
# generic behaviour

def test_indexing_and_size_mismatch(tmp_path):
    root = make_chairs(tmp_path, n=2, split=[1, 1])
    ds = FlyingChairs(root)
    assert ds[-1].name == ds[1].name == "00002"
    with pytest.raises(IndexError):
        ds[2]
    with pytest.raises(InputError):
        ds["0"]
    assert len(list(ds)) == 2
    # a second frame of another size is reported, not silently returned
    io.write_image(os.path.join(root, "data", "00001_img2.ppm"), np.zeros((10, 10, 3), np.uint8))
    with pytest.raises(DatasetLayoutError, match="size"):
        ds[0]


def test_synthetic_dataset_deterministic_and_random_access():
    ds = SyntheticFlow(5, 32, 40, seed=3)
    a = ds[4]
    b = SyntheticFlow(5, 32, 40, seed=3)[4]  # independent of what was drawn before
    np.testing.assert_array_equal(a.img1, b.img1)
    np.testing.assert_array_equal(a.flow, b.flow)
    assert not np.array_equal(ds[0].img1, a.img1)
    assert not np.array_equal(SyntheticFlow(5, 32, 40, seed=4)[4].img1, a.img1)
    assert a.name == "synthetic_000004" and a.occlusion is not None and a.valid.all()
    small = SyntheticFlow(2, 32, 40, seed=0, max_motion=0.0, max_rotation=0.0, max_scale=0.0)
    assert np.abs(small[1].flow).max() < 1e-4
    with pytest.raises(InputError):
        SyntheticFlow(2, 32, 40, bogus_option=1)
    with pytest.raises(InputError):
        SyntheticFlow(-1)
    with pytest.raises(InputError):
        SyntheticFlow(2, 3, 40)


def test_collate():
    torch = pytest.importorskip("torch")
    p = generate_pair(24, 32, 0)
    samples = [FlowSample(p.img1, p.img2, p.flow, p.valid, p.occlusion, "a"),
               FlowSample(p.img2, p.img1, None, None, None, "b")]
    batch = collate(samples)
    assert batch["img1"].shape == (2, 3, 24, 32) and batch["img1"].dtype == torch.float32
    np.testing.assert_allclose(batch["img1"][0].permute(1, 2, 0).numpy() * 255.0, p.img1, atol=1e-3)
    np.testing.assert_array_equal(batch["flow"][0].permute(1, 2, 0).numpy(), p.flow)
    assert batch["valid"][0].all() and not batch["valid"][1].any() and (batch["flow"][1] == 0).all()
    assert batch["names"] == ["a", "b"]
    with pytest.raises(InputError, match="size"):
        collate([samples[0], FlowSample(p.img1[:10], p.img2[:10], None, None)])


# ----------------------------------------------------------------------------------------------
# real samples (skipped when ../shared/data/real is absent)

def test_real_sintel_layout(tmp_path, real_data):
    root = make_sintel(tmp_path, real=real_data, test_scenes=())
    for pass_ in ("clean", "final"):
        ds = Sintel(root, pass_=pass_)
        assert len(ds) >= 1
        fp = ds.frame_pairs[0]
        case = os.path.join(real_data, "sintel", f"{fp.meta['scene']}_{pass_}_{fp.meta['frame']:04d}")
        s = ds[0]
        flow, valid = io.read_flow(os.path.join(case, "flow.flo"))
        np.testing.assert_array_equal(s.flow, flow)
        assert s.img1.shape == (436, 1024, 3)
        invalid = io.read_mask(os.path.join(case, "invalid.png"))
        np.testing.assert_array_equal(s.valid, valid & ~invalid)
        np.testing.assert_array_equal(s.occlusion, io.read_mask(os.path.join(case, "occlusions.png")))


def test_real_kitti_and_chairs_layouts(tmp_path, real_data):
    s = Kitti(make_kitti(tmp_path, year=2012, real=real_data, test=0), year=2012)[0]
    flow, valid = io.read_kitti_flow(os.path.join(real_data, "kitti2012", "000157_10", "flow_gt.png"))
    np.testing.assert_array_equal(s.valid, valid)
    np.testing.assert_array_equal(s.flow, flow)
    assert s.img1.shape == (370, 1226, 3) and 0.1 < s.valid.mean() < 0.5
    ds = FlyingChairs(make_chairs(tmp_path, real=real_data), "all")
    assert len(ds) == len(os.listdir(os.path.join(real_data, "flyingchairs")))
    shapes = {ds[i].img1.shape for i in range(len(ds))}
    assert (384, 512, 3) in shapes


def test_works_with_a_torch_dataloader(tmp_path):
    torch = pytest.importorskip("torch")
    import pickle

    ds = SyntheticFlow(4, 24, 32, seed=1)
    clone = pickle.loads(pickle.dumps(ds))  # what DataLoader workers receive
    np.testing.assert_array_equal(clone[2].img2, ds[2].img2)
    batches = list(torch.utils.data.DataLoader(ds, batch_size=2, collate_fn=collate))
    assert len(batches) == 2 and batches[1]["flow"].shape == (2, 2, 24, 32)
    np.testing.assert_array_equal(batches[1]["flow"][1].permute(1, 2, 0).numpy(), ds[3].flow)
    chairs = FlyingChairs(make_chairs(tmp_path, n=2, split=[1, 1]))
    assert pickle.loads(pickle.dumps(chairs))[1].name == "00002"


# ----------------------------------------------------------------------------------------------
# sample cases (<root>/<group>/<case>/ as in ../shared/data/real)

def _write_case(d, flow_name: str, h: int, w: int, seed: int, masks: bool) -> None:
    rng = np.random.default_rng(seed)
    os.makedirs(d)
    io.write_image(os.path.join(d, "img1.png"), rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
    io.write_image(os.path.join(d, "img2.png"), rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
    flow = np.round(rng.normal(0, 5, (h, w, 2)) * 64).astype(np.float32) / 64  # exact in KITTI PNG too
    valid = rng.random((h, w)) < 0.7 if flow_name.endswith(".png") else None
    io.write_flow(os.path.join(d, flow_name), flow, valid)
    if masks:
        for name in ("invalid.png", "occlusions.png"):
            io.write_image(os.path.join(d, name), (rng.random((h, w)) < 0.2).astype(np.uint8) * 255)


def test_sample_cases_on_tiny_layout(tmp_path):
    root = tmp_path / "real"
    _write_case(root / "sintel" / "a_clean_0001", "flow.flo", 6, 8, 1, masks=True)
    _write_case(root / "kitti2012" / "000001_10", "flow_gt.png", 5, 7, 2, masks=False)
    os.makedirs(root / "sintel" / "not_a_case")  # no img1.*: not listed
    (root / "README.md").write_text("x")  # a file beside the groups is ignored
    cases = SampleCases(str(root))
    assert cases.names == ["kitti2012/000001_10", "sintel/a_clean_0001"] and len(cases) == 2
    for name, s in zip(cases.names, cases):
        d = root / name
        flow, valid = io.read_flow(str(next(d.glob("flow*"))))
        np.testing.assert_array_equal(s.flow, flow)
        np.testing.assert_array_equal(s.img1, io.read_image(str(d / "img1.png")))
        np.testing.assert_array_equal(s.img2, io.read_image(str(d / "img2.png")))
        if (d / "invalid.png").exists():
            inv = io.read_mask(str(d / "invalid.png"))
            assert inv.any() and (valid & inv).any()  # the mask really removes pixels
            np.testing.assert_array_equal(s.valid, valid & ~inv)
            np.testing.assert_array_equal(s.occlusion, io.read_mask(str(d / "occlusions.png")))
        else:
            assert not valid.all()
            np.testing.assert_array_equal(s.valid, valid)
            assert s.occlusion is None
        assert s.name == name and s.meta["dir"] == str(d)
    with pytest.raises(IndexError):
        cases[2]
    with pytest.raises(DatasetLayoutError, match="not_here"):
        SampleCases(str(tmp_path / "not_here"))
    os.remove(root / "sintel" / "a_clean_0001" / "flow.flo")
    with pytest.raises(DatasetLayoutError, match="a_clean_0001"):
        SampleCases(str(root))[1]


def test_sample_cases_real(real_data):
    cases = SampleCases(real_data)
    groups = sorted(g for g in os.listdir(real_data) if os.path.isdir(os.path.join(real_data, g)))
    expected = [f"{g}/{c}" for g in groups for c in sorted(os.listdir(os.path.join(real_data, g)))]
    assert cases.names == expected
    for name, s in zip(cases.names, cases):
        d = os.path.join(real_data, name)
        files = os.listdir(d)
        img1 = next(f for f in files if f.startswith("img1."))
        np.testing.assert_array_equal(s.img1, io.read_image(os.path.join(d, img1)))
        if "flow_gt.png" in files:
            flow, valid = io.read_kitti_flow(os.path.join(d, "flow_gt.png"))
        else:
            flow, valid = io.read_flo(os.path.join(d, "flow.flo"))
        np.testing.assert_array_equal(s.flow, flow)
        if "invalid.png" in files:
            valid = valid & ~io.read_mask(os.path.join(d, "invalid.png"))
        np.testing.assert_array_equal(s.valid, valid)
        occ = io.read_mask(os.path.join(d, "occlusions.png")) if "occlusions.png" in files else None
        assert (s.occlusion is None) == (occ is None)
        if occ is not None:
            np.testing.assert_array_equal(s.occlusion, occ)
        assert s.img1.shape[:2] == s.img2.shape[:2] == s.flow.shape[:2] == s.valid.shape
