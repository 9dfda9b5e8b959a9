"""Which descriptor network a PatchBatch run uses: a loaded `model=` or the descriptor_model option, never
one silently instead of the other."""
import numpy as np
import pytest
import torch

import flowmatch
from flowmatch.checkpoint import save_checkpoint
from flowmatch.errors import InputError
from flowmatch.models.patchbatch import PatchBatchNet
from flowmatch.pipelines.patchbatch import load_descriptor_model, patchbatch_flow

pytestmark = pytest.mark.skipif(not hasattr(torch.ops.flowmatch, "patchmatch"), reason="extension not built")


def _frames():
    rng = np.random.default_rng(7)
    a = (rng.random((48, 64, 3)) * 255).astype(np.uint8)
    b = np.roll(a, (1, 2), axis=(0, 1))
    return a, b


@pytest.fixture
def other_net(tmp_path):
    """A random width-0.125 dense net saved as weights, unlike the shipped one."""
    torch.manual_seed(3)
    net = PatchBatchNet("dense", width=0.125)
    path = tmp_path / "other.safetensors"
    save_checkpoint(path, "patchbatch", net.config(), net.state_dict(), half=True)
    return str(path)


def test_model_and_descriptor_model_together_are_refused(other_net):
    a, b = _frames()
    with pytest.raises(InputError, match="not both"):
        patchbatch_flow(a, b, preset="fast", model=load_descriptor_model(other_net), descriptor_model=other_net)


def test_descriptor_model_option_reaches_the_pipeline_through_flowmatch_flow(other_net):
    a, b = _frames()
    opts = {"descriptor": "patchbatch", "seed": 0, "precision": "fp32"}
    via_flow = flowmatch.flow(a, b, method="patchbatch-fast", descriptor_model=other_net, **opts)
    direct = patchbatch_flow(a, b, preset="fast", model=load_descriptor_model(other_net), **opts)
    shipped = flowmatch.flow(a, b, method="patchbatch-fast", **opts)
    np.testing.assert_array_equal(via_flow, direct)
    assert not np.array_equal(via_flow, shipped)  # a random net does not match like the trained one
