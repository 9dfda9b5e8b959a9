"""Fake kernels, autograd and autocast of torch.ops.flowmatch.correlation / correlation_backward.

Imported once by flowmatch.ops._library.load() right after flowmatch._C registered the schemas
(csrc/correlation/correlation.cpp), so the registrations below run unconditionally: a failure is an
error, not a silently missing feature.  The op is bilinear, so its second derivatives are the
forward and backward ops again (double backward, and so on).  ctx.needs_input_grad decides which
gradients the backward kernels compute (output_mask).

Autocast (AutocastCPU, and AutocastCUDA when the CUDA kernels are built): inside
`torch.autocast(device, dtype=...)` the forward casts both maps to the autocast dtype (bfloat16 or
float16; float64 maps are left alone, as autocast's own ops do) and runs the half kernels, which
accumulate in float32 and round once; so FlowNetC under `torch.autocast("cpu", dtype=torch.bfloat16)`
stays bf16 end to end.  The backward needs no rule: it gets the half-precision tensors autograd saved."""
from __future__ import annotations

import torch

from .correlation_shape import correlation_output_shape

_LIB = "flowmatch::"


@torch.library.register_fake(_LIB + "correlation")
def _fake_correlation(f1, f2, pad_size, kernel_size, max_displacement, stride1, stride2):
    torch._check(f1.dim() == 4 and f1.shape == f2.shape, lambda: "correlation: f1, f2 must be N×C×H×W alike")
    n, d2, oh, ow = correlation_output_shape(f1.shape, pad_size, kernel_size, max_displacement, stride1, stride2)
    torch._check(oh >= 1 and ow >= 1, lambda: "correlation: output size must be >= 1")
    return f1.new_empty((n, d2, oh, ow))


@torch.library.register_fake(_LIB + "correlation_backward")
def _fake_correlation_backward(grad, f1, f2, pad_size, kernel_size, max_displacement, stride1, stride2,
                               output_mask=(True, True)):
    return (f1.new_empty(f1.shape if output_mask[0] else (0,)),
            f2.new_empty(f2.shape if output_mask[1] else (0,)))


def _setup_forward(ctx, inputs, output):
    f1, f2, *params = inputs
    ctx.save_for_backward(f1, f2)
    ctx.params = params


def _backward_forward(ctx, grad):
    f1, f2 = ctx.saved_tensors
    mask = [bool(ctx.needs_input_grad[0]), bool(ctx.needs_input_grad[1])]
    g1, g2 = torch.ops.flowmatch.correlation_backward(grad, f1, f2, *ctx.params, mask)
    return (g1 if mask[0] else None), (g2 if mask[1] else None), None, None, None, None, None


def _setup_backward(ctx, inputs, output):
    grad, f1, f2, *params = inputs
    ctx.save_for_backward(grad, f1, f2)
    ctx.params = params[:5]
    ctx.mask = list(params[5]) if len(params) > 5 else [True, True]


def _backward_backward(ctx, gg1, gg2):
    # L = <gg1, dA> + <gg2, dB> = <grad, corr(gg1, f2) + corr(f1, gg2)>.  A gradient output that was
    # not computed (output_mask) carries no gradient.
    grad, f1, f2 = ctx.saved_tensors
    if gg1 is None or not ctx.mask[0]:
        gg1 = torch.zeros_like(f1)
    if gg2 is None or not ctx.mask[1]:
        gg2 = torch.zeros_like(f2)
    d_grad = None
    if ctx.needs_input_grad[0]:
        d_grad = torch.ops.flowmatch.correlation(gg1, f2, *ctx.params) + \
            torch.ops.flowmatch.correlation(f1, gg2, *ctx.params)
    mask = [bool(ctx.needs_input_grad[1]), bool(ctx.needs_input_grad[2])]
    d_f1 = d_f2 = None
    if any(mask):
        d_f1, d_f2 = torch.ops.flowmatch.correlation_backward(grad, gg1, gg2, *ctx.params, mask)
    return (d_grad, d_f1 if mask[0] else None, d_f2 if mask[1] else None, None, None, None, None, None, None)


torch.library.register_autograd(_LIB + "correlation", _backward_forward, setup_context=_setup_forward)
torch.library.register_autograd(_LIB + "correlation_backward", _backward_backward, setup_context=_setup_backward)


def _register_autocast(device_type: str) -> None:
    """Autocast rule for the forward on device_type: both maps cast to the autocast dtype read at call
    time (torch.library.register_autocast fixes one dtype at registration), then the op runs with
    autocast off.  Kernel and Python (tracing) implementations, as register_autocast does."""
    key_name = "Autocast" + torch._C._dispatch_key_for_device(device_type)
    key = getattr(torch._C.DispatchKey, key_name)
    op = torch.ops.flowmatch.correlation.default

    def cast_and_run(f1, f2, *params):
        dtype = torch.get_autocast_dtype(device_type)
        if f1.dtype != torch.float64 and f2.dtype != torch.float64:  # autocast leaves float64 alone
            f1, f2 = f1.to(dtype), f2.to(dtype)
        with torch._C._ExcludeDispatchKeyGuard(torch._C.DispatchKeySet(key)):
            return op(f1, f2, *params)

    if op.has_kernel_for_dispatch_key(key):
        op.py_kernels.pop(key, None)
    op.py_impl(key)(cast_and_run)
    _AUTOCAST_LIB.impl("correlation", lambda _keys, *args: cast_and_run(*args), key_name, with_keyset=True)


_AUTOCAST_LIB = torch.library.Library("flowmatch", "IMPL")
_register_autocast("cpu")
if torch._C._dispatch_has_kernel_for_dispatch_key(_LIB + "correlation", "CUDA"):
    _register_autocast("cuda")
