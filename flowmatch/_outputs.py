"""Outputs never overwrite inputs: one check every command runs before it writes anything.

`check_outputs(outputs, inputs)` resolves real paths (symlinks, `..`, hard links and bind mounts via
os.path.samefile / samestat) and raises OutputConflictError when an output file is an input file,
an output lies inside an input folder (a frame folder, a dataset root), or two outputs are the same
file.  Paths that do not exist yet are
compared through their nearest existing ancestor.

Both arguments map a label (what the user typed, e.g. "-o", "--json", "IMG1") to a path or None
(an option not given); a sequence of (label, path) pairs works too.  Mark a path as a folder with
`folder(path)`: for an input it means "the command reads files from inside it", so no output may
lie anywhere below it; for an output it only changes the wording of the error.  Example::

    check_outputs({"-o": args.out, "--viz": args.viz}, {"IMG1": args.img1, "IMG2": args.img2})
    check_outputs({"--out": folder(args.out)}, {"--root": folder(args.root)})
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterable, Mapping, Union

from .errors import OutputConflictError

__all__ = ["check_outputs", "folder", "same_file", "is_within", "Folder"]


@dataclass(frozen=True)
class Folder:
    """A path the command treats as a folder (see the module docstring)."""
    path: str


PathArg = Union[str, "os.PathLike[str]", Folder, None]
Paths = Union[Mapping[str, PathArg], Iterable[tuple[str, PathArg]]]


def folder(path: str | os.PathLike[str] | None) -> Folder | None:
    """Mark `path` as a folder for check_outputs (None stays None)."""
    return None if path is None else Folder(os.fspath(path))


def _stat(path: str) -> os.stat_result | None:
    try:
        return os.stat(path)
    except (OSError, ValueError):
        return None


def _existing_ancestors(path: str) -> list[tuple[str, os.stat_result]]:
    """(path, stat) of `path` (if it exists) and of every existing folder above it, nearest first."""
    out = []
    p = os.path.realpath(os.path.abspath(path))
    while True:
        st = _stat(p)
        if st is not None:
            out.append((p, st))
        parent = os.path.dirname(p)
        if parent == p:
            return out
        p = parent


def same_file(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """True when a and b name the same file or folder (after symlinks; hard links included).  Two
    paths that do not exist yet are the same when their resolved absolute paths are equal."""
    a, b = os.fspath(a), os.fspath(b)
    sa, sb = _stat(a), _stat(b)
    if sa is not None and sb is not None:
        return os.path.samestat(sa, sb)
    return os.path.realpath(os.path.abspath(a)) == os.path.realpath(os.path.abspath(b))


def is_within(path: str | os.PathLike[str], root: str | os.PathLike[str]) -> bool:
    """True when `path` is `root` or lies anywhere below it (resolved; `path` need not exist)."""
    rst = _stat(os.fspath(root))
    if rst is None:
        real_root = os.path.realpath(os.path.abspath(os.fspath(root)))
        real = os.path.realpath(os.path.abspath(os.fspath(path)))
        return real == real_root or real.startswith(real_root.rstrip(os.sep) + os.sep)
    return any(os.path.samestat(st, rst) for _, st in _existing_ancestors(os.fspath(path)))


def _items(paths: Paths) -> list[tuple[str, str, bool]]:
    pairs = paths.items() if isinstance(paths, Mapping) else paths
    out = []
    for label, p in pairs:
        if p is None:
            continue
        if isinstance(p, Folder):
            out.append((label, p.path, True))
        else:
            out.append((label, os.fspath(p), False))
    return out


def check_outputs(outputs: Paths, inputs: Paths = ()) -> None:
    """Raise OutputConflictError if writing `outputs` could overwrite one of `inputs` or another
    output (see the module docstring); return None when every output is safe to write."""
    outs, ins = _items(outputs), _items(inputs)
    for o_label, o_path, o_dir in outs:
        for i_label, i_path, i_dir in ins:
            if same_file(o_path, i_path):
                what = "folder" if o_dir or i_dir else "file"
                raise OutputConflictError(f"{o_label} {o_path!r} is the same {what} as the input {i_label} "
                                          f"{i_path!r}; writing it would destroy the input (choose another path)")
            if i_dir and is_within(o_path, i_path):
                raise OutputConflictError(f"{o_label} {o_path!r} lies inside the input folder {i_label} "
                                          f"{i_path!r}; outputs must not be written among the inputs")
    for k, (a_label, a_path, _) in enumerate(outs):
        for b_label, b_path, _ in outs[k + 1:]:
            if same_file(a_path, b_path):
                raise OutputConflictError(f"{a_label} and {b_label} both name {a_path!r}; give each output "
                                          "its own path")
