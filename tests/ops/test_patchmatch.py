"""PatchMatch op: against the brute-force oracle, determinism, dtypes, sub-pixel, bad input."""
import numpy as np
import pytest
import torch

from flowmatch import _ext
from flowmatch.errors import InputError
from flowmatch.ops.patchmatch import patchmatch, patchmatch_bruteforce

from devices import over_devices

pytestmark = pytest.mark.skipif(not _ext.available(), reason="flowmatch._C not built")


def _known_field(H, W, D, seed, noise=0.02):
    """B random; A = B sampled at a piecewise-constant integer flow (+ noise): true matches known."""
    g = torch.Generator().manual_seed(seed)
    b = torch.randn(H, W, D, generator=g)
    u = torch.zeros(H, W, dtype=torch.long)
    v = torch.zeros_like(u)
    u[:, : W // 2], v[:, : W // 2] = 3, -2
    u[:, W // 2:], v[:, W // 2:] = -4, 1
    u[H // 2:, W // 3: 2 * W // 3], v[H // 2:, W // 3: 2 * W // 3] = 6, 5  # a third region
    ys, xs = torch.meshgrid(torch.arange(H), torch.arange(W), indexing="ij")
    ty, tx = (ys + v).clamp(0, H - 1), (xs + u).clamp(0, W - 1)
    a = b[ty, tx] + noise * torch.randn(H, W, D, generator=g)
    return a, b, torch.stack([tx - xs, ty - ys], -1).float()


def _recompute_cost(a, b, flow):
    H, W, _ = a.shape
    ys, xs = torch.meshgrid(torch.arange(H), torch.arange(W), indexing="ij")
    tx = xs + flow[..., 0].round().long()
    ty = ys + flow[..., 1].round().long()
    assert bool(((tx >= 0) & (tx < W) & (ty >= 0) & (ty < H)).all()), "a match left image B"
    d = a.float() - b.float()[ty, tx]
    return (d.double() ** 2).sum(-1)


@over_devices
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_reaches_bruteforce_minimum(seed, device):
    a, b, true_flow = _known_field(24, 40, 16, seed)
    flow, cost = patchmatch(a.to(device), b.to(device), iterations=6, radius=16, window=40, seed=seed)
    assert flow.device.type == device
    flow, cost = flow.cpu(), cost.cpu()
    bf_flow, bf_cost = patchmatch_bruteforce(a, b)  # whole image = full search window
    # The oracle agrees with the construction (noise is small), so the oracle itself is checked too.
    assert (bf_flow == true_flow).float().all(-1).float().mean() > 0.99
    same_min = torch.isclose(cost, bf_cost, rtol=1e-5, atol=1e-5)
    assert same_min.float().mean() >= 0.99
    assert bool((cost >= bf_cost - 1e-4 * (1 + bf_cost)).all()), "cost below the true minimum"
    # reported costs are the true distances of the reported matches
    torch.testing.assert_close(cost.double(), _recompute_cost(a, b, flow), rtol=1e-5, atol=1e-5)


@over_devices
def test_more_passes_never_raise_a_cost_and_approach_the_minimum(device):
    """With one seed, k passes are the first k of 2k (the presets' pass counts rely on it: more passes only
    refine), so no pixel's cost rises with more passes; on a noisy field the mean keeps falling towards the
    brute-force minimum and never goes below it."""
    a, b, _ = _known_field(40, 56, 16, 5, noise=0.6)
    _, best = patchmatch_bruteforce(a, b)
    costs = [patchmatch(a.to(device), b.to(device), iterations=k, radius=8, window=24, seed=9)[1].cpu()
             for k in (1, 2, 4, 8)]
    for fewer, more in zip(costs, costs[1:]):
        assert bool((more <= fewer + 1e-5 * (1 + fewer)).all())
        assert more.mean() < fewer.mean()
    assert bool((costs[-1] >= best - 1e-4 * (1 + best)).all())
    assert costs[-1].mean() - best.mean() < 0.2 * (costs[0].mean() - best.mean())


def test_deterministic_and_thread_independent():
    a, b, _ = _known_field(40, 48, 8, 3, noise=0.5)
    args = dict(iterations=2, radius=4, window=6, seed=11)
    f1, c1 = patchmatch(a, b, **args)
    f2, c2 = patchmatch(a, b, **args)
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        f3, c3 = patchmatch(a, b, **args)
    finally:
        torch.set_num_threads(old)
    assert torch.equal(f1, f2) and torch.equal(c1, c2)
    assert torch.equal(f1, f3) and torch.equal(c1, c3)
    f4, _ = patchmatch(a, b, iterations=1, radius=0, window=6, seed=12)
    f5, _ = patchmatch(a, b, iterations=1, radius=0, window=6, seed=11)
    assert not torch.equal(f4, f5), "the seed has no effect"


@over_devices
def test_float16_costs_are_true_distances(device):
    a, b, _ = _known_field(20, 24, 40, 4)  # D = 40: exercises the SIMD tail
    ah, bh = a.half(), b.half()
    flow, cost = patchmatch(ah.to(device), bh.to(device), iterations=4, radius=8, window=24, seed=0)
    flow, cost = flow.cpu(), cost.cpu()
    torch.testing.assert_close(cost.double(), _recompute_cost(ah, bh, flow), rtol=1e-4, atol=1e-4)
    _, bf_cost = patchmatch_bruteforce(ah, bh)
    assert torch.isclose(cost, bf_cost, rtol=1e-4, atol=1e-4).float().mean() >= 0.99


def test_window_and_radius_bound_the_search():
    a, b, _ = _known_field(16, 16, 4, 5, noise=1.0)
    flow, _ = patchmatch(a, b, iterations=1, radius=0, window=0, seed=0)
    # no window, no search: propagation can only copy zeros
    assert bool((flow == 0).all())


def test_subpixel_recovers_fractional_shift():
    # Descriptors linear in position: the cost is exactly quadratic in the offset, so the parabola
    # through the three costs has its vertex at the true sub-pixel shift.
    H, W, shift = 20, 24, (2.3, -1.6)
    g = torch.Generator().manual_seed(0)
    M = torch.randn(6, 2, generator=g, dtype=torch.float64)
    ys, xs = torch.meshgrid(torch.arange(H, dtype=torch.float64), torch.arange(W, dtype=torch.float64), indexing="ij")
    pos_a = torch.stack([xs, ys], -1)
    pos_b = pos_a - torch.tensor(shift, dtype=torch.float64)
    # separable features so that the two axes decouple: x-features and y-features
    Mx, My = M[:3, :1], M[3:, 1:]
    a = torch.cat([pos_a[..., :1] @ Mx.T, pos_a[..., 1:] @ My.T], -1).float()
    b = torch.cat([pos_b[..., :1] @ Mx.T, pos_b[..., 1:] @ My.T], -1).float()
    flow, _ = patchmatch(a, b, iterations=4, radius=8, window=6, seed=0, subpixel=True)
    inner = flow[3:-3, 4:-4]
    torch.testing.assert_close(inner, torch.tensor(shift).expand_as(inner), atol=1e-3, rtol=0)


@pytest.mark.parametrize("bad", [
    lambda a, b: (a, b[:, :-1]),                 # sizes differ
    lambda a, b: (a, b[..., :-1]),               # descriptor dimensions differ
    lambda a, b: (a.double(), b.double()),       # unsupported dtype
    lambda a, b: (a, b.half()),                  # dtypes differ
    lambda a, b: (a[0], b[0]),                   # not H×W×D
    lambda a, b: (a, b.index_put((torch.tensor([1]),), torch.tensor(float("nan")))),  # non-finite
    lambda a, b: (a.numpy(), b),                 # not a tensor
])
def test_bad_descriptors_raise_input_error(bad):
    a, b, _ = _known_field(8, 8, 4, 0)
    x, y = bad(a, b)
    with pytest.raises(InputError):
        patchmatch(x, y)


@pytest.mark.parametrize("kw", [dict(iterations=0), dict(radius=-1), dict(window=-2), dict(iterations=1.5),
                                dict(seed="x")])
def test_bad_parameters_raise_input_error(kw):
    a, b, _ = _known_field(8, 8, 4, 0)
    with pytest.raises(InputError):
        patchmatch(a, b, **kw)


def test_raw_op_checks_instead_of_crashing():
    a, b, _ = _known_field(8, 8, 4, 0)
    with pytest.raises(RuntimeError, match="differ in shape"):
        torch.ops.flowmatch.patchmatch(a, b[:4], 1, 1, 1, 0, False)
    with pytest.raises(RuntimeError, match="iterations"):
        torch.ops.flowmatch.patchmatch(a, b, 0, 1, 1, 0, False)


def test_fake_tensor_shapes():
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():
        a = torch.empty(5, 7, 3)
        flow, cost = torch.ops.flowmatch.patchmatch(a, a, 1, 1, 1, 0, False)
        assert flow.shape == (5, 7, 2) and cost.shape == (5, 7)


@over_devices
def test_init_guess_centres_the_random_initialisation(device):
    a, b, true_flow = _known_field(16, 20, 8, 6, noise=0.01)
    # no search, no propagation gain possible beyond the guess: window 0 returns the (clamped) guess
    flow, cost = patchmatch(a.to(device), b.to(device), iterations=1, radius=0, window=0, seed=0,
                            init=true_flow.to(device))
    flow, cost = flow.cpu(), cost.cpu()
    assert torch.equal(flow, true_flow)
    torch.testing.assert_close(cost.double(), _recompute_cost(a, b, flow), rtol=1e-5, atol=1e-5)
    with pytest.raises(InputError):
        patchmatch(a, b, init=true_flow[:-1])
    with pytest.raises(InputError):
        patchmatch(a, b, init=torch.full_like(true_flow, float("inf")))
