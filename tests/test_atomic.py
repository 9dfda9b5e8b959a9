"""flowmatch._atomic: output permissions follow the umask, whichever writer fills the temporary."""
from __future__ import annotations

import os
import stat

import numpy as np
import pytest
import torch

import flowmatch.io as fio
from flowmatch._atomic import atomic_open, atomic_path
from flowmatch.checkpoint import load_checkpoint, save_checkpoint


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture(params=[0o022, 0o027, 0o077])
def umask(request):
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def test_checkpoint_history_and_images_get_the_umask_mode(tmp_path, umask):
    want = 0o666 & ~umask
    ckpt = tmp_path / "step_10.safetensors"
    save_checkpoint(ckpt, "flownetc", {"a": 1}, {"w": torch.arange(3.0)})  # safetensors writes 0o600 itself
    with atomic_open(tmp_path / "history.json", "w") as fh:
        fh.write("{}")
    fio.write_image(tmp_path / "x.png", np.zeros((4, 5, 3), np.uint8))
    fio.write_flow(tmp_path / "f.flo", np.zeros((4, 5, 2), np.float32))
    for p in (ckpt, tmp_path / "history.json", tmp_path / "x.png", tmp_path / "f.flo"):
        assert _mode(p) == want, (p.name, oct(_mode(p)), oct(want))
    assert load_checkpoint(ckpt).model["w"].tolist() == [0.0, 1.0, 2.0]


def test_replacing_a_private_file_and_a_writer_that_chmods(tmp_path, umask):
    target = tmp_path / "t.bin"
    target.write_bytes(b"old")
    os.chmod(target, 0o600)
    with atomic_path(target) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(b"new")
        os.chmod(tmp, 0o400)  # what a library might do to its own output
    assert target.read_bytes() == b"new" and _mode(target) == 0o666 & ~umask
    assert [p.name for p in tmp_path.iterdir()] == ["t.bin"]  # no temporary left
