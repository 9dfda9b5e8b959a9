"""Fake kernels and autograd of torch.ops.flowmatch.local_correlation / local_correlation_backward.

Imported once by flowmatch.ops._library.load() right after flowmatch._C registered the schemas
(csrc/local_correlation/local_correlation.cpp), so the registrations run unconditionally: a failure
is an error, not a silently missing feature.  ctx.needs_input_grad decides which gradients the
backward kernels compute (output_mask); second derivatives for f1 and f2 (the op is bilinear in them
for fixed coords), NotImplementedError when coords requires grad there."""
from __future__ import annotations

import torch

_LIB = "flowmatch::"


def _fake_forward(f1, f2, coords, radius):
    torch._check(f1.dim() == 4 and f2.dim() == 4 and coords.dim() == 4,
                 lambda: "local_correlation: f1, f2, coords must be 4-D")
    k = 2 * radius + 1
    return f1.new_empty((f1.shape[0], k * k, f1.shape[2], f1.shape[3]))


def _fake_backward(grad, f1, f2, coords, radius, output_mask):
    return f1.new_empty(f1.shape), f2.new_empty(f2.shape), coords.new_empty(coords.shape)


def _setup_forward(ctx, inputs, output):
    f1, f2, coords, radius = inputs
    ctx.save_for_backward(f1, f2, coords)
    ctx.radius = radius


def _backward_forward(ctx, grad):
    f1, f2, coords = ctx.saved_tensors
    mask = [bool(m) for m in ctx.needs_input_grad[:3]]
    g1, g2, gc = torch.ops.flowmatch.local_correlation_backward(grad, f1, f2, coords, ctx.radius, mask)
    return (g1 if mask[0] else None, g2 if mask[1] else None, gc if mask[2] else None, None)


def _setup_backward(ctx, inputs, output):
    grad, f1, f2, coords, radius, mask = inputs
    ctx.save_for_backward(grad, f1, f2, coords)
    ctx.radius, ctx.coords_grad = radius, bool(mask[2])


def _backward_backward(ctx, gg1, gg2, ggc):
    # For fixed coords the op is bilinear in (f1, f2): L = <gg1, B1(grad, f2)> + <gg2, B2(grad, f1)>
    # = <grad, fwd(gg1, f2) + fwd(f1, gg2)>, so the second derivatives are the two ops again.
    if ctx.coords_grad or ctx.needs_input_grad[3]:
        raise NotImplementedError("local_correlation: second derivatives are supported for f1 and f2 only, "
                                  "with coords not requiring grad (detach coords, as RAFT does)")
    grad, f1, f2, coords = ctx.saved_tensors
    r, op = ctx.radius, torch.ops.flowmatch
    d_grad = d_f1 = d_f2 = None
    if ctx.needs_input_grad[0]:
        terms = [op.local_correlation(gg1, f2, coords, r)] if gg1 is not None else []
        if gg2 is not None:
            terms.append(op.local_correlation(f1, gg2, coords, r))
        d_grad = sum(terms[1:], terms[0]) if terms else None
    if ctx.needs_input_grad[1] or ctx.needs_input_grad[2]:
        a = gg1 if gg1 is not None else torch.zeros_like(f1)
        b = gg2 if gg2 is not None else torch.zeros_like(f2)
        mask = [bool(ctx.needs_input_grad[1]), bool(ctx.needs_input_grad[2]), False]
        g1, g2, _ = op.local_correlation_backward(grad, a, b, coords, r, mask)
        d_f1 = g1 if mask[0] else None
        d_f2 = g2 if mask[1] else None
    return d_grad, d_f1, d_f2, None, None, None


torch.library.register_fake(_LIB + "local_correlation")(_fake_forward)
torch.library.register_fake(_LIB + "local_correlation_backward")(_fake_backward)
torch.library.register_autograd(_LIB + "local_correlation", _backward_forward, setup_context=_setup_forward)
torch.library.register_autograd(_LIB + "local_correlation_backward", _backward_backward,
                                setup_context=_setup_backward)
