"""flowmatch.distributed in a single process (the torchrun path runs in tests/evaluation/test_evaluate.py)."""
import pytest

from flowmatch.distributed import DistInfo, distributed, gather_objects, init_distributed, shard, shared_failure
from flowmatch.errors import InputError


def test_single_process_needs_no_process_group(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    with distributed() as info:
        assert info == DistInfo() and info.is_main and not info.distributed
        assert gather_objects({"a": 1}, info) == [{"a": 1}]
        assert list(shard(range(5), info)) == [0, 1, 2, 3, 4]


def test_shard_splits_round_robin():
    parts = [list(shard(range(7), DistInfo(rank=r, world_size=3))) for r in range(3)]
    assert parts == [[0, 3, 6], [1, 4], [2, 5]]


def test_shared_failure_reraises_the_ranks_own_error():
    with pytest.raises(KeyError), shared_failure(DistInfo()):
        raise KeyError("frame 3")


def test_bad_device_is_an_input_error():
    with pytest.raises(InputError):
        init_distributed(device="tpu")
