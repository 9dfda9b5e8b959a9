"""Pure-PyTorch transcriptions of the peers' documented correlation semantics, written from their
published code and docs (not copied), for the tests of flowmatch.ops.local_correlation and
flowmatch.ops.adapters.  Slow loops: tiny inputs only.

    raft_reference        RAFT core/corr.py CorrBlock: all-pairs volume, pooled pyramid, grid_sample
    raft_alternate        RAFT AlternateCorrBlock / alt_cuda_corr: pooled fmap2, explicit bilinear taps
    mmcv_reference        mmcv.ops.Correlation (correlation_cuda.cuh forward)
    flownet2_reference    flownet2-pytorch Correlation (correlation_cuda_kernel.cu forward)
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def raft_reference(f1, f2, coords, radius, num_levels=1):
    """RAFT's CorrBlock transcribed: the all-pairs volume / √C over (H2, W2), avg-pooled by 2 for each
    further level, sampled at coords/2^l + (dx, dy) with grid_sample(align_corners=True) on
    2x/(W−1) − 1; the offsets come from meshgrid(dy, dx) added to (x, y), so the x offset is slow."""
    n, c, h, w = f1.shape
    vol = torch.einsum("nchw,ncuv->nhwuv", f1, f2).reshape(n * h * w, 1, *f2.shape[-2:]) / math.sqrt(c)
    k = 2 * radius + 1
    d = torch.linspace(-radius, radius, k, dtype=f1.dtype)
    delta = torch.stack(torch.meshgrid(d, d, indexing="ij"), dim=-1).view(1, k, k, 2)
    centre = coords.permute(0, 2, 3, 1).reshape(n * h * w, 1, 1, 2)
    outs = []
    for lvl in range(num_levels):
        if lvl:
            vol = F.avg_pool2d(vol, 2, stride=2)
        hh, ww = vol.shape[-2:]
        pos = centre / 2 ** lvl + delta
        grid = torch.cat([2 * pos[..., :1] / (ww - 1) - 1, 2 * pos[..., 1:] / (hh - 1) - 1], dim=-1)
        outs.append(F.grid_sample(vol, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
                    .view(n, h, w, k * k))
    return torch.cat(outs, dim=-1).permute(0, 3, 1, 2)


def _bilinear_tap(f, x, y):
    """f: C×H×W, (x, y) python floats -> C values: the four neighbours, each zero outside."""
    c, h, w = f.shape
    x0, y0 = math.floor(x), math.floor(y)
    out = f.new_zeros(c)
    for xi, wx in ((x0, 1 - (x - x0)), (x0 + 1, x - x0)):
        for yi, wy in ((y0, 1 - (y - y0)), (y0 + 1, y - y0)):
            if 0 <= xi < w and 0 <= yi < h:
                out = out + wx * wy * f[:, yi, xi]
    return out


def raft_alternate(f1, f2, coords, radius, num_levels=1):
    """AlternateCorrBlock: fmap2 avg-pooled per level, alt_cuda_corr's output channel (ix)·K + iy for
    the sample at (x/2^l + ix − r, y/2^l + iy − r), stacked level-major, divided by √C at the end."""
    n, c, h, w = f1.shape
    k = 2 * radius + 1
    out = f1.new_zeros(n, num_levels, k * k, h, w)
    level = f2
    for lvl in range(num_levels):
        if lvl:
            level = F.avg_pool2d(level, 2, stride=2)
        for b in range(n):
            for y in range(h):
                for x in range(w):
                    cx, cy = float(coords[b, 0, y, x]) / 2 ** lvl, float(coords[b, 1, y, x]) / 2 ** lvl
                    for ix in range(k):
                        for iy in range(k):
                            tap = _bilinear_tap(level[b], cx + ix - radius, cy + iy - radius)
                            out[b, lvl, ix * k + iy, y, x] = (f1[b, :, y, x] * tap).sum()
    return out.reshape(n, num_levels * k * k, h, w) / math.sqrt(c)


def mmcv_reference(in1, in2, k, md, stride, pad, dil, dil_patch):
    """mmcv's forward: window from (h·stride − pad, w·stride − pad) with step `dil`, displacement
    (ph − md)·dil_patch, a product counted only when both positions are inside, no normalisation."""
    n, c, hh, ww = in1.shape
    p = 2 * md + 1
    oh = int((hh + 2 * pad - ((k - 1) * dil + 1)) / stride + 1)
    ow = int((ww + 2 * pad - ((k - 1) * dil + 1)) / stride + 1)
    out = in1.new_zeros(n, p, p, oh, ow)
    for h in range(oh):
        for w in range(ow):
            si, sj = -pad + h * stride, -pad + w * stride
            for ph in range(p):
                for pw in range(p):
                    dy, dx = (ph - md) * dil_patch, (pw - md) * dil_patch
                    acc = in1.new_zeros(n)
                    for i in range(k):
                        i1, i2 = si + i * dil, si + i * dil + dy
                        if not (0 <= i1 < hh and 0 <= i2 < hh):
                            continue
                        for j in range(k):
                            j1, j2 = sj + j * dil, sj + j * dil + dx
                            if 0 <= j1 < ww and 0 <= j2 < ww:
                                acc = acc + (in1[:, :, i1, j1] * in2[:, :, i2, j2]).sum(1)
                    out[:, ph, pw, h, w] = acc
    return out


def flownet2_reference(in1, in2, pad, k, md, s1, s2):
    """flownet2-pytorch's forward: both maps zero-padded by `pad`, window centred at
    (i·s1 + md, j·s1 + md) of the padded maps, channel (tj + R)·D + (ti + R), divided by k²·C;
    oH = ceil((Hp − 2·(md + kr)) / s1).  Reads outside the padded maps count as zero."""
    n, c, hh, ww = in1.shape
    kr, r = (k - 1) // 2, md // s2
    d = 2 * r + 1
    p1, p2 = F.pad(in1, (pad,) * 4), F.pad(in2, (pad,) * 4)
    hp, wp = hh + 2 * pad, ww + 2 * pad
    oh, ow = math.ceil((hp - 2 * (md + kr)) / s1), math.ceil((wp - 2 * (md + kr)) / s1)
    out = in1.new_zeros(n, d * d, oh, ow)

    def at(t, y, x):
        return t[:, :, y, x] if 0 <= y < hp and 0 <= x < wp else t.new_zeros(n, c)

    for i in range(oh):
        for j in range(ow):
            y1, x1 = i * s1 + md, j * s1 + md
            for tj in range(-r, r + 1):
                for ti in range(-r, r + 1):
                    acc = in1.new_zeros(n)
                    for a in range(-kr, kr + 1):
                        for b in range(-kr, kr + 1):
                            acc = acc + (at(p1, y1 + a, x1 + b) * at(p2, y1 + a + tj * s2, x1 + b + ti * s2)).sum(1)
                    out[:, (tj + r) * d + (ti + r), i, j] = acc / (k * k * c)
    return out
