// The CPU correlation kernels as functions, for the op (correlation_kernel.cpp) and the test-only
// ops (correlation_testing.cpp).  P comes from check_inputs; elementwise forces the per-element
// path of correlation.h (what the CUDA backward kernel runs); mask selects the gradients computed
// (an unrequested one is returned empty).
#pragma once
#include <ATen/core/Tensor.h>

#include <array>
#include <tuple>

#include "correlation/correlation.h"

namespace flowmatch {
namespace corr {
void check_cpu(const at::Tensor& t, const char* name);
at::Tensor forward_impl(const at::Tensor& f1, const at::Tensor& f2, const CorrParams& P, bool elementwise);
std::tuple<at::Tensor, at::Tensor> backward_impl(const at::Tensor& grad, const at::Tensor& f1, const at::Tensor& f2,
                                                 const CorrParams& P, bool elementwise, std::array<bool, 2> mask);
// Test-only: the name of the forward kernel forward_impl runs for dtype st and P ("elementwise",
// "float32_avx2", "bfloat16_avx512bf16", ...), and the bfloat16 channel-pair schedule of the AVX-512
// BF16 kernel with its dot product emulated on AVX2 (correlation_simd_pairs_avx2.cpp).
const char* forward_kernel_name(at::ScalarType st, const CorrParams& P);
at::Tensor forward_bf16_pairs_emulated(const at::Tensor& f1, const at::Tensor& f2, const CorrParams& P);
}  // namespace corr
}  // namespace flowmatch
