// Test-only ops of the correlation (torch.ops.flowmatch_testing.*): the per-element CPU path of
// correlation.h, whatever the dtype and stride, so the tests can compare it with the reference.
#include <torch/library.h>

#include "correlation/correlation_ops.h"
#include "correlation/cpu/correlation_cpu.h"

namespace flowmatch {
namespace corr {
namespace {

at::Tensor forward_elementwise(const at::Tensor& f1, const at::Tensor& f2, int64_t pad, int64_t k, int64_t md,
                               int64_t s1, int64_t s2) {
  const CorrParams P = check_inputs(f1, f2, pad, k, md, s1, s2);
  check_cpu(f1, "f1");
  check_cpu(f2, "f2");
  return forward_impl(f1, f2, P, true);
}

std::tuple<at::Tensor, at::Tensor> backward_elementwise(const at::Tensor& grad, const at::Tensor& f1,
                                                        const at::Tensor& f2, int64_t pad, int64_t k, int64_t md,
                                                        int64_t s1, int64_t s2) {
  const CorrParams P = check_inputs(f1, f2, pad, k, md, s1, s2);
  check_grad(grad, f1, P);
  check_cpu(f1, "f1");
  check_cpu(f2, "f2");
  check_cpu(grad, "grad_output");
  return backward_impl(grad, f1, f2, P, true, {true, true});
}

}  // namespace
}  // namespace corr
}  // namespace flowmatch

TORCH_LIBRARY_FRAGMENT(flowmatch_testing, m) {
  m.def("correlation_elementwise(Tensor f1, Tensor f2, int pad_size, int kernel_size, int max_displacement, "
        "int stride1, int stride2) -> Tensor");
  m.def("correlation_backward_elementwise(Tensor grad_output, Tensor f1, Tensor f2, int pad_size, "
        "int kernel_size, int max_displacement, int stride1, int stride2) -> (Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(flowmatch_testing, CPU, m) {
  m.impl("correlation_elementwise", &flowmatch::corr::forward_elementwise);
  m.impl("correlation_backward_elementwise", &flowmatch::corr::backward_elementwise);
}
