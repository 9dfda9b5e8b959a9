// Test-only extension: the project's CUDA kernels, compiled by g++ from the very headers the .cu
// files include, run on the CPU through cuda_host.h.  Registered as torch.ops.flowmatch_emulated.*
// (never part of flowmatch._C); built and loaded by tests/ops/emulated.py.
//
//   correlation(f1, f2, pad, k, md, s1, s2)                  corr_fwd_kernel, launch shape of the .cu
//   correlation_backward(grad, f1, f2, pad, k, md, s1, s2)   corr_bwd_kernel for both maps
//   patchmatch(desc_a, desc_b, iterations, radius, window, seed, subpixel, init)  pm::run_device
//   warp_selftest(x)                                         the layer's own barriers, shuffles, atomics
#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>
#include <torch/library.h>

#include <optional>
#include <tuple>

// After the torch headers, before the kernel headers: defines __global__, threadIdx, __shared__, ...
#include "cuda_emulation/cuda_host.h"

#include "correlation/correlation_kernels.cuh"
#include "correlation/correlation_ops.h"
#include "patchmatch/patchmatch_kernels.cuh"
#include "patchmatch/patchmatch_ops.h"
#include "cuda_emulation/selftest_kernels.cuh"

namespace flowmatch {
namespace corr {
CUDA_HOST_DYNAMIC_SHARED(unsigned char, fm_smem_raw);  // corr_fwd_body's `extern __shared__`
}  // namespace corr
namespace selftest {
CUDA_HOST_DYNAMIC_SHARED(float, selftest_smem);
}  // namespace selftest

namespace emulated {
namespace {

template <typename T>
struct Acc {
  using type = float;  // as correlation_kernel.cu: float for half types and float32
};
template <>
struct Acc<double> {
  using type = double;
};

at::Tensor correlation(const at::Tensor& f1_in, const at::Tensor& f2_in, int64_t pad, int64_t k, int64_t md,
                       int64_t s1, int64_t s2) {
  using namespace flowmatch::corr;
  const CorrParams P = check_inputs(f1_in, f2_in, pad, k, md, s1, s2);
  const at::Tensor f1 = f1_in.contiguous(), f2 = f2_in.contiguous();
  at::Tensor out = at::empty({P.N, P.D * P.D, P.oH, P.oW}, f1.options());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, f1.scalar_type(), "emulated_correlation", [&] {
    using A = typename Acc<scalar_t>::type;
    const CorrFwdLaunch L = corr_fwd_launch(P, sizeof(A));
    TORCH_CHECK(L.fits, "emulated correlation: launch does not fit (", L.smem_bytes, " bytes of shared memory)");
    cuda_host::launch(corr_fwd_kernel<scalar_t, A>, dim3(unsigned(L.grid_x), unsigned(L.grid_y), unsigned(L.grid_z)),
                      dim3(FM_FWD_THREADS), size_t(L.smem_bytes), f1.const_data_ptr<scalar_t>(),
                      f2.const_data_ptr<scalar_t>(), out.mutable_data_ptr<scalar_t>(), P, L.TW, L.OC, L.CC,
                      L.nochunk);
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor> correlation_backward(const at::Tensor& grad_in, const at::Tensor& f1_in,
                                                        const at::Tensor& f2_in, int64_t pad, int64_t k, int64_t md,
                                                        int64_t s1, int64_t s2) {
  using namespace flowmatch::corr;
  const CorrParams P = check_inputs(f1_in, f2_in, pad, k, md, s1, s2);
  check_grad(grad_in, f1_in, P);
  const at::Tensor f1 = f1_in.contiguous(), f2 = f2_in.contiguous();
  const at::Tensor grad = grad_in.to(f1.scalar_type()).contiguous();
  at::Tensor g1 = at::empty(f1.sizes(), f1.options()), g2 = at::empty(f2.sizes(), f2.options());
  const dim3 blocks(unsigned(corr_bwd_blocks(P)));
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, f1.scalar_type(), "emulated_correlation_backward", [&] {
    using A = typename Acc<scalar_t>::type;
    cuda_host::launch(corr_bwd_kernel<scalar_t, A>, blocks, dim3(FM_BWD_THREADS), 0, grad.const_data_ptr<scalar_t>(),
                      f2.const_data_ptr<scalar_t>(), g1.mutable_data_ptr<scalar_t>(), P, 0);
    cuda_host::launch(corr_bwd_kernel<scalar_t, A>, blocks, dim3(FM_BWD_THREADS), 0, grad.const_data_ptr<scalar_t>(),
                      f1.const_data_ptr<scalar_t>(), g2.mutable_data_ptr<scalar_t>(), P, 1);
  });
  return {g1, g2};
}

// pm::run_device's launcher: cuda_host::launch instead of <<<>>>.
struct HostLaunch {
  template <typename... KArgs, typename... Args>
  void operator()(void (*kernel)(KArgs...), dim3 grid, dim3 block, size_t smem, Args... args) const {
    cuda_host::launch(kernel, grid, block, smem, args...);
  }
};

std::tuple<at::Tensor, at::Tensor> patchmatch(const at::Tensor& desc_a, const at::Tensor& desc_b, int64_t iterations,
                                              int64_t radius, int64_t window, int64_t seed, bool subpixel,
                                              const std::optional<at::Tensor>& init) {
  using namespace flowmatch::pm;
  check_inputs(desc_a, desc_b, iterations, radius, window, init);
  const int64_t H = desc_a.size(0), W = desc_a.size(1), D = desc_a.size(2), n = H * W;
  at::Tensor guess;
  if (init.has_value() && init->defined()) guess = init->contiguous();
  const int* guess_ptr = guess.defined() ? guess.const_data_ptr<int>() : nullptr;
  const at::Tensor a = desc_a.contiguous(), b = desc_b.contiguous();
  // As the .cu allocates them (contents uninitialised: the kernels must write before reading).
  at::Tensor flow = at::empty({H, W, 2}, a.options().dtype(at::kFloat));
  at::Tensor cost = at::empty({H, W}, a.options().dtype(at::kFloat));
  at::Tensor ints = at::empty({4, n}, a.options().dtype(at::kInt)), costs = at::empty({2, n}, a.options().dtype(at::kFloat));
  int* I = ints.mutable_data_ptr<int>();
  float* C = costs.mutable_data_ptr<float>();
  const DeviceBuffers buf{I, I + n, I + 2 * n, I + 3 * n, C, C + n};
  AT_DISPATCH_SWITCH(a.scalar_type(), "emulated_patchmatch", AT_DISPATCH_CASE(at::kFloat, [&] {
                       run_device(HostLaunch{}, a.const_data_ptr<scalar_t>(), b.const_data_ptr<scalar_t>(), int(H),
                                  int(W), int(D), int(iterations), int(radius), int(window), guess_ptr, seed, subpixel,
                                  buf, flow.mutable_data_ptr<float>(), cost.mutable_data_ptr<float>());
                     }) AT_DISPATCH_CASE(at::kHalf, [&] {
                       run_device(HostLaunch{}, a.const_data_ptr<scalar_t>(), b.const_data_ptr<scalar_t>(), int(H),
                                  int(W), int(D), int(iterations), int(radius), int(window), guess_ptr, seed, subpixel,
                                  buf, flow.mutable_data_ptr<float>(), cost.mutable_data_ptr<float>());
                     }));
  return {flow, cost};
}

// x: float32 of any length; returns (per-block sums, total, per-warp ballots of x > 0, lane values
// shifted by __shfl_down/up/xor) from emulation_selftest_kernel.
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> warp_selftest(const at::Tensor& x_in, int64_t block) {
  const at::Tensor x = x_in.to(at::kFloat).contiguous();
  const int64_t n = x.numel(), blocks = (n + block - 1) / block;
  at::Tensor sums = at::empty({blocks}, x.options()), total = at::zeros({1}, x.options());
  at::Tensor ballots = at::empty({blocks * ((block + 31) / 32)}, x.options().dtype(at::kLong));
  at::Tensor shuffled = at::empty({3, n}, x.options());
  cuda_host::launch(selftest::selftest_kernel, dim3(unsigned(blocks)), dim3(unsigned(block)),
                    size_t(block) * sizeof(float), x.const_data_ptr<float>(), int(n), sums.mutable_data_ptr<float>(),
                    total.mutable_data_ptr<float>(), ballots.mutable_data_ptr<int64_t>(),
                    shuffled.mutable_data_ptr<float>());
  return {sums, total, ballots, shuffled};
}

}  // namespace
}  // namespace emulated
}  // namespace flowmatch

TORCH_LIBRARY(flowmatch_emulated, m) {
  m.def("correlation(Tensor f1, Tensor f2, int pad_size, int kernel_size, int max_displacement, int stride1, "
        "int stride2) -> Tensor");
  m.def("correlation_backward(Tensor grad_output, Tensor f1, Tensor f2, int pad_size, int kernel_size, "
        "int max_displacement, int stride1, int stride2) -> (Tensor, Tensor)");
  m.def("patchmatch(Tensor desc_a, Tensor desc_b, int iterations, int radius, int window, int seed, "
        "bool subpixel=False, Tensor? init=None) -> (Tensor, Tensor)");
  m.def("warp_selftest(Tensor x, int block) -> (Tensor, Tensor, Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(flowmatch_emulated, CPU, m) {
  m.impl("correlation", &flowmatch::emulated::correlation);
  m.impl("correlation_backward", &flowmatch::emulated::correlation_backward);
  m.impl("patchmatch", &flowmatch::emulated::patchmatch);
  m.impl("warp_selftest", &flowmatch::emulated::warp_selftest);
}
