"""Photo-based training pairs: exact correspondence, the photo folder setting, and the --data mixture."""
import os

import cv2
import numpy as np
import pytest

from flowmatch.data.flying_photos import flying_photos_pair
from flowmatch.data.photo_pairs import photo_pair
from flowmatch.data.photos import PhotoLibrary
from flowmatch.data.sources import HELD_OUT_REAL, TrainingSources, parse_source
from flowmatch.data.synthetic import procedural_texture
from flowmatch.errors import DatasetLayoutError, InputError


@pytest.fixture(scope="module")
def photo_dir(tmp_path_factory):
    """A folder of six smooth procedural 'photos' (JPEG and PNG) standing in for real ones."""
    d = tmp_path_factory.mktemp("photos")
    os.makedirs(d / "sub")
    for i in range(6):
        img = procedural_texture(np.random.default_rng(i), 300, 400)
        img = cv2.GaussianBlur(img, (0, 0), 1.5)  # smooth: bilinear resampling is then near exact
        name = d / ("sub" if i % 2 else ".") / f"p{i}.{'png' if i % 3 else 'jpg'}"
        cv2.imwrite(str(name), img[..., ::-1])
    (d / "notes.txt").write_text("not a photo")
    return str(d)


def _warp_back(img2, flow):
    h, w = flow.shape[:2]
    grid = np.stack(np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32)), -1)
    return cv2.remap(img2, grid + flow, None, cv2.INTER_LINEAR)


def test_library_lists_and_crops(photo_dir):
    lib = PhotoLibrary(photo_dir)
    assert len(lib) == 6
    a = lib.crop(np.random.default_rng(1), 64, 80)
    b = lib.crop(np.random.default_rng(1), 64, 80)
    assert a.shape == (64, 80, 3) and a.dtype == np.uint8 and np.array_equal(a, b)


def test_missing_or_empty_photo_folder(tmp_path):
    with pytest.raises(DatasetLayoutError, match="does not exist"):
        PhotoLibrary(tmp_path / "nope")
    with pytest.raises(DatasetLayoutError, match="holds no"):
        PhotoLibrary(tmp_path)


def test_photo_pair_flow_is_the_homography(photo_dir):
    lib = PhotoLibrary(photo_dir)
    pair = photo_pair(lib, 3, 96, 128, elastic=0.0, photometric=0.0)
    h, w = pair.flow.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    pts = np.stack([xs, ys], -1).reshape(1, -1, 2)
    expected = cv2.perspectiveTransform(pts, pair.meta["homography"]).reshape(h, w, 2) - np.stack([xs, ys], -1)
    assert np.allclose(pair.flow, expected, atol=1e-3)
    inside = ((xs + expected[..., 0] >= 0) & (xs + expected[..., 0] <= w - 1)
              & (ys + expected[..., 1] >= 0) & (ys + expected[..., 1] <= h - 1))
    assert np.array_equal(pair.valid, inside) and not pair.valid.all()


@pytest.mark.parametrize("elastic", [0.0, 4.0])
def test_photo_pair_content_follows_the_flow(photo_dir, elastic):
    pair = photo_pair(PhotoLibrary(photo_dir), 5, 128, 128, elastic=elastic, photometric=0.0)
    err = np.abs(_warp_back(pair.img2, pair.flow).astype(float) - pair.img1.astype(float)).mean(2)
    shuffled = np.abs(pair.img2.astype(float) - pair.img1.astype(float)).mean(2)
    # Two bilinear resamplings of a smooth image: about one grey level, far below the frame difference.
    assert err[pair.valid].mean() < 2.0 < shuffled.mean()


def test_photo_pair_photometric_changes_intensities_only(photo_dir):
    lib = PhotoLibrary(photo_dir)
    a = photo_pair(lib, 7, 96, 96, photometric=0.0)
    b = photo_pair(lib, 7, 96, 96, photometric=1.0)
    assert np.array_equal(a.flow, b.flow) and not np.array_equal(a.img2, b.img2)
    with pytest.raises(InputError):
        photo_pair(lib, 0, 96, 96, elastic=float("nan"))


@pytest.mark.parametrize("final", [False, True])
def test_flying_photos_exact_flow_and_occlusions(photo_dir, final):
    pair = flying_photos_pair(PhotoLibrary(photo_dir), 11, 128, 160, photometric=0.0, final=final,
                              num_shapes=(3, 5))
    ok = pair.valid & ~pair.occlusion
    err = np.abs(_warp_back(pair.img2, pair.flow).astype(float) - pair.img1.astype(float)).mean(2)
    assert pair.occlusion.any() and ok.mean() > 0.5
    # Blur along the flow moves no content: the final variant's residual stays small too.
    assert np.median(err[ok]) < (4.0 if final else 1.5)
    assert np.isfinite(pair.flow).all() and pair.flow.shape == (128, 160, 2)


def test_parse_source_specs():
    assert parse_source("flying-photos") == parse_source("flying-photos@1")
    s = parse_source("photos:50@0.25")
    assert (s.kind, s.arg, s.weight) == ("photos", "50", 0.25)
    for bad in ("imagenet", "synthetic:abc", "photos@-1", "photos@x", "sintel", ""):
        with pytest.raises(InputError):
            parse_source(bad)


def test_mixture_is_deterministic_and_weighted(photo_dir):
    src = TrainingSources.from_specs(["photos@3", "synthetic@1"], size=(96, 96), photos=photo_dir)
    a = src.draw(np.random.default_rng([0, 4]))
    b = src.draw(np.random.default_rng([0, 4]))
    assert np.array_equal(a.img1, b.img1) and np.array_equal(a.flow, b.flow)
    kinds = [type(src.draw(np.random.default_rng([1, k]))).__name__ for k in range(40)]
    assert 20 <= kinds.count("PhotoPair") <= 38


def test_real_source_never_reads_held_out_pairs(real_data, tmp_path):
    with pytest.raises(DatasetLayoutError, match="held out"):
        TrainingSources.from_specs(["real"])
    # A folder with a case that is not held out trains on it.
    import shutil
    shutil.copytree(os.path.join(real_data, "sintel", "alley_1_clean_0002"), tmp_path / "mine" / "case_a")
    src = TrainingSources.from_specs([f"real:{tmp_path}"])
    assert src.draw(np.random.default_rng(0)).img1.shape == (436, 1024, 3)
    assert len(HELD_OUT_REAL) == 11
