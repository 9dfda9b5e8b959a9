"""Training the descriptor network as part of the pipeline's "combined" descriptor.

The presets match with [√(1-w)·n/|n|, √w·r] (flowmatch.pipelines.patchbatch.descriptors.combine): the
network's unit-normalised descriptor n next to the normalised raw 9×9 patch r of the same pixel.  Trained
alone, the network learns what raw patches already know; with ``--raw-weight w`` the loss sees the
combined descriptor of each training patch instead, so the network is pushed to separate what raw
patches confuse.  The raw part is cut from the centre of the training patch exactly as
`raw_patch_descriptors` computes it on a whole frame (3×3 box, 9×9 window, minus mean, over norm).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..data.patch_pairs import patch_offsets
from ..errors import InputError
from ..pipelines.patchbatch.descriptors import centre_and_normalise_, combine

RAW_RADIUS = 4  # raw_patch_descriptors' default: 9×9 windows


def centre_raw_patches(patches: torch.Tensor, radius: int = RAW_RADIUS) -> torch.Tensor:
    """The raw patch descriptor of each patch's centre pixel (patch_pairs.patch_offsets' centre).

    patches: N×1×P×P normalised grayscale (flowmatch.data.patch_pairs).  Returns N×(2r+1)² float32,
    equal to raw_patch_descriptors(frame)[y, x] for the patch cut around (x, y) of that frame."""
    if patches.dim() != 4 or patches.shape[1] != 1:
        raise InputError(f"patches must be N×1×P×P, got {tuple(patches.shape)}")
    before, after = patch_offsets(patches.shape[-1])
    if min(before, after) < radius + 1:
        raise InputError(f"{patches.shape[-1]}-px patches are too small for {2 * radius + 1}×{2 * radius + 1} raw patches")
    c, k = before, 2 * radius + 1
    win = patches[:, :, c - radius - 1:c + radius + 2, c - radius - 1:c + radius + 2].float()
    p = F.avg_pool2d(win, 3, 1).reshape(patches.shape[0], k * k)  # the 3×3 box pre-smoothing
    return centre_and_normalise_(p)


def with_raw(learned: torch.Tensor, patches: torch.Tensor, raw_weight: float) -> torch.Tensor:
    """N×D network descriptors of N×1×P×P patches -> N×(D+81) combined descriptors (the pipeline's
    `combine`, differentiable when `learned` requires grad)."""
    if not 0.0 < raw_weight < 1.0:
        raise InputError(f"raw_weight must be in (0, 1), got {raw_weight!r}")
    return combine(learned.float(), centre_raw_patches(patches), raw_weight)
