// Test-only ops of the correlation (torch.ops.flowmatch_testing.*): the per-element CPU path of
// correlation.h, whatever the dtype and stride, so the tests can compare it with the reference; the
// name of the forward kernel the op picks on this CPU; and the AVX-512 BF16 kernel's channel-pair
// schedule with its dot product emulated on AVX2 (so CPUs without AVX-512 BF16 test its indexing).
#include <torch/library.h>

#include <string>

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

std::string forward_kernel(const at::Tensor& f1, const at::Tensor& f2, int64_t pad, int64_t k, int64_t md,
                           int64_t s1, int64_t s2) {
  const CorrParams P = check_inputs(f1, f2, pad, k, md, s1, s2);
  return forward_kernel_name(f1.scalar_type(), P);
}

at::Tensor forward_bf16_pairs(const at::Tensor& f1, const at::Tensor& f2, int64_t pad, int64_t k, int64_t md,
                              int64_t s1, int64_t s2) {
  const CorrParams P = check_inputs(f1, f2, pad, k, md, s1, s2);
  check_cpu(f1, "f1");
  check_cpu(f2, "f2");
  return forward_bf16_pairs_emulated(f1, f2, P);
}

}  // namespace
}  // namespace corr
}  // namespace flowmatch

TORCH_LIBRARY_FRAGMENT(flowmatch_testing, m) {
  m.def("correlation_elementwise(Tensor f1, Tensor f2, int pad_size, int kernel_size, int max_displacement, "
        "int stride1, int stride2) -> Tensor");
  m.def("correlation_backward_elementwise(Tensor grad_output, Tensor f1, Tensor f2, int pad_size, "
        "int kernel_size, int max_displacement, int stride1, int stride2) -> (Tensor, Tensor)");
  m.def("correlation_cpu_kernel(Tensor f1, Tensor f2, int pad_size, int kernel_size, int max_displacement, "
        "int stride1, int stride2) -> str");
  m.def("correlation_bf16_pairs(Tensor f1, Tensor f2, int pad_size, int kernel_size, int max_displacement, "
        "int stride1, int stride2) -> Tensor");
}

TORCH_LIBRARY_IMPL(flowmatch_testing, CPU, m) {
  m.impl("correlation_elementwise", &flowmatch::corr::forward_elementwise);
  m.impl("correlation_backward_elementwise", &flowmatch::corr::backward_elementwise);
  m.impl("correlation_bf16_pairs", &flowmatch::corr::forward_bf16_pairs);
}

// No tensor is computed from: a CompositeExplicitAutograd kernel answers for inputs on any device.
TORCH_LIBRARY_IMPL(flowmatch_testing, CompositeExplicitAutograd, m) {
  m.impl("correlation_cpu_kernel", &flowmatch::corr::forward_kernel);
}
