// CUDA kernels of the correlation op (TORCH_LIBRARY_IMPL(flowmatch, CUDA)).  The kernel bodies are in
// correlation_kernels.cuh (shared with the cupy backend), the index maths in correlation.h (shared
// with the CPU kernels).  Launched on the current stream of the inputs' device; 64-bit indexing.
// Only headers that compile against a CPU torch wheel (see docs/build-facts.md) are included.
#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "correlation.h"
#include "correlation_kernels.cuh"
#include "correlation_ops.h"

namespace fm_corr {
namespace {

template <typename T, typename A>
__global__ void corr_fwd_kernel(const T* f1, const T* f2, T* out, const CorrParams P, int TW, int OC, int CC,
                                int nochunk) {
  corr_fwd_body<T, A>(f1, f2, out, P, TW, OC, CC, nochunk);
}

template <typename T, typename A>
__global__ void corr_bwd_kernel(const T* grad, const T* other, T* grad_in, const CorrParams P, int which) {
  corr_bwd_body<T, A>(grad, other, grad_in, P, which);
}

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
  int TW, OC, CC, nochunk;
  corr_fwd_config(P, &TW, &OC, &CC, &nochunk);
  const dim3 grid((P.oW + TW - 1) / TW, P.oH, P.N * P.D * nochunk);
  TORCH_CHECK(P.oH <= 65535 && P.N * P.D * nochunk <= 65535,
              "correlation (CUDA): output too large for one launch (oH = ", P.oH, ", N·D = ", P.N * P.D,
              "); split the batch");
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, f1.scalar_type(), "correlation_forward_cuda", [&] {
    using A = typename Acc<scalar_t>::type;
    const size_t smem = size_t(corr_fwd_smem_elems(P, TW, OC, CC)) * sizeof(A);
    TORCH_CHECK(smem <= 48 * 1024, "correlation (CUDA): kernel_size/max_displacement too large for shared memory");
    corr_fwd_kernel<scalar_t, A><<<grid, FM_FWD_THREADS, smem, stream>>>(
        f1.const_data_ptr<scalar_t>(), f2.const_data_ptr<scalar_t>(), out.mutable_data_ptr<scalar_t>(), P, TW, OC,
        CC, nochunk);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor> backward_cuda(const at::Tensor& grad_in, const at::Tensor& f1_in,
                                                 const at::Tensor& f2_in, int64_t pad, int64_t k, int64_t md,
                                                 int64_t s1, int64_t s2) {
  const CorrParams P = check_inputs(f1_in, f2_in, pad, k, md, s1, s2);
  check_grad(grad_in, f1_in, P);
  check_cuda(f1_in, "f1");
  check_cuda(f2_in, "f2");
  check_cuda(grad_in, "grad_output");
  c10::cuda::CUDAGuard guard(f1_in.device());
  const at::Tensor f1 = f1_in.contiguous(), f2 = f2_in.contiguous();
  const at::Tensor grad = grad_in.to(f1.scalar_type()).contiguous();
  at::Tensor g1 = at::empty(f1.sizes(), f1.options()), g2 = at::empty(f2.sizes(), f2.options());
  const int threads = 256;
  const fm_index_t total = P.N * P.C * P.H * P.W;
  const unsigned blocks = unsigned(std::min<fm_index_t>((total + threads - 1) / threads, 65535 * 32));
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, f1.scalar_type(), "correlation_backward_cuda", [&] {
    using A = typename Acc<scalar_t>::type;
    corr_bwd_kernel<scalar_t, A><<<blocks, threads, 0, stream>>>(
        grad.const_data_ptr<scalar_t>(), f2.const_data_ptr<scalar_t>(), g1.mutable_data_ptr<scalar_t>(), P, 0);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    corr_bwd_kernel<scalar_t, A><<<blocks, threads, 0, stream>>>(
        grad.const_data_ptr<scalar_t>(), f1.const_data_ptr<scalar_t>(), g2.mutable_data_ptr<scalar_t>(), P, 1);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return {g1, g2};
}

}  // namespace
}  // namespace fm_corr

TORCH_LIBRARY_IMPL(flowmatch, CUDA, m) {
  m.impl("correlation", &fm_corr::forward_cuda);
  m.impl("correlation_backward", &fm_corr::backward_cuda);
}
