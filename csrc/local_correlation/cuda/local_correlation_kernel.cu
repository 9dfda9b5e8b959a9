// CUDA launchers of the local correlation lookup (TORCH_LIBRARY_IMPL(flowmatch, CUDA)).  The kernels
// are in local_correlation_kernels.cuh, the per-element code in local_correlation.h (shared with the
// CPU kernels).  float16/bfloat16 run in float32; launched on the current stream of the inputs'
// device; 64-bit indexing.  Only headers that compile against a CPU torch wheel are included.
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <cmath>

#include "local_correlation/local_correlation.h"
#include "local_correlation/local_correlation_kernels.cuh"
#include "local_correlation/local_correlation_ops.h"

namespace fm_lc {
namespace {

void check_cuda(const at::Tensor& t, const char* name) {
  TORCH_CHECK(t.is_cuda(), "local_correlation (CUDA kernel): ", name, " is on ", t.device());
}

at::ScalarType work_type(const at::Tensor& f1) { return f1.scalar_type() == at::kDouble ? at::kDouble : at::kFloat; }

dim3 pixel_grid(const LcParams& P) {
  TORCH_CHECK(P.H <= 65535 && P.N <= 65535 && P.W <= 2147483647LL,
              "local_correlation (CUDA): H and N must be <= 65535 for one launch, got ", P.H, " and ", P.N);
  return dim3(unsigned(P.W), unsigned(P.H), unsigned(P.N));
}

at::Tensor forward_cuda(const at::Tensor& f1_in, const at::Tensor& f2_in, const at::Tensor& coords_in,
                        int64_t radius) {
  const LcParams P = check_inputs(f1_in, f2_in, coords_in, radius);
  check_cuda(f1_in, "f1");
  c10::cuda::CUDAGuard guard(f1_in.device());
  const at::ScalarType wt = work_type(f1_in);
  const at::Tensor f1 = f1_in.to(wt).contiguous(), f2 = f2_in.to(wt).contiguous(),
                   coords = coords_in.to(wt).contiguous();
  at::Tensor out = at::empty({P.N, P.K * P.K, P.H, P.W}, f1.options());
  if (P.H * P.W == 0) return out.to(f1_in.scalar_type());
  const dim3 grid = pixel_grid(P);
  auto stream = c10::cuda::getCurrentCUDAStream();
  if (wt == at::kDouble) {
    lc_forward_kernel<double><<<grid, LC_THREADS, 0, stream>>>(
        f1.const_data_ptr<double>(), f2.const_data_ptr<double>(), coords.const_data_ptr<double>(),
        out.mutable_data_ptr<double>(), P, 1.0 / std::sqrt(double(P.C)));
  } else {
    lc_forward_kernel<float><<<grid, LC_THREADS, 0, stream>>>(
        f1.const_data_ptr<float>(), f2.const_data_ptr<float>(), coords.const_data_ptr<float>(),
        out.mutable_data_ptr<float>(), P, float(1.0 / std::sqrt(double(P.C))));
  }
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out.to(f1_in.scalar_type());
}

template <typename A>
void launch_backward(const at::Tensor& grad, const at::Tensor& f1, const at::Tensor& f2, const at::Tensor& coords,
                     at::Tensor& g1, at::Tensor& g2, at::Tensor& gc, const LcParams& P, std::array<bool, 3> mask) {
  const dim3 grid = pixel_grid(P);
  auto stream = c10::cuda::getCurrentCUDAStream();
  const A scale = A(1.0 / std::sqrt(double(P.C)));
  if (mask[0] || mask[1]) {
    lc_backward_kernel<A><<<grid, LC_THREADS, 0, stream>>>(
        grad.const_data_ptr<A>(), f1.const_data_ptr<A>(), f2.const_data_ptr<A>(), coords.const_data_ptr<A>(),
        g1.mutable_data_ptr<A>(), g2.mutable_data_ptr<A>(), P, scale, int(mask[0]), int(mask[1]));
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
  if (mask[2]) {
    lc_coords_grad_kernel<A><<<grid, LC_THREADS, 0, stream>>>(
        grad.const_data_ptr<A>(), f1.const_data_ptr<A>(), f2.const_data_ptr<A>(), coords.const_data_ptr<A>(),
        gc.mutable_data_ptr<A>(), P, scale);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> backward_cuda(const at::Tensor& grad_in, const at::Tensor& f1_in,
                                                             const at::Tensor& f2_in, const at::Tensor& coords_in,
                                                             int64_t radius, std::array<bool, 3> mask) {
  const LcParams P = check_inputs(f1_in, f2_in, coords_in, radius);
  check_grad(grad_in, f1_in, P);
  check_cuda(f1_in, "f1");
  c10::cuda::CUDAGuard guard(f1_in.device());
  const at::ScalarType wt = work_type(f1_in);
  const at::Tensor f1 = f1_in.to(wt).contiguous(), f2 = f2_in.to(wt).contiguous(),
                   coords = coords_in.to(wt).contiguous(), grad = grad_in.to(wt).contiguous();
  at::Tensor g1 = at::zeros(f1.sizes(), f1.options()), g2 = at::zeros(f2.sizes(), f2.options()),
             gc = at::zeros(coords.sizes(), coords.options());
  if (P.H * P.W > 0) {
    if (wt == at::kDouble)
      launch_backward<double>(grad, f1, f2, coords, g1, g2, gc, P, mask);
    else
      launch_backward<float>(grad, f1, f2, coords, g1, g2, gc, P, mask);
  }
  return {g1.to(f1_in.scalar_type()), g2.to(f2_in.scalar_type()), gc.to(coords_in.scalar_type())};
}

}  // namespace
}  // namespace fm_lc

TORCH_LIBRARY_IMPL(flowmatch, CUDA, m) {
  m.impl("local_correlation", &fm_lc::forward_cuda);
  m.impl("local_correlation_backward", &fm_lc::backward_cuda);
}
