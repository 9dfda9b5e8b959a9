"""FlowNet training: the multiscale loss against a NumPy reference and its gradient, the fitted
schedule of the defaults, the step-indexed batches, exact resume (in process and after SIGTERM in a
subprocess), worker processes == inline data, the GPU recipe's code path on the CPU, DDP == doubled
batch (slow), and named errors for bad options."""
from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from flowmatch.errors import CheckpointError, DatasetLayoutError
from flowmatch.train import common
from flowmatch.train.flownet import (MULTISCALE_WEIGHTS, FlowBatches, FlowNetTrainConfig, full_resolution_epe,
                                     multiscale_epe, train)

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


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
    # bf16 predictions (autocast) give an fp32 loss close to the reference
    bf = multiscale_epe([torch.from_numpy(p).bfloat16() for p in preds], torch.from_numpy(flow).float(),
                        torch.from_numpy(valid), div_flow=20.0)[0]
    assert bf.dtype == torch.float32 and abs(float(bf) - ref) < 1e-2 * ref


def test_multiscale_loss_gradient():
    preds, flow, valid = random_case(2, 0.7)
    small = [torch.from_numpy(p[:1, :, :4, :4].copy()).requires_grad_() for p in preds[:3]]
    f = torch.from_numpy(flow[:1, :, :16, :16].copy())
    v = torch.from_numpy(valid[:1, :16, :16].copy())
    assert torch.autograd.gradcheck(lambda *ps: multiscale_epe(list(ps), f, v, weights=(0.2, 0.3, 0.5))[0],
                                    tuple(small), fast_mode=True)


def test_full_resolution_epe_of_exact_prediction_is_zero():
    flow = torch.ones(1, 2, 64, 64) * torch.tensor([4.0, -2.0]).view(1, 2, 1, 1)
    pred = torch.ones(1, 2, 16, 16) * torch.tensor([0.2, -0.1]).view(1, 2, 1, 1)  # /20
    assert float(full_resolution_epe(pred, flow)) < 1e-6
    assert abs(float(full_resolution_epe(pred * 0, flow)) - np.hypot(4, 2)) < 1e-5


def test_default_schedule_fits_the_default_run():
    cfg = FlowNetTrainConfig(model="flownetc")
    assert cfg.data == ["flying-photos"] and cfg.augment and cfg.precision == "auto" and cfg.channels_last
    lr = common.fitted_schedule(cfg.lr, cfg.steps, cfg.warmup)
    warm = cfg.steps * 3 // 100
    assert lr(0) == pytest.approx(0.01 * cfg.lr)
    assert lr(warm) == pytest.approx(cfg.lr)              # warm-up done after 3 % of the run ...
    assert lr(cfg.steps) == pytest.approx(0.02 * cfg.lr)  # ... and decayed by its end
    assert all(lr(s) >= lr(s + 1) for s in range(warm, cfg.steps))
    assert cfg.first_ckpt < cfg.ckpt_every <= cfg.steps


def tiny(tmp_path, name, **kw) -> FlowNetTrainConfig:
    base = dict(model="flownets", data=["synthetic"], width=0.125, crop=(64, 64), batch_size=2, steps=6, lr=1e-3,
                out=str(tmp_path / name), first_ckpt=3, ckpt_every=100, threads=1, progress=False, seed=3,
                augment=False, workers=0, eval_every=0)
    base.update(kw)
    return FlowNetTrainConfig(**base)


def test_batches_are_fixed_by_seed_and_step():
    def mk(slots, augment=False):
        return FlowBatches(["synthetic", "synthetic:3@0.5"], (64, 64), slots, seed=4, steps=10, augment=augment)
    full, half = mk([0, 1, 2, 3]), mk([2, 3])
    a, b = full[5], half[5]
    assert a["img1"].dtype == torch.uint8 and a["img1"].shape == (4, 3, 64, 64) and a["flow"].shape == (4, 2, 64, 64)
    assert torch.equal(a["img1"][2:], b["img1"]) and torch.equal(a["flow"][2:], b["flow"])
    assert not torch.equal(full[6]["img1"], a["img1"])
    # what a worker process gets (a pickled copy) makes the same batch; the augmentation is seeded too
    aug = mk([0, 1], augment=True)
    assert torch.equal(pickle.loads(pickle.dumps(aug))[7]["img2"], aug[7]["img2"])
    assert not torch.equal(aug[7]["img2"], mk([0, 1], augment=False)[7]["img2"])


def _weights(path):
    from flowmatch.checkpoint import load_checkpoint
    return load_checkpoint(path).model


def _assert_same_weights(a_path, b_path):
    a, b = _weights(a_path), _weights(b_path)
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6, msg=k)


def test_resume_equals_uninterrupted(tmp_path, monkeypatch):
    ref_cfg = tiny(tmp_path, "ref", model="flownetc")
    ref = train(ref_cfg)
    assert len({round(h["loss"], 6) for h in ref.history}) == 6  # the curve moves: the comparison means something

    cfg = tiny(tmp_path, "cut", model="flownetc")
    real = FlowBatches.__getitem__

    def dying(self, step):
        if step == 3:  # after the first checkpoint (step 3), before step 4
            raise KeyboardInterrupt
        return real(self, step)

    monkeypatch.setattr(FlowBatches, "__getitem__", dying)
    with pytest.raises(KeyboardInterrupt):
        train(cfg)
    monkeypatch.setattr(FlowBatches, "__getitem__", real)
    assert [s for s, _ in common.list_checkpoints(cfg.out)] == [3]
    assert json.loads((tmp_path / "cut" / "config.json").read_text())["model"] == "flownetc"
    # a half-written checkpoint from a crash during a save is ignored
    (tmp_path / "cut" / ".step_00000006.tmp1234.safetensors").write_bytes(b"\0" * 100)
    cfg.resume = True
    res = train(cfg)
    assert res.step == 6
    assert [h["loss"] for h in res.history] == pytest.approx([h["loss"] for h in ref.history], rel=1e-6, abs=1e-9)
    _assert_same_weights(ref.final_path, res.final_path)

    with pytest.raises(CheckpointError, match="batch_size"):
        train(tiny(tmp_path, "cut", model="flownetc", batch_size=3, steps=9, resume=True))
    with pytest.raises(CheckpointError, match="flownetc"):
        train(tiny(tmp_path, "cut", model="flownets", steps=9, resume=True))


TINY_CLI = ["--width", "0.125", "--crop", "64", "64", "--batch-size", "2", "--threads", "1", "--seed", "5",
            "--lr", "1e-3", "--eval-every", "0", "--no-progress"]


def test_sigterm_writes_a_checkpoint_and_resume_continues_exactly(tmp_path):
    out = tmp_path / "sig"
    cmd = [sys.executable, "-m", "flowmatch", "train", "flownets", "--data", "synthetic", *TINY_CLI,
           "--steps", "16", "--first-ckpt", "1", "--workers", "0", "--out", str(out)]
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 60
        while not common.list_checkpoints(out) and time.time() < deadline and proc.poll() is None:
            time.sleep(0.1)
        assert (out / "config.json").exists() and (out / "history.json").exists()
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 143, stderr[-2000:]
    assert "stopped by signal" in stdout
    (step, _), = common.list_checkpoints(out)[-1:]
    assert 1 <= step < 16 and not (out / "final.safetensors").exists()
    assert len(json.loads((out / "history.json").read_text())) == step
    # resuming to the end == a straight run
    kw = dict(model="flownets", width=0.125, batch_size=2, seed=5, augment=True, steps=16, first_ckpt=1)
    resumed = train(tiny(tmp_path, "sig", resume=True, **kw))
    straight = train(tiny(tmp_path, "straight", **kw))
    assert resumed.step == 16
    _assert_same_weights(straight.final_path, resumed.final_path)


def test_gpu_recipe_code_path_on_cpu(tmp_path):
    """The README's GPU command with --device cpu at tiny scale: worker processes, bf16 autocast,
    channels_last, the photo data (procedural when the photo folder is absent); worker batches
    give exactly the inline run's losses."""
    from flowmatch.data.photos import default_photo_dir

    data = "flying-photos" if default_photo_dir() else "synthetic"
    out = tmp_path / "gpu_recipe"
    cmd = [sys.executable, "-m", "flowmatch", "train", "flownetc", "--data", data, *TINY_CLI, "--steps", "2",
           "--workers", "2", "--precision", "bf16", "--channels-last", "--device", "cpu", "--out", str(out)]
    proc = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "trained flownetc to step 2" in proc.stdout
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["precision_resolved"] == "bf16" and cfg["device_resolved"] == "cpu"
    hist = json.loads((out / "history.json").read_text())
    inline = train(tiny(tmp_path, "inline", model="flownetc", data=[data], steps=2, seed=5, augment=True,
                        precision="bf16"))
    assert [h["loss"] for h in hist] == pytest.approx([h["loss"] for h in inline.history], rel=1e-6)


def test_cli_names_bad_options(tmp_path, capsys):
    from flowmatch.cli import main

    o = ["--out", str(tmp_path / "o"), "--no-progress"]
    for args, needle in ((["--lr", "-1"], "--lr"), (["--data", "synthetic:abc"], "synthetic:abc"),
                         (["--data", "sintel"], "--root"), (["--data", "nope"], "unknown source"),
                         (["--crop", "32", "32"], "--crop"), (["--crop", "64", "100"], "--crop"),
                         (["--device", "cuda:x"], "cuda:N"), (["--workers", "-1"], "--workers"),
                         (["--data", "chairs", "--root", str(tmp_path / "nope")], "nope"),
                         (["--resume", str(tmp_path / "missing.safetensors")], "missing.safetensors")):
        assert main(["train", "flownetc", *args, *o]) == 1, args
        assert needle in capsys.readouterr().err, args


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
    for spec, root in ((f"chairs:{tmp_path / 'chairs'}", None), ("chairs", str(tmp_path / "chairs"))):
        res = train(tiny(tmp_path, "chairs_run", data=[spec], root=root, steps=2, augment=True))
        assert res.step == 2 and all(np.isfinite(h["loss"]) for h in res.history)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetLayoutError, match="empty"):
        train(tiny(tmp_path, "bad", data=[f"chairs:{tmp_path / 'empty'}"]))


def test_init_from_weights_for_fine_tuning(tmp_path):
    src = train(tiny(tmp_path, "src", steps=2))
    ft = train(tiny(tmp_path, "ft", steps=1, lr=1e-12, init=src.final_path, seed=9))
    a, b = _weights(src.final_path), _weights(ft.final_path)
    for k in a:
        if "running" not in k and "num_batches" not in k:  # batch norm statistics move without the lr
            torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-9)
    with pytest.raises(CheckpointError, match="width"):
        train(tiny(tmp_path, "ft2", steps=1, width=0.25, init=src.final_path))
    with pytest.raises(CheckpointError, match="flownets"):
        train(tiny(tmp_path, "ft3", steps=1, model="flownetc", init=src.final_path))


@pytest.mark.slow
def test_tiny_config_overfits_a_few_pairs(tmp_path):
    hist = train(tiny(tmp_path, "fit", data=["synthetic:4"], batch_size=4, steps=100, gen_scale=1.0)).history
    first = np.mean([h["loss"] for h in hist[:5]])
    last = np.mean([h["loss"] for h in hist[-10:]])
    assert last < first / 3, (first, last)


@pytest.mark.slow
def test_ddp_two_gloo_processes_match_one_process_with_double_batch(tmp_path):
    """torchrun, 2 CPU processes × batch 2 == 1 process × batch 4 (same loss curve)."""
    out = tmp_path / "ddp"
    args = ["--data", "synthetic", "--width", "0.125", "--crop", "64", "64", "--steps", "4", "--lr", "1e-3",
            "--no-augment", "--no-progress", "--threads", "1", "--seed", "5", "--workers", "0", "--eval-every", "0",
            "--no-batch-norm"]  # per-rank batch norm statistics would differ (SyncBatchNorm is CUDA-only)
    env = {**ENV, "GLOO_SOCKET_IFNAME": os.environ.get("GLOO_SOCKET_IFNAME", "lo")}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           "-m", "flowmatch", "train", "flownets", *args, "--batch-size", "2", "--out", str(out)],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ddp = json.loads((out / "history.json").read_text())
    single = train(tiny(tmp_path, "single", steps=4, seed=5, batch_size=4, batch_norm=False)).history
    assert len(ddp) == len(single) == 4
    np.testing.assert_allclose([h["loss"] for h in ddp], [h["loss"] for h in single], rtol=2e-3)
    assert len({round(h["loss"], 6) for h in single}) == 4
