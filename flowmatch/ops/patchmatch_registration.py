"""Fake kernel of torch.ops.flowmatch.patchmatch (shape propagation for torch.compile / FakeTensor).

Imported once by flowmatch.ops._library.load() after flowmatch._C registered the schema
(csrc/patchmatch/patchmatch.cpp); registers unconditionally.  No autograd: the op is not
differentiable (integer matches)."""
from __future__ import annotations

import torch


@torch.library.register_fake("flowmatch::patchmatch")
def _fake_patchmatch(desc_a, desc_b, iterations, radius, window, seed, subpixel=False, init=None):
    torch._check(desc_a.dim() == 3 and desc_a.shape == desc_b.shape,
                 lambda: "patchmatch: desc_a, desc_b must be H×W×D alike")
    H, W = desc_a.shape[0], desc_a.shape[1]
    return (desc_a.new_empty((H, W, 2), dtype=torch.float32), desc_a.new_empty((H, W), dtype=torch.float32))
