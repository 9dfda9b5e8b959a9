"""Each loss against a direct NumPy transcription of its formula, values and gradients (float64)."""
import numpy as np
import pytest
import torch

from flowmatch import losses
from flowmatch.errors import InputError

EPS = losses.EPS


def np_dist(a, b):
    return np.sqrt(((a - b) ** 2).sum(1) + EPS)


def np_drlim(a, b, y, m):
    d = np_dist(a, b)
    return np.mean((1 - y) * 0.5 * d ** 2 + y * 0.5 * np.maximum(0, m - d) ** 2)


def np_cent(a, b, y, m):
    d = np_dist(a, b)
    return np.mean((1 - y) * d ** 2 + y * np.maximum(0, m ** 2 - d ** 2))


def np_cent_sd(a, b, y, m, lam):
    d = np_dist(a, b)
    s0 = np.std(d[y == 0]) if (y == 0).sum() >= 2 else 0.0
    s1 = np.std(d[y == 1]) if (y == 1).sum() >= 2 else 0.0
    return lam * np.mean((1 - y) * d ** 2 + y * np.maximum(0, m ** 2 - d ** 2)) + (1 - lam) * (s0 + s1)


def np_contrastive(a, b, y, mp, mn):
    d = np_dist(a, b)
    return np.mean((1 - y) * np.maximum(0, d - mp) + y * np.maximum(0, mn - d))


def np_triplet(a, p, n, m):
    return np.mean(np.maximum(0, np_dist(a, p) - np_dist(a, n) + m))


def np_triplet_hard(a, p, n, m):
    out = []
    for i in range(len(a)):
        cands = [np.sqrt(((a[i] - p[j]) ** 2).sum() + EPS) for j in range(len(a)) if j != i]
        if n is not None:
            cands += [np.sqrt(((a[i] - n[j]) ** 2).sum() + EPS) for j in range(len(n))]
        dp = np.sqrt(((a[i] - p[i]) ** 2).sum() + EPS)
        out.append(max(0.0, dp - min(cands) + m))
    return np.mean(out)


def numeric_grad(f, arrays, h=1e-6):
    """Central differences of the scalar f(*arrays) with respect to every array."""
    grads = []
    for k, arr in enumerate(arrays):
        g = np.zeros_like(arr)
        for idx in np.ndindex(arr.shape):
            plus = [x.copy() for x in arrays]
            minus = [x.copy() for x in arrays]
            plus[k][idx] += h
            minus[k][idx] -= h
            g[idx] = (f(*plus) - f(*minus)) / (2 * h)
        grads.append(g)
    return grads


def data(seed, n=10, d=5, scale=1.0):
    rng = np.random.default_rng(seed)
    a, b, c = (rng.normal(size=(n, d)) * scale for _ in range(3))
    y = rng.integers(0, 2, n).astype(np.float64)
    y[:2] = [0, 1]  # both groups present
    return a, b, c, y


def check(torch_fn, np_fn, arrays):
    ts = [torch.tensor(x, requires_grad=True) for x in arrays]
    val = torch_fn(*ts)
    val.backward()
    assert val.item() == pytest.approx(np_fn(*arrays), rel=1e-9, abs=1e-10)
    for t, g in zip(ts, numeric_grad(np_fn, arrays)):
        np.testing.assert_allclose(t.grad.numpy(), g, rtol=1e-5, atol=1e-6)


# Margins are chosen so that some pairs are inside and some outside the hinge (the scale of the
# random distances is about sqrt(2 * 5) ~ 3).
@pytest.mark.parametrize("seed", [0, 1])
def test_drlim(seed):
    a, b, _, y = data(seed)
    check(lambda a, b: losses.drlim(a, b, torch.tensor(y), margin=3.0), lambda a, b: np_drlim(a, b, y, 3.0), [a, b])


@pytest.mark.parametrize("seed", [0, 1])
def test_cent_drlim(seed):
    a, b, _, y = data(seed)
    check(lambda a, b: losses.cent_drlim(a, b, torch.tensor(y), margin=3.0), lambda a, b: np_cent(a, b, y, 3.0), [a, b])


@pytest.mark.parametrize("seed,lam", [(0, 0.8), (1, 0.3)])
def test_cent_drlim_sd(seed, lam):
    a, b, _, y = data(seed)
    check(lambda a, b: losses.cent_drlim_sd(a, b, torch.tensor(y), margin=3.0, lam=lam),
          lambda a, b: np_cent_sd(a, b, y, 3.0, lam), [a, b])


def test_cent_drlim_sd_single_member_group_has_no_sd():
    a, b, _, _ = data(3, n=4)
    y = np.array([0.0, 1.0, 1.0, 1.0])
    check(lambda a, b: losses.cent_drlim_sd(a, b, torch.tensor(y), margin=3.0, lam=0.5),
          lambda a, b: np_cent_sd(a, b, y, 3.0, 0.5), [a, b])


@pytest.mark.parametrize("seed", [0, 1])
def test_contrastive(seed):
    a, b, _, y = data(seed)
    check(lambda a, b: losses.contrastive(a, b, torch.tensor(y), pos_margin=2.5, neg_margin=3.5),
          lambda a, b: np_contrastive(a, b, y, 2.5, 3.5), [a, b])


@pytest.mark.parametrize("seed", [0, 1])
def test_triplet(seed):
    a, p, n, _ = data(seed)
    check(lambda a, p, n: losses.triplet(a, p, n, margin=1.0), lambda a, p, n: np_triplet(a, p, n, 1.0), [a, p, n])


@pytest.mark.parametrize("seed,with_neg", [(0, True), (1, False)])
def test_triplet_batch_hard(seed, with_neg):
    a, p, n, _ = data(seed, n=6)
    if with_neg:
        check(lambda a, p, n: losses.triplet_batch_hard(a, p, n, margin=2.0),
              lambda a, p, n: np_triplet_hard(a, p, n, 2.0), [a, p, n])
    else:
        check(lambda a, p: losses.triplet_batch_hard(a, p, None, margin=2.0),
              lambda a, p: np_triplet_hard(a, p, None, 2.0), [a, p])


def test_triplet_batch_loss_pairs_match_direct_call():
    a, p, n, _ = data(5)
    ta, tp, tn = map(torch.tensor, (a, p, n))
    got = losses.triplet_batch_loss("cent-drlim-sd", ta, tp, tn, margin=3.0, lam=0.7)
    y = np.r_[np.zeros(len(a)), np.ones(len(a))]
    assert got.item() == pytest.approx(np_cent_sd(np.r_[a, a], np.r_[p, n], y, 3.0, 0.7), rel=1e-9)


def test_bad_inputs():
    a = torch.zeros(4, 3)
    with pytest.raises(InputError, match="same shape"):
        losses.drlim(a, torch.zeros(4, 2), torch.zeros(4))
    with pytest.raises(InputError, match="0 .matching pair. or 1"):
        losses.cent_drlim(a, a, torch.tensor([0, 1, 2, 0]))
    with pytest.raises(InputError, match="shape"):
        losses.cent_drlim_sd(a, a, torch.zeros(3))
    with pytest.raises(InputError, match="lam"):
        losses.cent_drlim_sd(a, a, torch.zeros(4), lam=1.5)
    with pytest.raises(InputError, match="at least 2"):
        losses.triplet_batch_hard(a[:1], a[:1])
    with pytest.raises(InputError, match="unknown loss"):
        losses.triplet_batch_loss("hinge", a, a, a)
