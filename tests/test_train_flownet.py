"""FlowNet training: the multiscale loss against a NumPy reference, its gradient, the schedule, an
overfitting smoke test, resume == uninterrupted training, DDP == doubled batch, and CLI errors."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from flowmatch.errors import CheckpointError, InputError
from flowmatch.train import common
from flowmatch.train.flownet import (MULTISCALE_WEIGHTS, SampleStream, TrainConfig, full_resolution_epe,
                                     multiscale_epe, train)


def np_multiscale(preds, flow, valid, weights, div):
    """Reference: block-average the valid target (each scale divides 64 evenly), mean EPE."""
    n, _, h, w = flow.shape
    total = 0.0
    for p, wt in zip(preds, weights):
        ph, pw = p.shape[2:]
        bh, bw = h // ph, w // pw
        f = (flow / div).reshape(n, 2, ph, bh, pw, bw)
        v = valid.reshape(n, 1, ph, bh, pw, bw).astype(np.float64)
        cnt = v.sum(axis=(3, 5))
        tgt = (f * v).sum(axis=(3, 5)) / np.maximum(cnt, 1e-12)
        epe = np.sqrt(((p - tgt) ** 2).sum(axis=1))
        m = cnt[:, 0] > 0
        total += wt * epe[m].mean()
    return total


def random_case(seed, valid_frac=1.0):
    rng = np.random.default_rng(seed)
    flow = rng.normal(0, 10, (2, 2, 64, 64))
    valid = rng.random((2, 64, 64)) < valid_frac
    preds = [rng.normal(0, 0.5, (2, 2, 64 // 2 ** k, 64 // 2 ** k)) for k in range(2, 7)]
    return preds, flow, valid


@pytest.mark.parametrize("valid_frac", [1.0, 0.3])
def test_multiscale_loss_matches_numpy_reference(valid_frac):
    preds, flow, valid = random_case(1, valid_frac)
    loss, epes = multiscale_epe([torch.from_numpy(p) for p in preds], torch.from_numpy(flow),
                                torch.from_numpy(valid), div_flow=20.0)
    ref = np_multiscale(preds, flow, valid, MULTISCALE_WEIGHTS, 20.0)
    assert abs(float(loss) - ref) < 1e-9 * max(1.0, ref)
    assert len(epes) == 5
    assert MULTISCALE_WEIGHTS == (0.005, 0.01, 0.02, 0.08, 0.32)


def test_multiscale_loss_gradient():
    preds, flow, valid = random_case(2, 0.7)
    small = [torch.from_numpy(p[:1, :, :4, :4].copy()).requires_grad_() for p in preds[:3]]
    f = torch.from_numpy(flow[:1, :, :16, :16].copy())
    v = torch.from_numpy(valid[:1, :16, :16].copy())
    assert torch.autograd.gradcheck(lambda *ps: multiscale_epe(list(ps), f, v, weights=(0.2, 0.3, 0.5))[0],
                                    tuple(small))


def test_full_resolution_epe_of_exact_prediction_is_zero():
    flow = torch.ones(1, 2, 64, 64) * torch.tensor([4.0, -2.0]).view(1, 2, 1, 1)
    pred = torch.ones(1, 2, 16, 16) * torch.tensor([0.2, -0.1]).view(1, 2, 1, 1)  # /20
    assert float(full_resolution_epe(pred, flow)) < 1e-6
    assert abs(float(full_resolution_epe(pred * 0, flow)) - np.hypot(4, 2)) < 1e-5


def test_schedule_follows_the_paper():
    lr = common.step_decay_schedule(1e-4, 300_000, 100_000, 0.5, warmup_steps=10_000, warmup_start_lr=1e-6)
    assert lr(0) == pytest.approx(1e-6)
    assert lr(5_000) == pytest.approx(1e-6 + (1e-4 - 1e-6) / 2)
    assert lr(10_000) == pytest.approx(1e-4) and lr(299_999) == pytest.approx(1e-4)
    assert lr(300_000) == pytest.approx(5e-5) and lr(399_999) == pytest.approx(5e-5)
    assert lr(400_000) == pytest.approx(2.5e-5)
    assert TrainConfig(model="flownetc").warmup == 10_000 and TrainConfig(model="flownets").warmup == 0
    with pytest.raises(InputError):
        common.step_decay_schedule(0, 1, 1)


def tiny(tmp_path, name, **kw) -> TrainConfig:
    base = dict(model="flownets", width=0.125, crop=(64, 64), batch_size=2, steps=6, lr=1e-3,
                out=str(tmp_path / name), ckpt_every=3, threads=1, progress=False, seed=3, max_motion=6.0,
                augment=False)
    base.update(kw)
    return TrainConfig(**base)


def test_sample_stream_is_fixed_by_seed_and_step(tmp_path):
    cfg = tiny(tmp_path, "s")
    s1, s2 = SampleStream(cfg, 4), SampleStream(cfg, 4)
    a, b = s1.batch(5, [0, 1, 2, 3]), s2.batch(5, [2, 3])
    assert torch.equal(a["img1"][2:], b["img1"]) and torch.equal(a["flow"][2:], b["flow"])
    assert not torch.equal(s1.batch(6, [0])["img1"], a["img1"][:1])


def test_tiny_config_overfits_a_few_pairs(tmp_path):
    cfg = tiny(tmp_path, "fit", batch_size=4, steps=100, synthetic_pairs=4, ckpt_every=1000)
    hist = train(cfg).history
    first = np.mean([h["loss"] for h in hist[:5]])
    last = np.mean([h["loss"] for h in hist[-10:]])
    assert last < first / 5, (first, last)
    assert hist[-1]["epe"] < hist[0]["epe"] / 2


def _final_state(cfg):
    from flowmatch.checkpoint import load_checkpoint

    return load_checkpoint(os.path.join(cfg.out, "final.safetensors")).model


def test_resume_equals_uninterrupted(tmp_path, monkeypatch):
    ref_cfg = tiny(tmp_path, "ref")
    ref = train(ref_cfg)

    cfg = tiny(tmp_path, "cut")
    real_batch = SampleStream.batch

    def dying_batch(self, step, slots):
        if step == 4:  # after the step-3 checkpoint, in the middle of the next interval
            raise KeyboardInterrupt
        return real_batch(self, step, slots)

    monkeypatch.setattr(SampleStream, "batch", dying_batch)
    with pytest.raises(KeyboardInterrupt):
        train(cfg)
    monkeypatch.setattr(SampleStream, "batch", real_batch)
    assert [s for s, _ in common.list_checkpoints(cfg.out)] == [3]
    # a half-written checkpoint from a crash during a save is ignored
    with open(os.path.join(cfg.out, ".step_00000006.tmp1234.safetensors"), "wb") as fh:
        fh.write(b"\0" * 100)
    cfg.resume = True
    res = train(cfg)
    assert res.step == 6
    assert [h["loss"] for h in res.history] == pytest.approx([h["loss"] for h in ref.history], rel=1e-6, abs=1e-9)
    a, b = _final_state(ref_cfg), _final_state(cfg)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-6, atol=1e-7)

    # resuming with other settings, or as another model, is refused with a clear message
    with pytest.raises(CheckpointError, match="batch_size"):
        train(tiny(tmp_path, "cut", batch_size=3, steps=9, resume=True))
    with pytest.raises(CheckpointError, match="flownets"):
        train(tiny(tmp_path, "cut", model="flownetc", steps=9, resume=True))


def test_cli_reports_bad_dataset_and_settings(tmp_path, capsys):
    from flowmatch.cli import main

    code = main(["train", "flownets", "--data", "chairs", "--root", str(tmp_path / "nope"), "--no-progress"])
    assert code == 1
    assert "nope" in capsys.readouterr().err
    assert main(["train", "flownetc", "--data", "sintel", "--no-progress"]) == 1
    assert "--root" in capsys.readouterr().err
    assert main(["train", "flownets", "--crop", "32", "32", "--no-progress"]) == 1
    assert main(["train", "flownets", "--resume", str(tmp_path / "missing.safetensors"), "--no-progress",
                 "--out", str(tmp_path / "o")]) == 1
    assert "missing.safetensors" in capsys.readouterr().err


@pytest.mark.slow
def test_ddp_two_gloo_processes_match_one_process_with_double_batch(tmp_path):
    """torchrun, 2 CPU processes × batch 2 == 1 process × batch 4 (same loss curve)."""
    out = tmp_path / "ddp"
    args = ["--width", "0.125", "--crop", "64", "64", "--steps", "4", "--lr", "1e-3", "--max-motion", "6",
            "--no-augment", "--no-progress", "--threads", "1", "--seed", "5", "--ckpt-every", "100"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": os.environ.get("GLOO_SOCKET_IFNAME", "lo")}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           "-m", "flowmatch", "train", "flownets", *args, "--batch-size", "2", "--out", str(out)],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ddp = json.loads((out / "history.json").read_text())
    single = train(TrainConfig(model="flownets", width=0.125, crop=(64, 64), steps=4, lr=1e-3, max_motion=6.0,
                               augment=False, progress=False, threads=1, seed=5, ckpt_every=100, batch_size=4,
                               out=str(tmp_path / "single"))).history
    assert len(ddp) == len(single) == 4
    np.testing.assert_allclose([h["loss"] for h in ddp], [h["loss"] for h in single], rtol=2e-3)
    # and the curve is not trivially flat, so the comparison means something
    assert len({round(h["loss"], 6) for h in single}) == 4


def test_trains_on_a_flying_chairs_folder_with_augmentation(tmp_path):
    """The dataset path end to end: a two-pair Flying Chairs layout, FlowAugment, two steps."""
    from flowmatch import io
    from flowmatch.data.synthetic import generate_pair

    data = tmp_path / "chairs" / "data"
    data.mkdir(parents=True)
    for i in (1, 2):
        p = generate_pair(96, 128, seed=i, max_motion=5.0)
        io.write_image(str(data / f"{i:05d}_img1.ppm"), p.img1)
        io.write_image(str(data / f"{i:05d}_img2.ppm"), p.img2)
        io.write_flow(str(data / f"{i:05d}_flow.flo"), p.flow)
    (tmp_path / "chairs" / "FlyingChairs_train_val.txt").write_text("1\n1\n")
    cfg = tiny(tmp_path, "chairs_run", data="chairs", root=str(tmp_path / "chairs"), steps=2, augment=True)
    res = train(cfg)
    assert res.step == 2 and all(np.isfinite(h["loss"]) for h in res.history)
    # a dataset folder without the official layout is a DatasetLayoutError naming the folder
    from flowmatch.errors import DatasetLayoutError

    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetLayoutError, match="empty"):
        train(tiny(tmp_path, "bad", data="chairs", root=str(tmp_path / "empty")))


def test_init_from_weights_for_fine_tuning(tmp_path):
    src = tiny(tmp_path, "src", steps=2)
    train(src)
    weights = os.path.join(src.out, "final.safetensors")
    ft = tiny(tmp_path, "ft", steps=1, lr=1e-12, init=weights, seed=9)
    train(ft)
    a, b = _final_state(src), _final_state(ft)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-9)
    with pytest.raises(CheckpointError, match="width"):
        train(tiny(tmp_path, "ft2", steps=1, width=0.25, init=weights))
    with pytest.raises(CheckpointError, match="flownets"):
        train(tiny(tmp_path, "ft3", steps=1, model="flownetc", init=weights))
