// Torch-side declarations shared by the CPU and CUDA kernels of the correlation op.
#pragma once
#include <ATen/core/Tensor.h>

#include "correlation.h"

namespace fm_corr {
// Validates inputs and parameters with TORCH_CHECK (a Python RuntimeError, never an abort) and
// returns the derived sizes.
CorrParams check_inputs(const at::Tensor& f1, const at::Tensor& f2, int64_t pad_size, int64_t kernel_size,
                        int64_t max_displacement, int64_t stride1, int64_t stride2);
void check_grad(const at::Tensor& grad, const at::Tensor& f1, const CorrParams& P);
}  // namespace fm_corr
