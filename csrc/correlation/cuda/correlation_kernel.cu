// CUDA kernels of the correlation op (TORCH_LIBRARY_IMPL(flowmatch, CUDA)).  The kernels and their
// launch shapes are in ../correlation_kernels.cuh (shared with the cupy backend and run on the CPU
// by the cuda_emulated tests), the index maths in ../correlation.h (shared with the CPU kernels).
// Launched on the current stream of the inputs' device; 64-bit indexing.  Only headers that compile
// against a CPU torch wheel (see /work/shared/docs/build-facts.md) are included.
#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <array>

#include "correlation/correlation.h"
#include "correlation/correlation_kernels.cuh"
#include "correlation/correlation_ops.h"

namespace flowmatch {
namespace corr {
namespace {

template <typename T>
struct Acc {
  using type = float;
};
template <>
struct Acc<double> {
  using type = double;
};

void check_cuda(const at::Tensor& t, const char* name) {
  TORCH_CHECK(t.is_cuda(), "correlation (CUDA kernel): ", name, " is on ", t.device());
}

at::Tensor forward_cuda(const at::Tensor& f1_in, const at::Tensor& f2_in, int64_t pad, int64_t k, int64_t md,
                        int64_t s1, int64_t s2) {
  const CorrParams P = check_inputs(f1_in, f2_in, pad, k, md, s1, s2);
  check_cuda(f1_in, "f1");
  check_cuda(f2_in, "f2");
  c10::cuda::CUDAGuard guard(f1_in.device());
  const at::Tensor f1 = f1_in.contiguous(), f2 = f2_in.contiguous();
  at::Tensor out = at::empty({P.N, P.D * P.D, P.oH, P.oW}, f1.options());
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, f1.scalar_type(), "correlation_forward_cuda", [&] {
    using A = typename Acc<scalar_t>::type;
    const CorrFwdLaunch L = corr_fwd_launch(P, sizeof(A));
    TORCH_CHECK(L.fits, "correlation (CUDA): output too large for one launch (oH = ", P.oH, ", N·D = ", P.N * P.D,
                ") or kernel_size/max_displacement too large for shared memory (", L.smem_bytes,
                " bytes); split the batch");
    const dim3 grid(unsigned(L.grid_x), unsigned(L.grid_y), unsigned(L.grid_z));
    corr_fwd_kernel<scalar_t, A><<<grid, FM_FWD_THREADS, size_t(L.smem_bytes), stream>>>(
        f1.const_data_ptr<scalar_t>(), f2.const_data_ptr<scalar_t>(), out.mutable_data_ptr<scalar_t>(), P, L.TW,
        L.OC, L.CC, L.nochunk);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor> backward_cuda(const at::Tensor& grad_in, const at::Tensor& f1_in,
                                                 const at::Tensor& f2_in, int64_t pad, int64_t k, int64_t md,
                                                 int64_t s1, int64_t s2, std::array<bool, 2> mask) {
  const CorrParams P = check_inputs(f1_in, f2_in, pad, k, md, s1, s2);
  check_grad(grad_in, f1_in, P);
  check_cuda(f1_in, "f1");
  check_cuda(f2_in, "f2");
  check_cuda(grad_in, "grad_output");
  c10::cuda::CUDAGuard guard(f1_in.device());
  const at::Tensor f1 = f1_in.contiguous(), f2 = f2_in.contiguous();
  const at::Tensor grad = grad_in.to(f1.scalar_type()).contiguous();
  // A gradient nobody asked for (needs_input_grad) is returned empty and never computed.
  at::Tensor g1 = at::empty(mask[0] ? f1.sizes() : at::IntArrayRef{0}, f1.options());
  at::Tensor g2 = at::empty(mask[1] ? f2.sizes() : at::IntArrayRef{0}, f2.options());
  const unsigned blocks = unsigned(corr_bwd_blocks(P));
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, f1.scalar_type(), "correlation_backward_cuda", [&] {
    using A = typename Acc<scalar_t>::type;
    if (mask[0]) {
      corr_bwd_kernel<scalar_t, A><<<blocks, FM_BWD_THREADS, 0, stream>>>(
          grad.const_data_ptr<scalar_t>(), f2.const_data_ptr<scalar_t>(), g1.mutable_data_ptr<scalar_t>(), P, 0);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    }
    if (mask[1]) {
      corr_bwd_kernel<scalar_t, A><<<blocks, FM_BWD_THREADS, 0, stream>>>(
          grad.const_data_ptr<scalar_t>(), f1.const_data_ptr<scalar_t>(), g2.mutable_data_ptr<scalar_t>(), P, 1);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    }
  });
  return {g1, g2};
}

}  // namespace
}  // namespace corr
}  // namespace flowmatch

TORCH_LIBRARY_IMPL(flowmatch, CUDA, m) {
  m.impl("correlation", &flowmatch::corr::forward_cuda);
  m.impl("correlation_backward", &flowmatch::corr::backward_cuda);
}
