"""FlowNet inference precision (FlowEstimator precision=, the flownets/flownetc method option, the CLI's
--option precision=): bf16 autocast of the shipped FlowNetC against fp32 with a stated tolerance, the
correlation op seen in bf16 inside FlowNetC under it (and in float32 without), bad values refused."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import flowmatch
from flowmatch import io
from flowmatch.cli import main
from flowmatch.data.synthetic import generate_pair
from flowmatch.errors import InputError
from flowmatch.estimator import FlowEstimator
from flowmatch.ops.correlation import extension_available

needs_ext = pytest.mark.skipif(not extension_available(), reason="flowmatch._C not built (make build)")


class CorrelationDtypes(TorchDispatchMode):
    """Records the dtypes of both maps at every flowmatch::correlation call (below autocast)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[torch.dtype, torch.dtype]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.flowmatch.correlation.default:
            self.seen.append((args[0].dtype, args[1].dtype))
        return func(*args, **(kwargs or {}))


@pytest.fixture(scope="module")
def pair():
    return generate_pair(96, 128, 1)  # FlowNetC's training size range; motion up to 40 px


@needs_ext
def test_bf16_flownetc_is_within_the_stated_tolerance_of_fp32(pair):
    """Shipped FlowNetC, whole forward under CPU bf16 autocast vs fp32.  Measured on 128×192 pairs:
    max deviation 0.03-0.05 px, mean 0.006-0.010 px (flows up to 4-7 px).  Stated tolerance:
    max ≤ 0.25 px and mean ≤ 0.03 px, i.e. about 5× and 3× what bf16 rounding gave."""
    f32 = FlowEstimator.from_pretrained("flownetc", precision="fp32")(pair.img1, pair.img2)
    bf16 = FlowEstimator.from_pretrained("flownetc", precision="bf16")(pair.img1, pair.img2)
    assert bf16.dtype == np.float32 and bf16.shape == f32.shape == (96, 128, 2)
    dev = np.abs(bf16 - f32)
    assert np.abs(f32).max() > 1.0  # a real flow to compare, not two near-zero fields
    assert dev.max() > 0  # bf16 really ran: its rounding shows
    assert dev.max() <= 0.25 and dev.mean() <= 0.03, (dev.max(), dev.mean())


@needs_ext
@pytest.mark.parametrize("precision, dtype", [("bf16", torch.bfloat16), ("fp32", torch.float32)])
def test_the_correlation_op_sees_the_chosen_dtype_inside_flownetc(pair, precision, dtype):
    est = FlowEstimator.from_pretrained("flownetc", precision=precision)
    with CorrelationDtypes() as mode:
        est(pair.img1, pair.img2)
    assert mode.seen == [(dtype, dtype)]  # one correlation per forward, both maps in that dtype


@needs_ext
def test_method_option_reaches_the_correlation_op(pair, monkeypatch):
    from flowmatch import precision as precision_module

    with CorrelationDtypes() as mode:
        flowmatch.flow(pair.img1, pair.img2, method="flownetc", precision="bf16")
    assert mode.seen == [(torch.bfloat16, torch.bfloat16)]
    # "auto" on a CPU without native bf16 (this machine's kind: AVX2 only) stays float32
    monkeypatch.setattr(precision_module, "cpu_has_fast_bf16", lambda: False)
    with CorrelationDtypes() as mode:
        flowmatch.flow(pair.img1, pair.img2, method="flownetc", precision="auto")
    assert mode.seen == [(torch.float32, torch.float32)]


@pytest.mark.parametrize("bad", ["fp64", "BF16", "float32", "", None, 16])
def test_bad_precision_is_an_input_error(bad):
    from flowmatch.models.flownet import FlowNetC

    with pytest.raises(InputError, match="precision"):
        FlowEstimator(FlowNetC(width=0.125), precision=bad)


def test_bad_precision_through_the_method_and_the_cli(pair, tmp_path, capsys):
    with pytest.raises(InputError, match="precision"):
        flowmatch.flow(pair.img1, pair.img2, method="flownets", precision="half")
    a, b = str(tmp_path / "a.png"), str(tmp_path / "b.png")
    io.write_image(a, pair.img1)
    io.write_image(b, pair.img2)
    out = tmp_path / "o.flo"
    assert main(["flow", a, b, "-o", str(out), "--method", "flownets", "--option", "precision=fp64"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "precision" in err[0] and "Traceback" not in err[0]
    assert not out.exists()
