// Input checks shared by the CPU and CUDA kernels of the correlation op (and the emulated kernels
// of the tests): TORCH_CHECK raises a Python exception, nothing aborts.  Only ATen/c10 headers,
// since .cu files include this too.
#pragma once
#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

#include "correlation/correlation.h"

namespace flowmatch {
namespace corr {

// Every layer parameter stays below 2^31 (real ones are < 10^4), so the derived sizes below fit in
// 64 bits before they are multiplied; the products are overflow-checked, since a wrapped size would
// make a kernel allocate a small buffer and write past it.
constexpr int64_t kMaxParam = (int64_t(1) << 31) - 1;

inline int64_t checked_mul(int64_t a, int64_t b, const char* what) {
  int64_t out = 0;
  TORCH_CHECK(!__builtin_mul_overflow(a, b, &out), "correlation: ", what, " overflows 64 bits (", a, " x ", b,
              "); pad_size, max_displacement, kernel_size or the strides are far too large");
  return out;
}

inline CorrParams check_inputs(const at::Tensor& f1, const at::Tensor& f2, int64_t pad_size, int64_t kernel_size,
                        int64_t max_displacement, int64_t stride1, int64_t stride2) {
  TORCH_CHECK(f1.dim() == 4 && f2.dim() == 4, "correlation: f1 and f2 must be 4-D N×C×H×W, got ", f1.sizes(),
              " and ", f2.sizes());
  TORCH_CHECK(f1.sizes() == f2.sizes(), "correlation: f1 and f2 must have the same shape, got ", f1.sizes(),
              " and ", f2.sizes());
  TORCH_CHECK(f1.scalar_type() == f2.scalar_type(), "correlation: f1 and f2 must have the same dtype, got ",
              f1.scalar_type(), " and ", f2.scalar_type());
  TORCH_CHECK(f1.device() == f2.device(), "correlation: f1 and f2 must be on the same device, got ", f1.device(),
              " and ", f2.device());
  const auto st = f1.scalar_type();
  TORCH_CHECK(st == at::kFloat || st == at::kDouble || st == at::kHalf || st == at::kBFloat16,
              "correlation: dtype must be float16, bfloat16, float32 or float64, got ", st);
  TORCH_CHECK(pad_size >= 0 && max_displacement >= 0, "correlation: pad_size (", pad_size,
              ") and max_displacement (", max_displacement, ") must be >= 0");
  TORCH_CHECK(kernel_size >= 1 && kernel_size % 2 == 1, "correlation: kernel_size must be a positive odd number, got ",
              kernel_size);
  TORCH_CHECK(stride1 >= 1 && stride2 >= 1, "correlation: stride1 (", stride1, ") and stride2 (", stride2,
              ") must be >= 1");
  TORCH_CHECK(f1.size(0) >= 1 && f1.size(1) >= 1, "correlation: N and C must be >= 1, got ", f1.sizes());
  TORCH_CHECK(pad_size <= kMaxParam && kernel_size <= kMaxParam && max_displacement <= kMaxParam &&
                  stride1 <= kMaxParam && stride2 <= kMaxParam,
              "correlation: pad_size, kernel_size, max_displacement, stride1 and stride2 must be < 2^31, got ",
              pad_size, ", ", kernel_size, ", ", max_displacement, ", ", stride1, ", ", stride2);
  const CorrParams P = corr_make_params(f1.size(0), f1.size(1), f1.size(2), f1.size(3), pad_size, kernel_size,
                                        max_displacement, stride1, stride2);
  TORCH_CHECK(P.oH >= 1 && P.oW >= 1, "correlation: output size would be ", P.oH, "x", P.oW, " for input ", P.H,
              "x", P.W, "; need H + 2*pad_size >= 2*max_displacement + kernel_size");
  // output N × D² × oH × oW, and the CPU kernels' scratch tiles (3 tiles of k rows × C × padded width)
  const int64_t channels = checked_mul(P.D, P.D, "the channel count D^2");
  checked_mul(checked_mul(checked_mul(P.N, channels, "the output size"), P.oH, "the output size"), P.oW,
              "the output size");
  const int64_t span = P.W + 2 * P.pad + 2 * P.md + P.k + 64;
  checked_mul(checked_mul(checked_mul(3 * P.k, P.C, "the scratch size"), span, "the scratch size"), 8,
              "the scratch size");
  return P;
}

inline void check_grad(const at::Tensor& grad, const at::Tensor& f1, const CorrParams& P) {
  TORCH_CHECK(grad.dim() == 4 && grad.size(0) == P.N && grad.size(1) == P.D * P.D && grad.size(2) == P.oH &&
                  grad.size(3) == P.oW,
              "correlation_backward: grad_output must have shape [", P.N, ", ", P.D * P.D, ", ", P.oH, ", ", P.oW,
              "], got ", grad.sizes());
  TORCH_CHECK(grad.device() == f1.device(), "correlation_backward: grad_output is on ", grad.device(),
              " but the inputs are on ", f1.device());
}

}  // namespace corr
}  // namespace flowmatch
