"""A scoped torch CPU thread count: set for a block, restored afterwards (no global change leaks)."""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the block with torch.set_num_threads(n) (n None or 0: leave the count as it is), then
    restore the previous count, also when the block raises."""
    old = torch.get_num_threads()
    if n:
        torch.set_num_threads(int(n))
    try:
        yield
    finally:
        if n:
            torch.set_num_threads(old)
