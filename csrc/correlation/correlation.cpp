// Schemas of the correlation ops (the input checks every kernel runs first: correlation_ops.h).
//
// flowmatch::correlation(f1, f2, pad_size, kernel_size, max_displacement, stride1, stride2)
//   -> N × D² × oH × oW, D = 2·(max_displacement // stride2) + 1, channel = dy_index·D + dx_index,
//      oH = floor((H + 2·pad − 2·md − k) / stride1) + 1 (same for oW).
// flowmatch::correlation_backward(grad_output, f1, f2, ..., output_mask) -> (grad_f1, grad_f2)
// Kernels: cpu/correlation_kernel.cpp, cuda/correlation_kernel.cu; autograd and fake kernels:
// flowmatch/ops/correlation_registration.py.  Test-only ops live in their own library
// (flowmatch_testing, cpu/correlation_testing.cpp), not in this schema.
#include <torch/library.h>

TORCH_LIBRARY_FRAGMENT(flowmatch, m) {
  m.def("correlation(Tensor f1, Tensor f2, int pad_size, int kernel_size, int max_displacement, int stride1, "
        "int stride2) -> Tensor");
  // output_mask: which of (grad_f1, grad_f2) to compute (autograd passes needs_input_grad); one not
  // asked for comes back as an empty tensor.
  m.def("correlation_backward(Tensor grad_output, Tensor f1, Tensor f2, int pad_size, int kernel_size, "
        "int max_displacement, int stride1, int stride2, bool[2] output_mask=[True, True]) -> (Tensor, Tensor)");
}
