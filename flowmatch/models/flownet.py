"""FlowNetS and FlowNetC (Dosovitskiy, Fischer et al., ICCV 2015), layer-exact to the published networks.

Both networks take two images and return five flow predictions, finest first:
``(flow2, flow3, flow4, flow5, flow6)`` at 1/4, 1/8, 1/16, 1/32 and 1/64 of the input size
(N×2×h×w float32, x (u) first).  As in the published training, every scale predicts the flow in
*input-resolution* pixels divided by ``div_flow`` (20): multiply by ``div_flow`` for pixels, and
upsample flow2 ×4 (bilinear, no magnitude change) for the full-resolution field --
`flowmatch.estimator.FlowEstimator` does all of this.

Any input size works (odd sizes too): every stride-2 layer rounds up, and the refinement crops each
upsampled map to the size of its skip connection.  The published networks were trained on sizes
that are multiples of 64, which is what the estimator pads to.

Options beyond the published layout, for small CPU-trainable configurations:
  width       channel multiplier for every feature layer (flow layers stay 2 channels; the
              correlation stays 441 channels)
  batch_norm  conv -> BatchNorm -> LeakyReLU without conv bias (as in the common PyTorch port)

Layer names follow the public PyTorch ports (``conv1.0.weight``, ``predict_flow6.weight``,
``upsampled_flow6_to_5.weight``, ...), so their state dicts load with `load_published_state_dict`.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import CheckpointError, InputError

LEAKY_SLOPE = 0.1
DIV_FLOW = 20.0
# Per-channel RGB mean of the ports' training data, used by the "dataset_mean" normalisation.
DATASET_MEAN = (0.45, 0.432, 0.411)
NORMALISATIONS = ("pair_mean", "dataset_mean", "none")

# (name, out_channels, kernel, stride) of the contracting part after the FlowNetC split point.
_ENCODER_TAIL = (("conv4", 512, 3, 2), ("conv4_1", 512, 3, 1), ("conv5", 512, 3, 2),
                 ("conv5_1", 512, 3, 1), ("conv6", 1024, 3, 2), ("conv6_1", 1024, 3, 1))
# Contracting part shared by FlowNetS (6-channel input) and each FlowNetC stream (3-channel input).
_ENCODER_HEAD = (("conv1", 64, 7, 2), ("conv2", 128, 5, 2), ("conv3", 256, 5, 2))


def _ch(c: int, width: float) -> int:
    return max(1, int(round(c * width)))


def _conv(cin: int, cout: int, k: int, stride: int, batch_norm: bool) -> nn.Sequential:
    """conv (k, stride, 'same' padding) -> [BatchNorm] -> LeakyReLU(0.1), as in the ports."""
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, stride, (k - 1) // 2, bias=not batch_norm)]
    if batch_norm:
        layers.append(nn.BatchNorm2d(cout))
    layers.append(nn.LeakyReLU(LEAKY_SLOPE, inplace=True))
    return nn.Sequential(*layers)


def _deconv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=True), nn.LeakyReLU(LEAKY_SLOPE, inplace=True))


def _predict_flow(cin: int) -> nn.Conv2d:
    return nn.Conv2d(cin, 2, 3, 1, 1, bias=True)


def _upsample_flow() -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(2, 2, 4, 2, 1, bias=False)


def _bilinear_kernel_(w: torch.Tensor) -> None:
    """Initialise a 2->2 stride-2 transposed conv as per-channel bilinear upsampling."""
    k = w.shape[-1]
    f = (k + 1) // 2
    c = f - 1 if k % 2 == 1 else f - 0.5
    r = torch.arange(k, dtype=torch.float32)
    one = 1 - (r - c).abs() / f
    w.zero_()
    for i in range(min(w.shape[0], w.shape[1])):
        w[i, i] = one[:, None] * one[None, :]


def _crop_like(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Crop an upsampled map (2·coarse size) to the size of its skip connection (odd sizes)."""
    return x[:, :, : ref.shape[2], : ref.shape[3]]


class _FlowNetBase(nn.Module):
    """The shared expanding (refinement) part and helpers.  Subclasses build the encoder."""

    kind = "flownet"

    def __init__(self, width: float = 1.0, batch_norm: bool = False, div_flow: float = DIV_FLOW,
                 normalisation: str = "pair_mean") -> None:
        super().__init__()
        if not (isinstance(width, (int, float)) and 0 < width <= 4):
            raise InputError(f"width must be a number in (0, 4], got {width!r}")
        if normalisation not in NORMALISATIONS:
            raise InputError(f"normalisation must be one of {NORMALISATIONS}, got {normalisation!r}")
        self.width = float(width)
        self.batch_norm = bool(batch_norm)
        self.div_flow = float(div_flow)
        self.normalisation = normalisation

    # -- configuration ----------------------------------------------------------------------
    @property
    def config(self) -> dict[str, Any]:
        """Keyword arguments that rebuild this model (stored in checkpoints)."""
        return {"width": self.width, "batch_norm": self.batch_norm, "div_flow": self.div_flow,
                "normalisation": self.normalisation}

    def _build_decoder(self, c3: int, c4: int, c5: int, c6: int, c2: int) -> None:
        """Refinement: deconv5..deconv2 with skip features c5, c4, c3, c2 (conv5_1, conv4_1,
        conv3_1, conv2) and the upsampled coarser flow (+2 channels) at each step."""
        w = self.width
        d5, d4, d3, d2 = _ch(512, w), _ch(256, w), _ch(128, w), _ch(64, w)
        self.deconv5 = _deconv(c6, d5)
        self.deconv4 = _deconv(c5 + d5 + 2, d4)
        self.deconv3 = _deconv(c4 + d4 + 2, d3)
        self.deconv2 = _deconv(c3 + d3 + 2, d2)
        self.predict_flow6 = _predict_flow(c6)
        self.predict_flow5 = _predict_flow(c5 + d5 + 2)
        self.predict_flow4 = _predict_flow(c4 + d4 + 2)
        self.predict_flow3 = _predict_flow(c3 + d3 + 2)
        self.predict_flow2 = _predict_flow(c2 + d2 + 2)
        self.upsampled_flow6_to_5 = _upsample_flow()
        self.upsampled_flow5_to_4 = _upsample_flow()
        self.upsampled_flow4_to_3 = _upsample_flow()
        self.upsampled_flow3_to_2 = _upsample_flow()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.kaiming_normal_(m.weight, a=LEAKY_SLOPE)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        # Flow upsampling starts as plain bilinear upsampling: training then only has to learn
        # corrections, which makes small configurations converge much faster.
        with torch.no_grad():
            for m in (self.upsampled_flow6_to_5, self.upsampled_flow5_to_4,
                      self.upsampled_flow4_to_3, self.upsampled_flow3_to_2):
                _bilinear_kernel_(m.weight)
            for m in (self.predict_flow6, self.predict_flow5, self.predict_flow4,
                      self.predict_flow3, self.predict_flow2):
                m.weight.mul_(0.1)  # small initial flows

    def _decode(self, c2: torch.Tensor, c3: torch.Tensor, c4: torch.Tensor, c5: torch.Tensor,
                c6: torch.Tensor) -> tuple[torch.Tensor, ...]:
        flow6 = self.predict_flow6(c6)
        x = torch.cat((c5, _crop_like(self.deconv5(c6), c5),
                       _crop_like(self.upsampled_flow6_to_5(flow6), c5)), 1)
        flow5 = self.predict_flow5(x)
        x = torch.cat((c4, _crop_like(self.deconv4(x), c4),
                       _crop_like(self.upsampled_flow5_to_4(flow5), c4)), 1)
        flow4 = self.predict_flow4(x)
        x = torch.cat((c3, _crop_like(self.deconv3(x), c3),
                       _crop_like(self.upsampled_flow4_to_3(flow4), c3)), 1)
        flow3 = self.predict_flow3(x)
        x = torch.cat((c2, _crop_like(self.deconv2(x), c2),
                       _crop_like(self.upsampled_flow3_to_2(flow3), c2)), 1)
        flow2 = self.predict_flow2(x)
        return flow2, flow3, flow4, flow5, flow6

    # -- inputs -----------------------------------------------------------------------------
    def normalise(self, img1: torch.Tensor, img2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Map two N×3×H×W float images with values in [0, 1] to the network's input range.

        "pair_mean": subtract the per-sample, per-channel mean over both frames (FlowNet2 port);
        "dataset_mean": subtract a fixed RGB mean (FlowNetPytorch port); "none": unchanged."""
        if self.normalisation == "pair_mean":
            mean = torch.cat((img1, img2), 3).mean(dim=(2, 3), keepdim=True)
            return img1 - mean, img2 - mean
        if self.normalisation == "dataset_mean":
            mean = img1.new_tensor(DATASET_MEAN).view(1, 3, 1, 1)
            return img1 - mean, img2 - mean
        return img1, img2

    @staticmethod
    def _check_inputs(img1: torch.Tensor, img2: torch.Tensor) -> None:
        for name, t in (("img1", img1), ("img2", img2)):
            if not isinstance(t, torch.Tensor):
                raise InputError(f"{name} must be a torch tensor N×3×H×W, got {type(t).__name__}")
            if t.ndim != 4 or t.shape[1] != 3:
                raise InputError(f"{name} must be N×3×H×W (RGB), got shape {tuple(t.shape)}")
            if t.shape[2] < 1 or t.shape[3] < 1 or t.shape[0] < 1:
                raise InputError(f"{name} is empty: shape {tuple(t.shape)}")
        if img1.shape != img2.shape:
            raise InputError(f"img1 and img2 must have the same shape, got {tuple(img1.shape)} and {tuple(img2.shape)}")


class FlowNetS(_FlowNetBase):
    """FlowNetSimple: both frames stacked into 6 channels, one contracting stream.

    forward(img1, img2): N×3×H×W each (normalised, see `normalise`) ->
    (flow2, flow3, flow4, flow5, flow6), each N×2×ceil(H/2^k)×ceil(W/2^k), in input-resolution
    pixels / div_flow."""

    kind = "flownets"

    def __init__(self, width: float = 1.0, batch_norm: bool = False, div_flow: float = DIV_FLOW,
                 normalisation: str = "pair_mean") -> None:
        super().__init__(width, batch_norm, div_flow, normalisation)
        w, bn = self.width, self.batch_norm
        cin = 6
        chans = {}
        for name, cout, k, s in _ENCODER_HEAD + (("conv3_1", 256, 3, 1),) + _ENCODER_TAIL:
            c = _ch(cout, w)
            setattr(self, name, _conv(cin, c, k, s, bn))
            chans[name], cin = c, c
        self._build_decoder(chans["conv3_1"], chans["conv4_1"], chans["conv5_1"], chans["conv6_1"], chans["conv2"])
        self._init_weights()

    def forward(self, img1: torch.Tensor, img2: torch.Tensor) -> tuple[torch.Tensor, ...]:
        self._check_inputs(img1, img2)
        c2 = self.conv2(self.conv1(torch.cat((img1, img2), 1)))
        c3 = self.conv3_1(self.conv3(c2))
        c4 = self.conv4_1(self.conv4(c3))
        c5 = self.conv5_1(self.conv5(c4))
        c6 = self.conv6_1(self.conv6(c5))
        return self._decode(c2, c3, c4, c5, c6)


class FlowNetC(_FlowNetBase):
    """FlowNetCorr: conv1-conv3 applied to each frame with shared weights, a correlation layer
    (kernel 1, max displacement 20, stride1 1, stride2 2 -> 441 channels, LeakyReLU), conv_redir
    (1×1, 256 -> 32) on the first stream, then conv3_1 on the 473 concatenated channels.

    forward(img1, img2): as FlowNetS."""

    kind = "flownetc"
    CORR = dict(pad_size=20, kernel_size=1, max_displacement=20, stride1=1, stride2=2)

    def __init__(self, width: float = 1.0, batch_norm: bool = False, div_flow: float = DIV_FLOW,
                 normalisation: str = "pair_mean") -> None:
        super().__init__(width, batch_norm, div_flow, normalisation)
        w, bn = self.width, self.batch_norm
        cin = 3
        for name, cout, k, s in _ENCODER_HEAD:
            c = _ch(cout, w)
            setattr(self, name, _conv(cin, c, k, s, bn))
            cin = c
        c2 = _ch(128, w)
        redir = _ch(32, w)
        self.conv_redir = _conv(cin, redir, 1, 1, bn)
        d = 2 * (self.CORR["max_displacement"] // self.CORR["stride2"]) + 1
        cin = d * d + redir
        chans = {}
        for name, cout, k, s in (("conv3_1", 256, 3, 1),) + _ENCODER_TAIL:
            c = _ch(cout, w)
            setattr(self, name, _conv(cin, c, k, s, bn))
            chans[name], cin = c, c
        self._build_decoder(chans["conv3_1"], chans["conv4_1"], chans["conv5_1"], chans["conv6_1"], c2)
        self._init_weights()

    def forward(self, img1: torch.Tensor, img2: torch.Tensor) -> tuple[torch.Tensor, ...]:
        self._check_inputs(img1, img2)
        from ..ops.correlation import correlation  # engineer C's op (with its own fallback)

        # Both streams through the shared layers in one batch: same result, one pass.
        n = img1.shape[0]
        c2ab = self.conv2(self.conv1(torch.cat((img1, img2), 0)))
        c3ab = self.conv3(c2ab)
        c2, c3a, c3b = c2ab[:n], c3ab[:n], c3ab[n:]
        corr = F.leaky_relu(correlation(c3a, c3b, **self.CORR), LEAKY_SLOPE)
        c3 = self.conv3_1(torch.cat((self.conv_redir(c3a), corr), 1))
        c4 = self.conv4_1(self.conv4(c3))
        c5 = self.conv5_1(self.conv5(c4))
        c6 = self.conv6_1(self.conv6(c5))
        return self._decode(c2, c3, c4, c5, c6)


MODELS: dict[str, type[_FlowNetBase]] = {"flownets": FlowNetS, "flownetc": FlowNetC}


def build_model(kind: str, **config: Any) -> _FlowNetBase:
    """FlowNetS or FlowNetC by name ("flownets" / "flownetc") with the given config."""
    if kind not in MODELS:
        raise InputError(f"unknown FlowNet model {kind!r}; expected one of {sorted(MODELS)}")
    try:
        return MODELS[kind](**config)
    except TypeError as exc:
        raise CheckpointError(f"cannot build {kind} from config {config}: {exc}") from exc


def _published_kind(state: dict[str, torch.Tensor]) -> str:
    return "flownetc" if any(k.startswith("conv_redir.") for k in state) else "flownets"


def load_published_state_dict(state: dict[str, Any], kind: str | None = None,
                              normalisation: str = "pair_mean") -> _FlowNetBase:
    """Build a full-width FlowNet from a published PyTorch-port state dict.

    Accepts the FlowNet2-pytorch (Caffe-converted) and FlowNetPytorch layouts: a bare state dict or
    one nested under "state_dict"/"model", keys optionally prefixed by "module." (DataParallel).
    The batch-norm variant is detected from the keys; `kind` is detected from "conv_redir" when None.
    Raises CheckpointError naming the missing/unexpected keys or mismatched shapes."""
    if not isinstance(state, dict):
        raise CheckpointError(f"a published FlowNet state dict must be a dict, got {type(state).__name__}")
    for key in ("state_dict", "model"):
        if key in state and isinstance(state[key], dict):
            state = state[key]
    state = {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}
    # FlowNet2-pytorch keeps the correlation/upsampling layers without parameters; nothing to drop.
    found = _published_kind(state)
    if kind is None:
        kind = found
    elif kind != found:
        raise CheckpointError(f"the state dict is a {found} (conv_redir {'present' if found == 'flownetc' else 'absent'}), "
                              f"expected {kind}")
    batch_norm = "conv1.1.running_mean" in state
    model = build_model(kind, width=1.0, batch_norm=batch_norm, normalisation=normalisation)
    from ..checkpoint import load_state_into

    own = model.state_dict()
    # The ports store BN's num_batches_tracked only in newer versions; fill it when absent.
    state = dict(state)
    for k, v in own.items():
        if k.endswith("num_batches_tracked") and k not in state:
            state[k] = v
    load_state_into(model, {k: (v.float() if torch.is_tensor(v) and v.is_floating_point() else v)
                            for k, v in state.items()}, source=f"published {kind} state dict")
    return model


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
