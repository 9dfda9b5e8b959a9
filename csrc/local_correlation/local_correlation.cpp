// Schemas of the RAFT-style local correlation lookup and the input checks every kernel runs first.
//
// flowmatch::local_correlation(f1, f2, coords, radius) -> N × (2r+1)² × H × W
//   f1 N×C×H×W, f2 N×C×H2×W2, coords N×2×H×W (x then y, pixels of f2); channel ox·(2r+1) + oy holds
//   (1/√C) Σ_c f1 · bilinear(f2, x + ox − r, y + oy − r), zero outside f2 (local_correlation.h).
// flowmatch::local_correlation_backward(grad_output, f1, f2, coords, radius, output_mask)
//   -> (grad_f1, grad_f2, grad_coords); a gradient whose output_mask entry is false comes back as zeros.
#include <torch/library.h>

#include "local_correlation_ops.h"

namespace fm_lc {

LcParams check_inputs(const at::Tensor& f1, const at::Tensor& f2, const at::Tensor& coords, int64_t radius) {
  TORCH_CHECK(f1.dim() == 4 && f2.dim() == 4, "local_correlation: f1 and f2 must be 4-D N×C×H×W, got ",
              f1.sizes(), " and ", f2.sizes());
  TORCH_CHECK(f1.size(0) == f2.size(0) && f1.size(1) == f2.size(1),
              "local_correlation: f1 and f2 must have the same N and C, got ", f1.sizes(), " and ", f2.sizes());
  TORCH_CHECK(coords.dim() == 4 && coords.size(0) == f1.size(0) && coords.size(1) == 2 &&
                  coords.size(2) == f1.size(2) && coords.size(3) == f1.size(3),
              "local_correlation: coords must be N×2×H×W like f1 (", f1.sizes(), "), got ", coords.sizes());
  TORCH_CHECK(f1.scalar_type() == f2.scalar_type(), "local_correlation: f1 and f2 must have the same dtype, got ",
              f1.scalar_type(), " and ", f2.scalar_type());
  TORCH_CHECK(f1.device() == f2.device() && f1.device() == coords.device(),
              "local_correlation: f1, f2 and coords must be on one device, got ", f1.device(), ", ", f2.device(),
              " and ", coords.device());
  const auto st = f1.scalar_type();
  TORCH_CHECK(st == at::kFloat || st == at::kDouble || st == at::kHalf || st == at::kBFloat16,
              "local_correlation: dtype must be float16, bfloat16, float32 or float64, got ", st);
  TORCH_CHECK(coords.scalar_type() == at::kFloat || coords.scalar_type() == at::kDouble,
              "local_correlation: coords must be float32 or float64, got ", coords.scalar_type());
  TORCH_CHECK(radius >= 0 && radius <= LC_MAX_RADIUS, "local_correlation: radius must be in [0, ", LC_MAX_RADIUS,
              "], got ", radius);
  TORCH_CHECK(f1.size(0) >= 1 && f1.size(1) >= 1, "local_correlation: N and C must be >= 1, got ", f1.sizes());
  return lc_make_params(f1.size(0), f1.size(1), f1.size(2), f1.size(3), f2.size(2), f2.size(3), radius);
}

void check_grad(const at::Tensor& grad, const at::Tensor& f1, const LcParams& P) {
  TORCH_CHECK(grad.dim() == 4 && grad.size(0) == P.N && grad.size(1) == P.K * P.K && grad.size(2) == P.H &&
                  grad.size(3) == P.W,
              "local_correlation_backward: grad_output must have shape [", P.N, ", ", P.K * P.K, ", ", P.H, ", ",
              P.W, "], got ", grad.sizes());
  TORCH_CHECK(grad.device() == f1.device(), "local_correlation_backward: grad_output is on ", grad.device(),
              " but the inputs are on ", f1.device());
  TORCH_CHECK(grad.is_floating_point(), "local_correlation_backward: grad_output must be floating point, got ",
              grad.scalar_type());
}

}  // namespace fm_lc

TORCH_LIBRARY_FRAGMENT(flowmatch, m) {
  m.def("local_correlation(Tensor f1, Tensor f2, Tensor coords, int radius) -> Tensor");
  m.def("local_correlation_backward(Tensor grad_output, Tensor f1, Tensor f2, Tensor coords, int radius, "
        "bool[3] output_mask) -> (Tensor, Tensor, Tensor)");
}
