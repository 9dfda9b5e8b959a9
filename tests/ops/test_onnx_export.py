"""flowmatch.ops.onnx: models using the lookup op and FlowNetC (through the correlation op) exported
with the torch.export-based exporter run in onnxruntime, in a process that imports neither torch nor
flowmatch, and agree with eager PyTorch; the graphs use standard ONNX operators only."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import onnx
import pytest
import torch

import flowmatch.ops as ops
from flowmatch.errors import InputError
from flowmatch.models.flownet import FlowNetC
from flowmatch.ops.correlation_reference import correlation_reference
from flowmatch.ops.onnx import correlation_unfolded, export_onnx


class LookupNet(torch.nn.Module):
    """A RAFT-style lookup head: shared conv features, 2-level pyramid, radius 2."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 16, 3, padding=1)

    def forward(self, a, b, coords):
        return ops.local_correlation(self.conv(a), ops.feature_pyramid(self.conv(b), 2), coords, radius=2)


# Runs in a fresh interpreter: only onnxruntime and numpy.
ORT_RUNNER = """
import json, sys
import numpy as np, onnxruntime as ort
jobs = json.loads(sys.argv[1])
for model, inputs, outputs in jobs:
    sess = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    feed = dict(np.load(inputs))
    names = [o.name for o in sess.get_outputs()]
    np.savez(outputs, *sess.run(names, {i.name: feed[i.name] for i in sess.get_inputs()}))
assert "torch" not in sys.modules and "flowmatch" not in sys.modules
"""


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Both models exported once; their onnxruntime outputs (from the subprocess) and eager outputs."""
    tmp = tmp_path_factory.mktemp("onnx")
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    lookup = LookupNet().eval()
    a, b = torch.randn(1, 3, 12, 14, generator=g), torch.randn(1, 3, 12, 14, generator=g)
    coords = torch.rand(1, 2, 12, 14, generator=g) * torch.tensor([17.0, 15.0]).view(1, 2, 1, 1) - 1.5
    flownet = FlowNetC(width=0.25).eval()
    i1, i2 = torch.rand(1, 3, 64, 96, generator=g), torch.rand(1, 3, 64, 96, generator=g)
    cases = {"lookup": (lookup, {"a": a, "b": b, "coords": coords}),
             "flownetc": (flownet, {"img1": i1, "img2": i2})}
    result, jobs = {}, []
    for name, (model, feed) in cases.items():
        path = export_onnx(model, tuple(feed.values()), tmp / f"{name}.onnx", input_names=list(feed))
        np.savez(tmp / f"{name}_in.npz", **{k: v.numpy() for k, v in feed.items()})
        with torch.no_grad():
            eager = model(*feed.values())
        result[name] = {"path": path, "eager": eager if isinstance(eager, tuple) else (eager,)}
        jobs.append([path, str(tmp / f"{name}_in.npz"), str(tmp / f"{name}_out.npz")])
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, "-c", ORT_RUNNER, json.dumps(jobs)], capture_output=True, text=True,
                          timeout=300, env=env, cwd=tmp)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name, (_, _, out) in zip(cases, jobs):
        with np.load(out) as z:
            result[name]["ort"] = [z[f"arr_{i}"] for i in range(len(z.files))]
    return result


def test_lookup_model_matches_eager_in_onnxruntime(exported):
    ort_out, eager = exported["lookup"]["ort"], exported["lookup"]["eager"]
    assert len(ort_out) == 1 and ort_out[0].shape == (1, 2 * 25, 12, 14)
    np.testing.assert_allclose(ort_out[0], eager[0].numpy(), rtol=1e-4, atol=1e-5)


def test_flownetc_matches_eager_in_onnxruntime(exported):
    ort_out, eager = exported["flownetc"]["ort"], exported["flownetc"]["eager"]
    assert len(ort_out) == 5
    for got, want in zip(ort_out, eager):
        assert got.shape == tuple(want.shape)
        np.testing.assert_allclose(got, want.numpy(), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name", ["lookup", "flownetc"])
def test_exported_graph_uses_standard_onnx_ops_only(exported, name):
    model = onnx.load(exported[name]["path"])
    onnx.checker.check_model(model)
    assert {node.domain for node in model.graph.node} <= {"", "ai.onnx"}
    assert not model.functions
    kinds = {node.op_type for node in model.graph.node}
    if name == "lookup":
        assert "GridSample" in kinds
    assert not any("correlation" in k.lower() for k in kinds)


@pytest.mark.parametrize("args", [(20, 1, 20, 1, 2), (2, 1, 2, 1, 1), (3, 3, 2, 1, 1), (4, 1, 4, 2, 2),
                                  (2, 3, 3, 2, 2), (5, 1, 3, 1, 3), (1, 3, 1, 3, 1), (0, 1, 0, 1, 1)])
def test_correlation_unfolded_equals_reference(args):
    g = torch.Generator().manual_seed(sum(args))
    f1, f2 = torch.randn(2, 3, 12, 13, generator=g, dtype=torch.float64), torch.randn(2, 3, 12, 13, generator=g,
                                                                                          dtype=torch.float64)
    if args[0] == 20:
        f1, f2 = torch.randn(1, 4, 12, 13, generator=g, dtype=torch.float64), torch.randn(1, 4, 12, 13, generator=g,
                                                                                            dtype=torch.float64)
    torch.testing.assert_close(correlation_unfolded(f1, f2, *args), correlation_reference(f1, f2, *args),
                               rtol=0, atol=1e-12)


def test_failed_export_leaves_existing_file_untouched(tmp_path):
    class Broken(torch.nn.Module):
        def forward(self, x):
            raise RuntimeError("boom")

    target = tmp_path / "model.onnx"
    target.write_bytes(b"previous")
    with pytest.raises(Exception, match="boom"):
        export_onnx(Broken(), (torch.zeros(1),), target)
    assert target.read_bytes() == b"previous"
    assert os.listdir(tmp_path) == ["model.onnx"]


def test_export_rejects_bad_arguments(tmp_path):
    with pytest.raises(InputError):
        export_onnx(LookupNet(), [torch.zeros(1)], tmp_path / "x.onnx")
    with pytest.raises(InputError):
        export_onnx(LookupNet(), (torch.zeros(1),), tmp_path / "x.onnx", opset_version=13)
