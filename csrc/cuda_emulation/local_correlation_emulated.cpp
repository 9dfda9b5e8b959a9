// Test-only: the local correlation CUDA kernels (csrc/local_correlation/local_correlation_kernels.cuh,
// the very file cuda/local_correlation_kernel.cu includes) run on the CPU through cuda_host.h, with the
// launch shape of the .cu.  Registered as torch.ops.flowmatch_emulated.local_correlation /
// local_correlation_backward (never part of flowmatch._C); built by tests/ops/emulated.py.
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <torch/library.h>

#include <array>
#include <cmath>
#include <tuple>

// After the torch headers, before the kernel header: defines __global__, threadIdx, __shared__, ...
#include "cuda_emulation/cuda_host.h"

#include "local_correlation/local_correlation.h"
#include "local_correlation/local_correlation_kernels.cuh"

namespace {

LcParams params(const at::Tensor& f1, const at::Tensor& f2, const at::Tensor& coords, int64_t radius) {
  TORCH_CHECK(f1.dim() == 4 && f2.dim() == 4 && coords.dim() == 4 && coords.size(1) == 2 &&
                  f1.scalar_type() == f2.scalar_type() && f1.scalar_type() == coords.scalar_type() &&
                  (f1.scalar_type() == at::kFloat || f1.scalar_type() == at::kDouble) && radius >= 0 &&
                  radius <= LC_MAX_RADIUS,
              "emulated local_correlation: float32/float64 N×C×H×W maps and N×2×H×W coords of one dtype");
  return lc_make_params(f1.size(0), f1.size(1), f1.size(2), f1.size(3), f2.size(2), f2.size(3), radius);
}

dim3 pixel_grid(const LcParams& P) { return dim3(unsigned(P.W), unsigned(P.H), unsigned(P.N)); }

template <typename A>
at::Tensor forward_typed(const at::Tensor& f1, const at::Tensor& f2, const at::Tensor& coords, const LcParams& P) {
  at::Tensor out = at::empty({P.N, P.K * P.K, P.H, P.W}, f1.options());
  cuda_host::launch(lc_forward_kernel<A>, pixel_grid(P), dim3(LC_THREADS), 0, f1.const_data_ptr<A>(),
                    f2.const_data_ptr<A>(), coords.const_data_ptr<A>(), out.mutable_data_ptr<A>(), P,
                    A(1.0 / std::sqrt(double(P.C))));
  return out;
}

at::Tensor forward(const at::Tensor& f1_in, const at::Tensor& f2_in, const at::Tensor& coords_in, int64_t radius) {
  const LcParams P = params(f1_in, f2_in, coords_in, radius);
  const at::Tensor f1 = f1_in.contiguous(), f2 = f2_in.contiguous(), coords = coords_in.contiguous();
  return f1.scalar_type() == at::kDouble ? forward_typed<double>(f1, f2, coords, P)
                                         : forward_typed<float>(f1, f2, coords, P);
}

template <typename A>
void backward_typed(const at::Tensor& grad, const at::Tensor& f1, const at::Tensor& f2, const at::Tensor& coords,
                    at::Tensor& g1, at::Tensor& g2, at::Tensor& gc, const LcParams& P, const std::array<bool, 3>& m) {
  const A scale = A(1.0 / std::sqrt(double(P.C)));
  if (m[0] || m[1])
    cuda_host::launch(lc_backward_kernel<A>, pixel_grid(P), dim3(LC_THREADS), 0, grad.const_data_ptr<A>(),
                      f1.const_data_ptr<A>(), f2.const_data_ptr<A>(), coords.const_data_ptr<A>(),
                      g1.mutable_data_ptr<A>(), g2.mutable_data_ptr<A>(), P, scale, int(m[0]), int(m[1]));
  if (m[2])
    cuda_host::launch(lc_coords_grad_kernel<A>, pixel_grid(P), dim3(LC_THREADS), 0, grad.const_data_ptr<A>(),
                      f1.const_data_ptr<A>(), f2.const_data_ptr<A>(), coords.const_data_ptr<A>(),
                      gc.mutable_data_ptr<A>(), P, scale);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> backward(const at::Tensor& grad_in, const at::Tensor& f1_in,
                                                        const at::Tensor& f2_in, const at::Tensor& coords_in,
                                                        int64_t radius, std::array<bool, 3> mask) {
  const LcParams P = params(f1_in, f2_in, coords_in, radius);
  const at::Tensor f1 = f1_in.contiguous(), f2 = f2_in.contiguous(), coords = coords_in.contiguous(),
                   grad = grad_in.to(f1.scalar_type()).contiguous();
  at::Tensor g1 = at::zeros(f1.sizes(), f1.options()), g2 = at::zeros(f2.sizes(), f2.options()),
             gc = at::zeros(coords.sizes(), coords.options());
  if (f1.scalar_type() == at::kDouble)
    backward_typed<double>(grad, f1, f2, coords, g1, g2, gc, P, mask);
  else
    backward_typed<float>(grad, f1, f2, coords, g1, g2, gc, P, mask);
  return {g1, g2, gc};
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(flowmatch_emulated, m) {
  m.def("local_correlation(Tensor f1, Tensor f2, Tensor coords, int radius) -> Tensor");
  m.def("local_correlation_backward(Tensor grad_output, Tensor f1, Tensor f2, Tensor coords, int radius, "
        "bool[3] output_mask) -> (Tensor, Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(flowmatch_emulated, CPU, m) {
  m.impl("local_correlation", &forward);
  m.impl("local_correlation_backward", &backward);
}
