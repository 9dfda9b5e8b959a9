"""FlowNetS / FlowNetC: layer table and parameter counts against the published networks, output
scales for many input sizes, the published state-dict loader, checkpoints and bad input."""
from __future__ import annotations

import math

import pytest
import torch

from flowmatch.checkpoint import save_checkpoint
from flowmatch.errors import CheckpointError, InputError
from flowmatch.models.flownet import FlowNetC, FlowNetS, build_model, count_parameters, load_published_state_dict

# The published layer tables (FlowNet paper + the public ports), written out independently of the
# model code: name -> (in_channels, out_channels, kernel, has_bias, transposed).
_ENC_TAIL = [("conv4", 256, 512, 3), ("conv4_1", 512, 512, 3), ("conv5", 512, 512, 3),
             ("conv5_1", 512, 512, 3), ("conv6", 512, 1024, 3), ("conv6_1", 1024, 1024, 3)]
_DEC = [("deconv5", 1024, 512, 4), ("deconv4", 1026, 256, 4), ("deconv3", 770, 128, 4), ("deconv2", 386, 64, 4),
        ("predict_flow6", 1024, 2, 3), ("predict_flow5", 1026, 2, 3), ("predict_flow4", 770, 2, 3),
        ("predict_flow3", 386, 2, 3), ("predict_flow2", 194, 2, 3)]
_UPS = ["upsampled_flow6_to_5", "upsampled_flow5_to_4", "upsampled_flow4_to_3", "upsampled_flow3_to_2"]


def published_table(kind: str) -> dict[str, tuple[int, int, int, bool, bool]]:
    if kind == "flownets":
        enc = [("conv1", 6, 64, 7), ("conv2", 64, 128, 5), ("conv3", 128, 256, 5), ("conv3_1", 256, 256, 3)]
    else:
        enc = [("conv1", 3, 64, 7), ("conv2", 64, 128, 5), ("conv3", 128, 256, 5), ("conv_redir", 256, 32, 1),
               ("conv3_1", 21 * 21 + 32, 256, 3)]
    table = {n: (i, o, k, True, False) for n, i, o, k in enc + _ENC_TAIL}
    for n, i, o, k in _DEC:
        table[n] = (i, o, k, True, n.startswith("deconv"))
    for n in _UPS:
        table[n] = (2, 2, 4, False, True)
    return table


def published_state_dict(kind: str, prefix: str = "") -> dict[str, torch.Tensor]:
    """A state dict with the ports' key names and shapes (random values)."""
    g = torch.Generator().manual_seed(0)
    sd = {}
    for name, (i, o, k, bias, transposed) in published_table(kind).items():
        mod = name if name.startswith(("predict", "upsampled")) else f"{name}.0"
        shape = (i, o, k, k) if transposed else (o, i, k, k)
        sd[f"{prefix}{mod}.weight"] = torch.randn(shape, generator=g)
        if bias:
            sd[f"{prefix}{mod}.bias"] = torch.randn(o, generator=g)
    return sd


@pytest.mark.parametrize("kind", ["flownets", "flownetc"])
def test_parameter_count_matches_published_table(kind):
    expected = sum(i * o * k * k + (o if bias else 0) for i, o, k, bias, _ in published_table(kind).values())
    model = build_model(kind)
    assert count_parameters(model) == expected
    # The well-known totals of the published networks (~38.7M and ~39.2M).
    assert abs(expected - {"flownets": 38.7e6, "flownetc": 39.2e6}[kind]) < 0.05e6


@pytest.mark.parametrize("kind", ["flownets", "flownetc"])
def test_published_state_dict_loads_every_tensor(kind):
    sd = published_state_dict(kind, prefix="module.")
    model = load_published_state_dict({"state_dict": sd, "epoch": 3})
    assert isinstance(model, FlowNetC if kind == "flownetc" else FlowNetS)
    own = model.state_dict()
    for key, value in sd.items():
        assert torch.equal(own[key[len("module."):]], value)


def test_published_loader_rejects_wrong_model_and_shape():
    sd = published_state_dict("flownets")
    with pytest.raises(CheckpointError, match="flownets"):
        load_published_state_dict(sd, kind="flownetc")
    bad = dict(sd)
    bad["conv2.0.weight"] = torch.zeros(128, 64, 3, 3)
    with pytest.raises(CheckpointError, match="conv2.0.weight"):
        load_published_state_dict(bad)
    missing = dict(sd)
    del missing["predict_flow2.weight"]
    with pytest.raises(CheckpointError, match="missing"):
        load_published_state_dict(missing)
    with pytest.raises(CheckpointError):
        load_published_state_dict([1, 2, 3])


def test_published_loader_batch_norm_variant():
    """A batch-norm port state dict (conv without bias, then BN at index 1) is detected."""
    ref = FlowNetS(batch_norm=True)
    sd = {k: torch.randn_like(v) if v.is_floating_point() else v for k, v in ref.state_dict().items()}
    model = load_published_state_dict(sd)
    assert model.batch_norm
    assert torch.equal(model.state_dict()["conv1.1.running_mean"], sd["conv1.1.running_mean"])


@pytest.mark.parametrize("kind", ["flownets", "flownetc"])
@pytest.mark.parametrize("hw", [(64, 64), (65, 97), (100, 37), (128, 192), (9, 13)])
def test_output_scales_for_any_size(kind, hw):
    torch.manual_seed(0)
    model = build_model(kind, width=0.125).eval()
    h, w = hw
    with torch.no_grad():
        outs = model(torch.rand(2, 3, h, w), torch.rand(2, 3, h, w))
    assert len(outs) == 5
    for k, out in zip(range(2, 7), outs):
        assert out.shape == (2, 2, math.ceil(h / 2 ** k), math.ceil(w / 2 ** k))
        assert torch.isfinite(out).all()


def test_flownetc_streams_share_weights_and_use_correlation():
    """FlowNetC's flow depends on the second frame only through the correlation: swapping in a
    shifted second frame changes the output, and the first-stream layers see frame 1 only."""
    torch.manual_seed(0)
    model = FlowNetC(width=0.125).eval()
    a = torch.rand(1, 3, 64, 64)
    b = torch.roll(a, 4, dims=3)
    with torch.no_grad():
        f_same = model(a, a)[0]
        f_shift = model(a, b)[0]
    assert not torch.allclose(f_same, f_shift)
    names = {n.split(".")[0] for n, _ in model.named_parameters()}
    assert "conv_redir" in names and "conv1" in names
    assert not any(n.endswith("_b") or n.startswith("conv1b") for n in names)  # one set of stream weights


def test_width_and_batch_norm_options():
    small = FlowNetS(width=0.25, batch_norm=True)
    assert small.conv1[0].out_channels == 16 and isinstance(small.conv1[1], torch.nn.BatchNorm2d)
    assert small.conv1[0].bias is None
    assert count_parameters(small) < count_parameters(FlowNetS()) / 10
    with pytest.raises(InputError):
        FlowNetS(width=0)
    with pytest.raises(InputError):
        FlowNetS(normalisation="imagenet")
    with pytest.raises(InputError):
        build_model("flownet2")


def test_model_rejects_bad_input():
    model = FlowNetS(width=0.125)
    with pytest.raises(InputError, match="N×3×H×W"):
        model(torch.rand(1, 4, 64, 64), torch.rand(1, 4, 64, 64))
    with pytest.raises(InputError, match="same shape"):
        model(torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 32))
    with pytest.raises(InputError):
        model(torch.rand(3, 64, 64), torch.rand(3, 64, 64))


def test_checkpoint_of_another_model_or_shape(tmp_path):
    from flowmatch.estimator import FlowEstimator

    s = FlowNetS(width=0.125)
    path = tmp_path / "s.safetensors"
    save_checkpoint(path, "flownets", s.config, s.state_dict())
    assert isinstance(FlowEstimator.from_checkpoint(path).model, FlowNetS)
    with pytest.raises(CheckpointError, match="flownets"):
        FlowEstimator.from_checkpoint(path, kind="flownetc")
    # config says width 0.25 but the tensors are width 0.125
    wrong = tmp_path / "wrong.safetensors"
    save_checkpoint(wrong, "flownets", {**s.config, "width": 0.25}, s.state_dict())
    with pytest.raises(CheckpointError, match="shape mismatch"):
        FlowEstimator.from_checkpoint(wrong)
    other = tmp_path / "other.safetensors"
    save_checkpoint(other, "patchbatch", {}, {"w": torch.zeros(1)})
    with pytest.raises(CheckpointError, match="patchbatch"):
        FlowEstimator.from_checkpoint(other)
