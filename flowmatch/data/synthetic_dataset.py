"""SyntheticFlow: procedural flying-shapes pairs as a FlowDataset (deterministic per index)."""
from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InputError
from .base import FlowDataset, FlowSample, FramePair


# ----------------------------------------------------------------------------------------------
# procedural

class SyntheticFlow(FlowDataset):
    """`n` procedural flying-shapes pairs (flowmatch.data.synthetic.generate_pair), generated on access.

    Pair i is deterministic: its seed is derived from (seed, i), so any index can be drawn alone
    and in any order (DataLoader workers included).  Extra keyword options go to generate_pair."""

    def __init__(self, n: int, height: int = 384, width: int = 512, seed: int = 0, **options: Any) -> None:
        from .synthetic import generate_pair

        if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 0:
            raise InputError(f"SyntheticFlow: n={n!r} must be an int >= 0")
        if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
            raise InputError(f"SyntheticFlow: seed={seed!r} must be an int >= 0")
        if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 4 for v in (height, width)):
            raise InputError(f"SyntheticFlow: height={height!r}, width={width!r} must be ints >= 4")
        if options:  # reject bad options here rather than later inside a DataLoader worker
            try:
                generate_pair(8, 8, 0, **options)
            except TypeError as e:
                raise InputError(f"SyntheticFlow: unknown generator option ({e}); see generate_pair") from None
        self.height, self.width, self.seed, self.options = int(height), int(width), int(seed), dict(options)
        super().__init__([FramePair(None, None, None, name=f"synthetic_{i:06d}", meta={"index": i})
                          for i in range(int(n))])

    def _load(self, pair: FramePair) -> FlowSample:
        from .synthetic import generate_pair
        i = pair.meta["index"]
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, i]))
        p = generate_pair(self.height, self.width, rng, **self.options)
        return FlowSample(p.img1, p.img2, p.flow, p.valid, p.occlusion, pair.name, {"index": i})


