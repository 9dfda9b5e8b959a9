"""Fake kernel of torch.ops.flowmatch.edge_aware_interpolate (shape propagation for torch.compile /
FakeTensor), like the other ops.  Imported once by flowmatch.ops._library.load() after flowmatch._C
registered the schema (csrc/interpolation/interpolation.cpp); registers unconditionally."""
from __future__ import annotations

import torch


@torch.library.register_fake("flowmatch::edge_aware_interpolate")
def _fake_edge_aware_interpolate(seeds_xy, seeds_flow, cost_map, nn, coef_kernel, affine, pref_nn, pref_th):
    torch._check(cost_map.dim() == 2, lambda: "edge_aware_interpolate: cost_map must be H×W")
    torch._check(seeds_xy.dim() == 2 and seeds_xy.shape == seeds_flow.shape,
                 lambda: "edge_aware_interpolate: seeds_xy and seeds_flow must both be M×2")
    H, W = cost_map.shape
    return (cost_map.new_empty((H, W, 2), dtype=torch.float32),
            seeds_xy.new_empty((seeds_xy.shape[0],), dtype=torch.bool))
