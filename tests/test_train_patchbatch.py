"""`flowmatch train patchbatch`: the held-out measures, and a tiny run with checkpoints, resume, export."""
import os

import numpy as np
import pytest
import torch

from flowmatch.cli import main
from flowmatch.errors import InputError
from flowmatch.train import patchbatch as tp


def test_fpr_at_recall_against_counting():
    rng = np.random.default_rng(0)
    pos, neg = rng.random(200), rng.random(300) + 0.5
    thr = np.sort(pos)[int(np.ceil(0.95 * 200)) - 1]  # smallest distance accepting 95 % of the positives
    assert tp.fpr_at_recall(pos, neg) == pytest.approx(np.mean(neg <= thr))
    assert tp.fpr_at_recall(np.zeros(5), np.ones(5)) == 0.0
    with pytest.raises(InputError):
        tp.fpr_at_recall(np.zeros(0), np.ones(3))


def test_hardest_negative_share_hand_case():
    # 1-D descriptors; anchors at 0, 10, 20.  Anchor 0: positive at 1, nearest other candidate at 0.5 -> miss.
    a = torch.tensor([[0.0], [10.0], [20.0]])
    p = torch.tensor([[1.0], [10.2], [23.0]])
    n = torch.tensor([[0.5], [12.0], [21.0]])
    # anchor 1: pos 0.2, others >= 1.8 -> hit; anchor 2: pos 3, negative at 1 -> miss.
    assert tp.hardest_negative_share(a, p, n) == pytest.approx(1 / 3)
    assert tp.hardest_negative_share(a, a, n + 100) == 1.0


def test_tiny_training_run_checkpoints_resume_export(tmp_path, monkeypatch):
    # Tiny held-out sets keep this fast.
    real_sets = tp.heldout_sets
    monkeypatch.setattr(tp, "heldout_sets", lambda ps, h, r, per_set=64: real_sets(ps, (), r, per_set=64))
    monkeypatch.setattr(tp, "heldout_frames", lambda h, r, **k: {"synthetic": tp.synthetic_frames(2, 999, 96)})
    out, export = tmp_path / "run", tmp_path / "w.safetensors"
    args = ["train", "patchbatch", "--data", "synthetic:3", "--synthetic-size", "96", "--width", "0.125",
            "--batch", "8", "--eval-every", "2", "--ckpt-every", "2", "--out", str(out), "--threads", "1"]
    assert main(args + ["--steps", "2"]) == 0
    from flowmatch.train.common import list_checkpoints, load_training_state

    assert [s for s, _ in list_checkpoints(out)] == [2]
    assert main(args + ["--steps", "4", "--resume", "--export", str(export)]) == 0
    assert [s for s, _ in list_checkpoints(out)][-1] == 4
    net = tp.PatchBatchNet("dense", width=0.125)
    step, user = load_training_state(list_checkpoints(out)[-1][1], "patchbatch", net, config=net.config())
    assert step == 4 and "synthetic/fpr95" in user["scores"]
    from flowmatch.pipelines.patchbatch import load_descriptor_model

    shipped = load_descriptor_model(str(export))
    for (k, v), (k2, v2) in zip(shipped.state_dict().items(), net.state_dict().items()):
        assert k == k2 and torch.allclose(v.float(), v2.float(), atol=1e-2, rtol=1e-2), k
    # A run with another configuration may not resume from these checkpoints.
    assert main(args + ["--steps", "6", "--resume", "--width", "0.25"]) == 1


def test_bad_data_spec(tmp_path):
    assert main(["train", "patchbatch", "--data", "imagenet", "--out", str(tmp_path)]) == 1


def test_load_case_reads_real_layout(real_data):
    cases = tp.real_cases(real_data)
    case = tp.load_case(next(c for c in cases if "kitti" in c))
    assert case["flow"].shape == case["img1"].shape[:2] + (2,)
    assert 0.05 < case["valid"].mean() < 0.6  # sparse KITTI ground truth
    assert case["occlusion"] is None and case["name"] == os.path.basename(case_dir(cases))


def case_dir(cases):
    return next(c for c in cases if "kitti" in c)
