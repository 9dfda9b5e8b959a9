"""An independent numpy model of the CUDA PatchMatch schedule (csrc/patchmatch/patchmatch_kernels.cuh):
counter-based random numbers, random initialisation, jump-flood propagation steps 8, 4, 2, 1 from
the previous buffer, random search on the last step, (v, u) tie-breaking, parabola sub-pixel.

Costs are computed in float64 and stored as float32: with integer-valued descriptors every cost is
an exact integer whatever the summation order, so the model and the kernels agree bit for bit.
"""
from __future__ import annotations

import numpy as np

_M = np.uint64(0xFFFFFFFFFFFFFFFF)


def _mix64(z: np.ndarray) -> np.ndarray:
    z = z + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def rand_word(seed: int, pixel: np.ndarray, it: int, k: int) -> np.ndarray:
    h = _mix64(np.full(pixel.shape, np.uint64(seed)))
    h = _mix64(h ^ pixel.astype(np.uint64))
    tag = (np.uint64((it + 1) & 0xFFFFFFFF) << np.uint64(32)) | np.uint64(k & 0xFFFFFFFF)
    return _mix64(h ^ tag)


def rand_int(word: np.ndarray, lo: int, hi: int) -> np.ndarray:
    return lo + ((word >> np.uint64(11)) % np.uint64(hi - lo + 1)).astype(np.int64)


class GpuPatchMatchModel:
    def __init__(self, a, b, seed: int):
        self.a = np.asarray(a, np.float64)
        self.b = np.asarray(b, np.float64)
        self.H, self.W, _ = self.a.shape
        ys, xs = np.mgrid[0:self.H, 0:self.W]
        self.x, self.y = xs.ravel(), ys.ravel()
        self.pixel = (self.y * self.W + self.x).astype(np.int64)
        self.seed = seed

    def clamp(self, u, v):
        return np.clip(self.x + u, 0, self.W - 1) - self.x, np.clip(self.y + v, 0, self.H - 1) - self.y

    def cost(self, u, v) -> np.ndarray:
        d = self.a.reshape(-1, self.a.shape[2]) - self.b[self.y + v, self.x + u]
        return (d * d).sum(-1).astype(np.float32)

    def try_candidate(self, best, u, v, active=None):
        bu, bv, bc = best
        u, v = self.clamp(u, v)
        c = self.cost(u, v)
        take = (c < bc) | ((c == bc) & ((v < bv) | ((v == bv) & (u < bu))))
        take &= ~((u == bu) & (v == bv))
        if active is not None:
            take &= active
        return np.where(take, u, bu), np.where(take, v, bv), np.where(take, c, bc)

    def run(self, iterations: int, radius: int, window: int, subpixel: bool = False, guess=None):
        H, W = self.H, self.W
        cu = guess[..., 0].ravel().astype(np.int64) if guess is not None else 0
        cv = guess[..., 1].ravel().astype(np.int64) if guess is not None else 0
        u = cu + rand_int(rand_word(self.seed, self.pixel, -1, 0), -window, window)
        v = cv + rand_int(rand_word(self.seed, self.pixel, -1, 1), -window, window)
        u, v = self.clamp(u, v)
        best = (u, v, self.cost(u, v))
        first = 1
        while first * 2 <= 8 and first * 2 < max(H, W):
            first *= 2
        for it in range(iterations):
            step = first
            while step >= 1:
                s = -step if it % 2 == 0 else step
                prev = best
                pu, pv = prev[0].reshape(H, W), prev[1].reshape(H, W)
                okx = (self.x + s >= 0) & (self.x + s < W)
                oky = (self.y + s >= 0) & (self.y + s < H)
                nx, ny = np.clip(self.x + s, 0, W - 1), np.clip(self.y + s, 0, H - 1)
                best = self.try_candidate(best, pu[self.y, nx], pv[self.y, nx], okx)
                best = self.try_candidate(best, pu[ny, self.x], pv[ny, self.x], oky)
                if step == 1:
                    r, k = radius, 0
                    while r >= 1:
                        du = rand_int(rand_word(self.seed, self.pixel, it, k), -r, r)
                        dv = rand_int(rand_word(self.seed, self.pixel, it, k + 1), -r, r)
                        best = self.try_candidate(best, best[0] + du, best[1] + dv)
                        r //= 2
                        k += 2
                step //= 2
        u, v, c = best
        fu, fv = u.astype(np.float32), v.astype(np.float32)
        if subpixel:
            tx, ty = self.x + u, self.y + v
            fu = fu + self._parabola(c, u, v, tx, W, axis=0)
            fv = fv + self._parabola(c, u, v, ty, H, axis=1)
        flow = np.stack([fu, fv], -1).reshape(H, W, 2).astype(np.float32)
        return flow, c.reshape(H, W)

    def _parabola(self, c0, u, v, t, n, axis):
        ok = (t > 0) & (t < n - 1)
        du, dv = (1, 0) if axis == 0 else (0, 1)
        um, vm = np.where(ok, u - du, u), np.where(ok, v - dv, v)
        up, vp = np.where(ok, u + du, u), np.where(ok, v + dv, v)
        cm, cp = self.cost(um, vm), self.cost(up, vp)
        denom = (cm - np.float32(2) * c0 + cp).astype(np.float32)
        with np.errstate(divide="ignore", invalid="ignore"):
            off = (np.float32(0.5) * (cm - cp)).astype(np.float32) / denom
        off = np.clip(off, np.float32(-0.5), np.float32(0.5)).astype(np.float32)
        return np.where(ok & (denom > 0), off, np.float32(0)).astype(np.float32)
