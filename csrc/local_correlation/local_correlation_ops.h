// Torch-side declarations shared by the CPU and CUDA kernels of the local correlation op.
#pragma once
#include <ATen/core/Tensor.h>

#include "local_correlation.h"

namespace fm_lc {
// Validates shapes, dtypes, devices and the radius with TORCH_CHECK (a Python RuntimeError, never an
// abort) and returns the sizes.
LcParams check_inputs(const at::Tensor& f1, const at::Tensor& f2, const at::Tensor& coords, int64_t radius);
void check_grad(const at::Tensor& grad, const at::Tensor& f1, const LcParams& P);
}  // namespace fm_lc
