"""flowmatch.train.with_raw: training patches' combined descriptors equal the pipeline's, and the
`--raw-weight` / `--init` training options."""
import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from flowmatch.cli import main
from flowmatch.data.patch_pairs import PatchPairSampler
from flowmatch.errors import InputError
from flowmatch.pipelines.patchbatch.descriptors import combine, raw_patch_descriptors
from flowmatch.train.with_raw import centre_raw_patches, with_raw

from test_patchbatch_training import _args, _weights, photo_dir  # noqa: F401  (the photo fixture)


@pytest.fixture(scope="module")
def triplets():
    rng = np.random.default_rng(0)
    img1 = (rng.random((120, 140, 3)) * 255).astype(np.uint8)
    img2 = np.roll(img1, 3, axis=1)
    flow = np.zeros((120, 140, 2), np.float32)
    flow[..., 0] = 3
    frame = SimpleNamespace(img1=img1, img2=img2, flow=flow, valid=np.ones((120, 140), bool), name="shift")
    t = PatchPairSampler([frame], 62, augment=False, seed=1).sample(256)
    x, y = t.xy1[:, 0].astype(int), t.xy1[:, 1].astype(int)
    # away from the borders, where the frame pass pads by replication and the patches by reflection
    inside = (x >= 6) & (x < 134) & (y >= 6) & (y < 114)
    return t, img1, x[inside], y[inside], torch.from_numpy(inside)


def test_centre_raw_patch_equals_the_frame_pass(triplets):
    t, img1, x, y, inside = triplets
    assert len(x) > 100
    ref = raw_patch_descriptors(img1)[y, x]
    got = centre_raw_patches(t.anchor)[inside]
    assert torch.allclose(got, ref, atol=1e-5)
    assert not torch.allclose(got[1:], ref[:-1], atol=1e-2)  # the comparison can tell pixels apart


def test_with_raw_equals_the_pipelines_combine_and_has_gradients(triplets):
    t, img1, x, y, inside = triplets
    learned = torch.randn(len(t.anchor), 16, requires_grad=True)
    got = with_raw(learned, t.anchor, 0.3)
    # the differentiable path against combine's in-place one, fed by the frame pass
    ref_frame = combine(learned.detach()[inside], raw_patch_descriptors(img1)[y, x], 0.3)
    assert torch.allclose(got[inside], ref_frame, atol=1e-5)
    d = got.shape[-1] - 81
    assert torch.allclose(got[:, :d].norm(dim=-1), torch.full((len(got),), 0.7 ** 0.5), atol=1e-5)
    got.sum().backward()
    assert learned.grad is not None and torch.isfinite(learned.grad).all() and learned.grad.abs().sum() > 0


@pytest.mark.parametrize("bad", [0.0, 1.0, -0.1])
def test_with_raw_rejects_weights_outside_the_open_interval(triplets, bad):
    with pytest.raises(InputError):
        with_raw(torch.randn(len(triplets[0].anchor), 8), triplets[0].anchor, bad)


def test_small_patches_are_refused():
    with pytest.raises(InputError):
        centre_raw_patches(torch.zeros(2, 1, 9, 9))
    with pytest.raises(InputError):
        centre_raw_patches(torch.zeros(2, 3, 62, 62))


def test_raw_weight_run_scores_the_combined_descriptor_and_init_loads(tmp_path, photo_dir):  # noqa: F811
    first = tmp_path / "first"
    assert main(_args(first, photo_dir, "--steps", "3", "--workers", "0", "--export", str(tmp_path / "w.safetensors"))) == 0
    tuned = tmp_path / "tuned"
    assert main(_args(tuned, photo_dir, "--steps", "3", "--workers", "0", "--raw-weight", "0.5", "--margin", "1",
                      "--init", str(tmp_path / "w.safetensors"), "--lr", "1e-12")) == 0
    history = json.load(open(tuned / "history.json"))
    assert any(k.startswith("combined:") and k.endswith("/fpr95") for k in history[-1])
    # with a vanishing learning rate the fine-tuned weights stay the initial ones (batch-norm statistics aside)
    a = _weights(str(tmp_path / "w.safetensors"))
    from flowmatch.train.common import list_checkpoints
    b = _weights(list_checkpoints(tuned)[-1][1])
    convs = [k for k in a if k.endswith("weight") and a[k].dim() == 4]
    assert convs and all(torch.allclose(a[k].float(), b[k].float(), atol=1e-3) for k in convs)


@pytest.mark.parametrize("bad, names", [(["--raw-weight", "1"], "--raw-weight"), (["--raw-weight", "-0.5"], "--raw-weight"),
                                        (["--init", "/nonexistent.safetensors"], "/nonexistent.safetensors")])
def test_bad_raw_weight_and_init_are_named_errors(tmp_path, photo_dir, bad, names, capsys):  # noqa: F811
    assert main(_args(tmp_path / "run", photo_dir, "--steps", "2", "--workers", "0", *bad)) == 1
    err = capsys.readouterr().err
    assert names in err and "Traceback" not in err  # one named message, not a crash
