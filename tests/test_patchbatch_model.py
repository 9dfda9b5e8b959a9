"""The PatchBatch descriptor network: layer sizes, normalisation variants, input checks."""
import pytest
import torch
import torch.nn.functional as F

from flowmatch.errors import InputError
from flowmatch.models.patchbatch import LEAK, PatchBatchNet, UnitBatchNorm, fused_layers


@pytest.mark.parametrize("variant,size", [("paper", 51), ("dense", 62)])
def test_output_shape_and_layer_sizes(variant, size):
    net = PatchBatchNet(variant, width=0.25)
    seen = []
    hooks = [c.register_forward_hook(lambda m, i, o: seen.append(o.shape[-1])) for c in net.convs]
    out = net(torch.randn(3, 1, size, size))
    for h in hooks:
        h.remove()
    assert out.shape == (3, 128)
    # Conv output sizes of the paper's table (51: 49, 23, 10, 3, 1) and of the floor-mode variant.
    assert seen == ([49, 23, 10, 3, 1] if variant == "paper" else [60, 28, 12, 4, 1])


def test_full_width_is_512d():
    net = PatchBatchNet("paper")
    assert net.dim == 512 and net.channels == (32, 64, 128, 256, 512)
    assert isinstance(net.bns[0], UnitBatchNorm) and net.bns[0].bn.eps == 1e-3


def test_unit_bn_normalises_each_position_separately():
    bn = UnitBatchNorm(2, 3).train()
    x = torch.randn(64, 2, 3, 3) * torch.arange(1, 19.0).reshape(1, 2, 3, 3) + 5
    y = bn(x)
    # Every unit (channel and position) has zero batch mean and unit (biased) variance.
    torch.testing.assert_close(y.mean(0), torch.zeros(2, 3, 3), atol=1e-5, rtol=0)
    torch.testing.assert_close(y.var(0, unbiased=False), torch.ones(2, 3, 3), atol=1e-2, rtol=0)


def test_dense_variant_is_translation_equivariant_per_patch():
    """Per-channel BN + floor pools: shifting the input of a bigger window by 16 px shifts the
    fully-convolutional output of the per-patch layers by one cell (checked via the forward of
    two overlapping patches of one random image)."""
    torch.manual_seed(0)
    net = PatchBatchNet("dense", width=0.25).eval()
    img = torch.randn(1, 1, 62 + 16, 62)
    a = net(img[:, :, :62])
    b = net(img[:, :, 16:])
    # Running the convolutional stack on the whole 78-px window (floor pools) gives a 2×1 output
    # whose cells are exactly the two patches' descriptors.
    x = img
    for i, (w, bias) in enumerate(fused_layers(net)):
        x = F.leaky_relu(F.conv2d(x, w, bias), LEAK)
        if i < 4:
            x = F.max_pool2d(x, 2, 2)
    torch.testing.assert_close(x[0, :, 0, 0], a[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(x[0, :, 1, 0], b[0], atol=1e-5, rtol=1e-5)


def test_fused_layers_equal_eval_mode_conv_bn():
    torch.manual_seed(1)
    net = PatchBatchNet("dense", width=0.25)
    for bn in net.bns:
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
        bn.weight.data.uniform_(0.5, 2)
        bn.bias.data.uniform_(-1, 1)
    net.eval()
    x = torch.randn(2, 1, 20, 20)
    w, b = fused_layers(net)[0]
    torch.testing.assert_close(F.conv2d(x, w, b), net.bns[0](net.convs[0](x)), atol=1e-5, rtol=1e-5)


def test_bad_configs_and_inputs():
    with pytest.raises(InputError, match="variant"):
        PatchBatchNet("huge")
    with pytest.raises(InputError, match="bn='channel'"):
        PatchBatchNet("dense", bn="unit")
    with pytest.raises(InputError, match="width"):
        PatchBatchNet("paper", width=0)
    net = PatchBatchNet("paper", width=0.25)
    with pytest.raises(InputError, match="N×1×51×51"):
        net(torch.randn(2, 1, 62, 62))
    with pytest.raises(InputError, match="N×1×51×51"):
        net(torch.randn(2, 3, 51, 51))
    with pytest.raises(InputError, match="floating"):
        net(torch.zeros(2, 1, 51, 51, dtype=torch.uint8))
    with pytest.raises(InputError, match="per-channel"):
        fused_layers(net)
