"""FrameCache: a video's shared frame goes through the network once, with results unchanged."""
import numpy as np
import torch

from flowmatch.pipelines.patchbatch import FrameCache, patchbatch_flow
from flowmatch.pipelines.patchbatch import network


def _frames(n, shape=(72, 96)):
    rng = np.random.default_rng(0)
    base = rng.random((shape[0] + 8, shape[1] + 8, 3)) * 255
    return [np.ascontiguousarray(base[i:i + shape[0], 2 * i:2 * i + shape[1]]).astype(np.float32) for i in range(n)]


def test_consecutive_pairs_reuse_the_shared_frame_and_give_the_same_flow(monkeypatch):
    frames = _frames(4)
    calls = []
    real = network.descriptors

    def counting(img, *args, **kw):
        calls.append(1)
        return real(img, *args, **kw)

    import flowmatch.pipelines.patchbatch.descriptors as dm
    monkeypatch.setattr(dm, "descriptors", counting)
    opts = dict(preset="fast", descriptor_net_stride=4, refine=False, value_range=255.0)
    plain = [patchbatch_flow(a, b, **opts) for a, b in zip(frames[:-1], frames[1:])]
    assert len(calls) == 6
    calls.clear()
    cache = FrameCache(entries=2)
    cached = [patchbatch_flow(a, b, cache=cache, **opts) for a, b in zip(frames[:-1], frames[1:])]
    assert len(calls) == 4 and cache.hits == 2  # frames 1 and 2 were each computed once
    for p, c in zip(plain, cached):
        np.testing.assert_array_equal(p, c)


def test_cache_keys_on_pixels_and_settings_and_is_bounded():
    cache = FrameCache(entries=2, max_bytes=10_000)
    a = np.zeros((4, 4, 3), np.float32)
    b = a.copy()
    b[0, 0, 0] = 1.0
    made = []

    def make(v):
        return lambda: made.append(v) or torch.full((10, 10), float(v))

    model = object()
    assert cache.get(a, ("s", 1), model, make(1))[0, 0] == 1
    assert cache.get(a.copy(), ("s", 1), model, make(2))[0, 0] == 1       # same pixels: a hit
    assert cache.get(b, ("s", 1), model, make(3))[0, 0] == 3              # one pixel differs: a miss
    assert cache.get(a, ("s", 2), model, make(4))[0, 0] == 4              # other settings: a miss
    assert len(cache) == 2 and made == [1, 3, 4]
    assert cache.get(a, ("s", 1), model, make(5))[0, 0] == 5              # evicted (least recently used)
    big = cache.get(a, ("big",), model, lambda: torch.zeros(100, 100))    # 40 kB > max_bytes: not kept
    assert big.shape == (100, 100) and all(k[2] != ("big",) for k in cache._items)
