"""flowmatch.distributed in one process and in hand-started process groups (torchrun itself runs in
tests/evaluation/test_evaluate.py and tests/commands/test_flow_pairs_distributed.py)."""
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


def test_rank_device_gives_each_rank_its_local_gpu_only_for_a_bare_cuda():
    from flowmatch.distributed import rank_device
    from flowmatch.errors import MethodUnavailableError

    second = DistInfo(rank=1, world_size=2, local_rank=1)
    assert rank_device("cuda", DistInfo()) == "cuda"  # a single process keeps --device as given
    assert rank_device("cpu", second) == "cpu" and rank_device("cuda:0", second) == "cuda:0"
    import torch
    if torch.cuda.device_count() < 2:  # rank 1's GPU (cuda:1) is not there: a named error, exit 4
        with pytest.raises(MethodUnavailableError, match="cuda:1"):
            rank_device("cuda", second)


def test_shared_check_sends_an_unpicklable_error_by_name():
    from flowmatch.distributed import _portable
    from flowmatch.errors import FlowmatchError, OutputConflictError

    class TwoArgs(Exception):
        def __init__(self, a, b):
            super().__init__(f"{a} and {b}")

    err = OutputConflictError("out is in")
    assert _portable(err) is err
    sent = _portable(TwoArgs(1, 2))
    assert type(sent) is FlowmatchError and str(sent) == "TwoArgs: 1 and 2"


_ONE_RANK_REFUSES = """
import sys
from flowmatch.cli import exit_code
from flowmatch.distributed import distributed, shared_check
from flowmatch.errors import OutputConflictError
with distributed() as dist:
    try:
        with shared_check(dist):
            if dist.rank == 1:
                raise OutputConflictError("rank 1 sees its output in the input folder")
    except Exception as exc:
        print(type(exc).__name__, exc)
        sys.exit(exit_code(exc))
print("no error")
"""


def test_shared_check_fails_every_rank_with_the_error_of_one():
    import ranks  # tests/ranks.py

    results = ranks.ranks(["-c", _ONE_RANK_REFUSES])
    for r in results:
        assert r.returncode == 3, r.stderr[-2000:]
        assert r.stdout.strip() == "OutputConflictError rank 1 sees its output in the input folder"
