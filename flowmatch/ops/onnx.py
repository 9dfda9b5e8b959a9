"""ONNX export of models that use flowmatch's compiled ops, with the maintained (torch.export-based)
exporter.  The exported file uses standard ONNX operators only, so it runs in onnxruntime (or any ONNX
runtime) without flowmatch or its extension:

    from flowmatch.ops.onnx import export_onnx
    export_onnx(model, (img1, img2), "flownetc.onnx")

How: torch.export traces the model (our ops stay single nodes thanks to their fake kernels), then
run_decompositions replaces each flowmatch op by its pure-PyTorch formulation (ONNX_DECOMPOSITIONS:
correlation -> correlation_unfolded, local_correlation -> grid_sample taps, see
flowmatch.ops.local_correlation_torch), and torch.onnx.export translates the rest.  The file is
written atomically.  Shapes are static unless `dynamic_shapes` says otherwise.
"""
from __future__ import annotations

import os
from typing import Any, Callable

import torch
import torch.nn.functional as F

from .._atomic import atomic_path
from ..errors import InputError
from .local_correlation_torch import local_correlation_torch

__all__ = ["export_onnx", "onnx_decompositions", "correlation_unfolded", "DEFAULT_OPSET"]

DEFAULT_OPSET = 18  # GridSample (16+) and every op the decompositions use


def correlation_unfolded(f1: torch.Tensor, f2: torch.Tensor, pad_size: int, kernel_size: int,
                         max_displacement: int, stride1: int, stride2: int) -> torch.Tensor:
    """flowmatch.ops.correlation in few standard ops, for export: per vertical displacement one
    unfold (Im2Col) of f2's row band gathers all horizontal displacements, then multiply, mean over
    channels and the k×k / stride1 window pool.  A small graph (D iterations, not D²); peak memory
    C·D times one product plane."""
    p, k, md, s1, s2 = pad_size, kernel_size, max_displacement, stride1, stride2
    n, c, h, w = f1.shape
    oh = (h + 2 * p - 2 * md - k) // s1 + 1
    ow = (w + 2 * p - 2 * md - k) // s1 + 1
    r = md // s2
    d = 2 * r + 1
    work = f1.dtype if f1.dtype in (torch.float32, torch.float64) else torch.float32
    p1 = F.pad(f1.to(work), (p, p, p, p))
    p2 = F.pad(f2.to(work), (p, p, p, p))
    sh, sw = (oh - 1) * s1 + k, (ow - 1) * s1 + k  # the product rows/cols some window reads
    a = p1[:, :, md:md + sh, md:md + sw].reshape(n, c, 1, sh * sw)
    planes = []
    for q in range(d):
        dy = (q - r) * s2
        band = p2[:, :, md + dy:md + dy + sh, md - r * s2:md + r * s2 + sw]
        taps = F.unfold(band, kernel_size=(1, d), dilation=(1, s2)).view(n, c, d, sh * sw)
        prod = (taps * a).mean(dim=1).view(n * d, 1, sh, sw)  # every horizontal displacement of row q
        if k > 1 or s1 > 1:
            prod = F.avg_pool2d(prod, kernel_size=k, stride=s1)
        planes.append(prod.view(n, d, oh, ow))
    return torch.cat(planes, dim=1).to(f1.dtype)


def onnx_decompositions() -> dict[Any, Callable]:
    """{flowmatch op overload: pure-PyTorch function} for the ops registered in this process."""
    table: dict[Any, Callable] = {}
    ns = torch.ops.flowmatch
    if hasattr(ns, "correlation"):
        table[ns.correlation.default] = correlation_unfolded
    if hasattr(ns, "local_correlation"):
        table[ns.local_correlation.default] = local_correlation_torch
    return table


def decompose(program: torch.export.ExportedProgram) -> torch.export.ExportedProgram:
    """The exported program with every flowmatch op replaced by standard ATen ops."""
    table = torch.export.default_decompositions()
    table.update(onnx_decompositions())
    return program.run_decompositions(table)


def export_onnx(model: torch.nn.Module, args: tuple, path: str | os.PathLike, *,
                opset_version: int = DEFAULT_OPSET, dynamic_shapes: Any = None,
                input_names: list[str] | None = None, output_names: list[str] | None = None) -> str:
    """Export `model(*args)` to an ONNX file at `path` (weights embedded) and return the path.

    Args:
        model: an nn.Module (put it in eval() mode first for inference graphs).
        args: example inputs (a tuple of tensors), e.g. (img1, img2) as N×3×H×W float32.
        path: output file; written atomically (an existing file stays untouched if export fails).
        opset_version: ONNX opset, >= 16 (GridSample).
        dynamic_shapes: passed to torch.export.export.

    Raises:
        InputError: args not a tuple, or an opset below 16.
    """
    if not isinstance(args, tuple):
        raise InputError(f"export_onnx: args must be a tuple of example inputs, got {type(args).__name__}")
    if isinstance(opset_version, bool) or not isinstance(opset_version, int) or opset_version < 16:
        raise InputError(f"export_onnx: opset_version must be an int >= 16 (GridSample), got {opset_version!r}")
    program = decompose(torch.export.export(model, args, dynamic_shapes=dynamic_shapes))
    onnx_program = torch.onnx.export(program, args, dynamo=True, opset_version=opset_version,
                                     input_names=input_names, output_names=output_names)
    path = os.fspath(path)
    with atomic_path(path) as tmp:
        onnx_program.save(tmp, external_data=False)
    return path
