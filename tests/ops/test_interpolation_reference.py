"""The edge-aware interpolation op against an independent pure-Python implementation of its definition.

The reference follows the op's documented algorithm literally: a binary-heap Dijkstra over the pixel grid
keyed by (distance, pixel index) in float32 arithmetic, the seed graph of the cells, per-seed Dijkstras on
it, the median prefilter, and weighted least squares per seed.  The op computes the same cells by tiled
label-correcting passes and incremental updates, so these tests pin that its shortcuts change nothing:
the kept mask must be identical and the flow equal to 1e-4 px.  Images span several 64×64 tiles.
"""
import heapq
import math

import numpy as np
import pytest

from flowmatch import _ext
from flowmatch.ops.interpolation import edge_aware_interpolate

pytestmark = pytest.mark.skipif(not _ext.available(), reason="flowmatch._C not built")

F = np.float32
HALF = F(0.5)


def _voronoi(seeds, cost):
    H, W = cost.shape
    c = cost.ravel()
    dist = np.full(H * W, np.inf, np.float32)
    label = np.full(H * W, -1, np.int64)
    heap = []
    for i, (x, y) in enumerate(seeds):
        p = y * W + x
        if label[p] < 0:  # the first seed on a pixel wins it
            dist[p], label[p] = 0, i
            heapq.heappush(heap, (F(0), p))
    while heap:
        d, p = heapq.heappop(heap)
        if d > dist[p]:
            continue
        y, x = divmod(p, W)
        for q, ok in ((p - 1, x > 0), (p + 1, x < W - 1), (p - W, y > 0), (p + W, y < H - 1)):
            if ok:
                nd = F(d + HALF * F(c[p] + c[q]))
                if nd < dist[q]:
                    dist[q], label[q] = nd, label[p]
                    heapq.heappush(heap, (nd, q))
    return label, dist


def _graph(label, dist, cost, M):
    H, W = cost.shape
    c = cost.ravel()
    best = {}
    for p in range(H * W):
        y, x = divmod(p, W)
        for q, ok in ((p + 1, x < W - 1), (p + W, y < H - 1)):
            if not ok:
                continue
            a, b = label[p], label[q]
            if a != b and a >= 0 and b >= 0:
                length = F(F(dist[p] + dist[q]) + HALF * F(c[p] + c[q]))
                key = (min(a, b), max(a, b))
                best[key] = min(best.get(key, np.inf), length)
    adj = [[] for _ in range(M)]
    for (a, b), length in best.items():
        adj[a].append((b, length))
        adj[b].append((a, length))
    return adj


def _knn(adj, src, K):
    dist = {src: F(0)}
    heap, out = [(F(0), src)], []
    while heap and len(out) < K:
        d, i = heapq.heappop(heap)
        if d > dist[i]:
            continue
        out.append((i, d))
        for j, w in adj[i]:
            nd = F(d + w)
            if nd < dist.get(j, np.inf):
                dist[j] = nd
                heapq.heappush(heap, (nd, j))
    return out


def _fit(xy, uv, src, nb, coef, affine):
    w = np.array([math.exp(-float(F(coef)) * float(d)) + 1e-12 for _, d in nb])
    j = np.array([i for i, _ in nb])
    f = np.stack([np.ones(len(j)), xy[j, 0] - xy[src, 0], xy[j, 1] - xy[src, 1]], 1).astype(np.float64)
    u, v = uv[j, 0].astype(np.float64), uv[j, 1].astype(np.float64)
    nw = np.array([[np.sum(w * u) / np.sum(w), 0, 0], [np.sum(w * v) / np.sum(w), 0, 0]])
    if not affine or len(nb) < 3:
        return nw
    m = (f * w[:, None]).T @ f
    det = np.linalg.det(m)
    if not abs(det) > 1e-6 * abs(m[0, 0] * m[1, 1] * m[2, 2]):
        return nw
    return np.stack([np.linalg.solve(m, (f * w[:, None]).T @ u), np.linalg.solve(m, (f * w[:, None]).T @ v)])


def reference(points, flows, cost, nn, coef, affine, pref_nn, pref_th):
    xy = np.rint(points).astype(np.int64)
    uv = np.asarray(flows, np.float32)
    M = len(xy)
    keep = np.ones(M, bool)
    if pref_nn > 0:
        label, dist = _voronoi(xy, cost)
        adj = _graph(label, dist, cost, M)
        for i in range(M):
            nb = [j for j, _ in _knn(adj, i, min(pref_nn, M) + 1) if j != i]
            if len(nb) + 1 < 3:
                continue
            h = len(nb) // 2
            du = uv[i, 0] - np.sort(uv[nb, 0])[h]
            dv = uv[i, 1] - np.sort(uv[nb, 1])[h]
            keep[i] = not (F(du * du + dv * dv) > F(pref_th) * F(pref_th))
        if not keep.any():
            keep[:] = True
    xy, uv = xy[keep], uv[keep]
    label, dist = _voronoi(xy, cost)
    adj = _graph(label, dist, cost, len(xy))
    models = [_fit(xy, uv, i, _knn(adj, i, min(nn, len(xy))), coef, affine) for i in range(len(xy))]
    H, W = cost.shape
    out = np.zeros((H * W, 2), np.float64)
    for p in range(H * W):
        m = label[p]
        if m >= 0:
            y, x = divmod(p, W)
            out[p] = models[m] @ np.array([1.0, x - xy[m, 0], y - xy[m, 1]])
    return out.reshape(H, W, 2), keep


def _case(seed, H, W, n, outliers):
    rng = np.random.default_rng(seed)
    cost = F(0.001) + rng.uniform(0, 1, (H, W)).astype(np.float32) ** 4  # mostly flat, some edges
    cost[:, W // 2] += F(2.0)  # a wall across the tile border
    pts = rng.integers(0, [W, H], (n, 2)).astype(np.float32)
    pts[1] = pts[0]  # a duplicate seed: the first one takes the pixel
    flows = (np.sin(pts[:, :1] / 17.0) * 4 + rng.normal(0, 0.3, (n, 2))).astype(np.float32)
    flows[rng.choice(n, outliers, replace=False)] += F(25.0)
    return pts, flows, cost


@pytest.mark.parametrize("seed,affine", [(0, True), (1, False)])
def test_matches_reference_across_tiles_with_prefilter(seed, affine):
    pts, flows, cost = _case(seed, 70, 140, 160, outliers=12)
    out, kept = edge_aware_interpolate(pts, flows, cost, nn=12, coef_kernel=0.8, affine=affine, pref_nn=8,
                                       pref_th=5.0, return_kept=True)
    ref, ref_kept = reference(pts, flows, cost, 12, 0.8, affine, 8, 5.0)
    assert 0 < (~ref_kept).sum() < len(pts)  # the prefilter drops some, so the incremental update runs
    np.testing.assert_array_equal(kept, ref_kept)
    np.testing.assert_allclose(out, ref, atol=1e-4, rtol=0)


def test_matches_reference_with_zero_cost_steps():
    # zero costs give equal distances along whole paths: the op must fall back to the exact serial order
    pts, flows, cost = _case(2, 40, 90, 60, outliers=4)
    cost[:, :30] = 0.0
    out, kept = edge_aware_interpolate(pts, flows, cost, nn=10, pref_nn=6, pref_th=5.0, return_kept=True)
    ref, ref_kept = reference(pts, flows, cost, 10, 0.8, True, 6, 5.0)
    np.testing.assert_array_equal(kept, ref_kept)
    np.testing.assert_allclose(out, ref, atol=1e-4, rtol=0)
