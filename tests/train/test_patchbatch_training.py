"""`flowmatch train patchbatch`: held-out measures, hard-negative mining, exact resume, signals, options."""
import json
import os
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest
import torch

from flowmatch.cli import main
from flowmatch.data.synthetic import procedural_texture
from flowmatch.errors import InputError
from flowmatch.train import patchbatch as tp
from flowmatch.train.common import fitted_schedule, list_checkpoints
from flowmatch.train.config_cli import add_config_arguments, config_from_args
from flowmatch.train.patchbatch_data import TripletBatches


@pytest.fixture(scope="module")
def photo_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("photos")
    for i in range(4):
        img = cv2.GaussianBlur(procedural_texture(np.random.default_rng(i), 200, 260), (0, 0), 1.0)
        cv2.imwrite(str(d / f"p{i}.png"), img)
    return str(d)


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
    assert tp.hardest_negative_share(a, p, n) == pytest.approx(1 / 3)
    assert tp.hardest_negative_share(a, a, n + 100) == 1.0


def test_mine_hardest_against_a_loop():
    g = torch.Generator().manual_seed(0)
    da, dp, dn = (torch.randn(24, 5, generator=g) for _ in range(3))
    frame = torch.arange(24) // 6
    xy2 = torch.rand(24, 2, generator=g) * 4  # many same-frame positives within 2 px: excluded
    got = tp.mine_hardest(da, dp, dn, frame, xy2, exclude_px=2.0)
    for i in range(24):
        best, bj = float(torch.linalg.vector_norm(da[i] - dn[i])), None
        for j in range(24):
            if j == i or (frame[i] == frame[j] and float(torch.linalg.vector_norm(xy2[i] - xy2[j])) < 2.0):
                continue
            dj = float(torch.linalg.vector_norm(da[i] - dp[j]))
            if dj < best:
                best, bj = dj, j
        assert torch.equal(got[i], dn[i] if bj is None else dp[bj])


def test_fitted_schedule_fits_the_run():
    for steps in (10, 1000, 100_000):
        lr = fitted_schedule(1e-3, steps)
        vals = [lr(s) for s in range(0, steps + 1, max(1, steps // 200))]
        peak = int(np.argmax(vals))
        assert vals[0] < 1e-4 and max(vals) == pytest.approx(1e-3, rel=0.02)
        assert all(b <= a + 1e-15 for a, b in zip(vals[peak:], vals[peak + 1:]))  # decays after warm-up
        assert lr(steps) == pytest.approx(2e-5)


def test_config_cli_round_trip():
    import argparse

    p = argparse.ArgumentParser()
    add_config_arguments(p, tp.PatchBatchTrainConfig)
    cfg = config_from_args(tp.PatchBatchTrainConfig, p.parse_args(["--data", "photos", "--data", "synthetic@2",
                                                                   "--size", "128", "160", "--no-augment"]))
    assert cfg.data == ["photos", "synthetic@2"] and cfg.size == (128, 160) and cfg.augment is False
    assert config_from_args(tp.PatchBatchTrainConfig, p.parse_args([])) == tp.PatchBatchTrainConfig()


def test_batches_depend_only_on_seed_and_step(photo_dir):
    d = TripletBatches(["photos", "flying-photos"], 21, 16, 2, (128, 128), seed=3, steps=10, photos=photo_dir)
    a, b, c = d[4], d[4], d[5]
    assert all(torch.equal(a[k], b[k]) for k in a) and not torch.equal(a["anchor"], c["anchor"])
    assert a["anchor"].shape == (16, 1, 21, 21) and a["frame"].max() <= 1


def _args(out, photo_dir, *extra):
    return ["train", "patchbatch", "--data", "photos", "--photos", photo_dir, "--size", "128", "128",
            "--width", "0.125", "--batch", "8", "--frames-per-batch", "2", "--eval-every", "3",
            "--eval-size", "32", "--ckpt-every", "3", "--first-ckpt", "2", "--snapshot-every", "3",
            "--out", str(out), "--threads", "1", "--no-progress", *extra]


def _weights(path):
    from flowmatch.checkpoint import load_checkpoint
    return load_checkpoint(path, "patchbatch").model


def test_resume_is_exact_and_workers_change_nothing(tmp_path, photo_dir):
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert main(_args(straight, photo_dir, "--steps", "6", "--workers", "1")) == 0
    assert main(_args(split, photo_dir, "--steps", "6", "--workers", "0", "--time-budget", "1e-9")) == 0
    first = list_checkpoints(split)
    assert first and first[-1][0] < 6  # stopped by the (tiny) time budget
    assert main(_args(split, photo_dir, "--steps", "6", "--workers", "0", "--resume", "--time-budget", "0")) == 0
    a, b = _weights(list_checkpoints(straight)[-1][1]), _weights(list_checkpoints(split)[-1][1])
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    history = json.load(open(straight / "history.json"))
    assert [h["step"] for h in history] == [3, 6] and "real/fpr95" in history[0] or "photos/fpr95" in history[0]
    assert sorted(os.listdir(straight / "snapshots")) == ["step_00000003.safetensors", "step_00000006.safetensors"]
    # Another configuration may not resume from these checkpoints.
    assert main(_args(straight, photo_dir, "--steps", "9", "--resume", "--width", "0.25")) == 1


def test_export_loads_as_descriptor_model(tmp_path, photo_dir):
    export = tmp_path / "w.safetensors"
    assert main(_args(tmp_path / "run", photo_dir, "--steps", "2", "--workers", "0", "--export", str(export))) == 0
    from flowmatch.pipelines.patchbatch.network import load_descriptor_model

    net = load_descriptor_model(str(export))
    assert net.dim == 64 and export.stat().st_size < 100_000


def test_local_input_norm_run_fine_tunes_a_global_net_and_exports_a_local_one(tmp_path, photo_dir):
    first, export = tmp_path / "g.safetensors", tmp_path / "l.safetensors"
    assert main(_args(tmp_path / "g", photo_dir, "--steps", "2", "--workers", "0", "--export", str(first))) == 0
    assert main(_args(tmp_path / "l", photo_dir, "--steps", "2", "--workers", "0", "--input-norm", "local",
                      "--init", str(first), "--export", str(export))) == 0
    from flowmatch.pipelines.patchbatch.network import load_descriptor_model

    assert load_descriptor_model(str(first)).input_norm == "global"
    assert load_descriptor_model(str(export)).input_norm == "local"
    # a resumed run may not switch the normalisation under its checkpoints
    assert main(_args(tmp_path / "l", photo_dir, "--steps", "4", "--workers", "0", "--resume",
                      "--init", str(first))) == 1


def test_boundary_negatives_run_records_the_share_and_a_resume_may_not_change_it(tmp_path, photo_dir):
    out = tmp_path / "b"
    args = lambda *extra: _args(out, photo_dir, "--data", "flying-photos", "--workers", "0", *extra)  # noqa: E731
    assert main(args("--steps", "3", "--boundary-negatives", "0.5")) == 0
    with open(out / "config.json") as fh:
        assert json.load(fh)["boundary_negatives"] == 0.5
    assert main(args("--steps", "4", "--resume", "--boundary-negatives", "0.2")) == 1
    assert main(args("--steps", "4", "--resume", "--boundary-negatives", "0.5")) == 0


def test_sigterm_writes_a_checkpoint_and_resume_continues(tmp_path, photo_dir):
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    proc = subprocess.Popen([sys.executable, "-m", "flowmatch", *_args(out, photo_dir, "--steps", "100000",
                                                                      "--first-ckpt", "100000", "--workers", "1")],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and not (out / "history.json").exists():
        time.sleep(0.2)
    time.sleep(3)
    os.killpg(proc.pid, signal.SIGTERM)  # the whole group, workers included, as a scheduler would
    output = proc.communicate(timeout=120)[0].decode()
    assert proc.returncode == 143, output
    assert list_checkpoints(out), output
    assert main(_args(out, photo_dir, "--steps", str(list_checkpoints(out)[-1][0] + 1), "--workers", "0",
                      "--resume")) == 0


@pytest.mark.parametrize("bad", [["--lr", "-1"], ["--data", "synthetic:abc"], ["--data", "imagenet"],
                                 ["--batch", "1"], ["--photos", "/nonexistent/photos"], ["--size", "32", "32"],
                                 ["--input-norm", "local", "--raw-weight", "0.5"], ["--boundary-negatives", "1.5"],
                                 ["--far-negatives", "0.5", "--boundary-negatives", "0.6"]])
def test_bad_options_are_named_errors(tmp_path, photo_dir, bad):
    assert main(_args(tmp_path / "run", photo_dir, "--steps", "2", "--workers", "0", *bad)) == 1
