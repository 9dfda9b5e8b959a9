// PatchMatch on CUDA (TORCH_LIBRARY_IMPL(flowmatch, CUDA)).  The kernels and their launch schedule
// are in ../patchmatch_kernels.cuh (the per-pixel stages are shared with the CPU kernel and the
// whole schedule runs on the CPU in the cuda_emulated tests); this file allocates the buffers and
// launches on the current stream.
#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/util/Half.h>
#include <torch/library.h>

#include <optional>
#include <tuple>

#include "patchmatch/patchmatch_kernels.cuh"
#include "patchmatch/patchmatch_ops.h"

namespace flowmatch {
namespace pm {
namespace {

// kernel<<<grid, block, smem, stream>>>(args...) with the launch check, for run_device.
struct StreamLaunch {
  cudaStream_t stream;
  template <typename... KArgs, typename... Args>
  void operator()(void (*kernel)(KArgs...), dim3 grid, dim3 block, size_t smem, Args... args) const {
    kernel<<<grid, block, smem, stream>>>(args...);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
};

std::tuple<at::Tensor, at::Tensor> patchmatch_cuda(const at::Tensor& desc_a, const at::Tensor& desc_b,
                                                   int64_t iterations, int64_t radius, int64_t window, int64_t seed,
                                                   bool subpixel, const std::optional<at::Tensor>& init) {
  check_inputs(desc_a, desc_b, iterations, radius, window, init);
  TORCH_CHECK(desc_a.is_cuda() && desc_a.device() == desc_b.device(),
              "patchmatch (CUDA kernel): desc_a and desc_b must be on one CUDA device, got ", desc_a.device(), " and ",
              desc_b.device());
  const int64_t H = desc_a.size(0), W = desc_a.size(1), D = desc_a.size(2), n = H * W;
  const c10::cuda::CUDAGuard guard(desc_a.device());
  at::Tensor guess;
  if (init.has_value() && init->defined()) guess = init->contiguous();
  const int* guess_ptr = guess.defined() ? guess.const_data_ptr<int>() : nullptr;
  const at::Tensor a = desc_a.contiguous(), b = desc_b.contiguous();
  const auto opts = a.options();
  at::Tensor flow = at::empty({H, W, 2}, opts.dtype(at::kFloat));
  at::Tensor cost = at::empty({H, W}, opts.dtype(at::kFloat));
  at::Tensor ints = at::empty({4, n}, opts.dtype(at::kInt)), costs = at::empty({2, n}, opts.dtype(at::kFloat));
  int* I = ints.mutable_data_ptr<int>();
  float* C = costs.mutable_data_ptr<float>();
  const DeviceBuffers buf{I, I + n, I + 2 * n, I + 3 * n, C, C + n};
  const StreamLaunch launch{c10::cuda::getCurrentCUDAStream()};
  AT_DISPATCH_SWITCH(a.scalar_type(), "patchmatch_cuda", AT_DISPATCH_CASE(at::kFloat, [&] {
                       run_device(launch, a.const_data_ptr<scalar_t>(), b.const_data_ptr<scalar_t>(), int(H), int(W),
                                  int(D), int(iterations), int(radius), int(window), guess_ptr, seed, subpixel, buf,
                                  flow.mutable_data_ptr<float>(), cost.mutable_data_ptr<float>());
                     }) AT_DISPATCH_CASE(at::kHalf, [&] {
                       run_device(launch, a.const_data_ptr<scalar_t>(), b.const_data_ptr<scalar_t>(), int(H), int(W),
                                  int(D), int(iterations), int(radius), int(window), guess_ptr, seed, subpixel, buf,
                                  flow.mutable_data_ptr<float>(), cost.mutable_data_ptr<float>());
                     }));
  return {flow, cost};
}

}  // namespace
}  // namespace pm
}  // namespace flowmatch

TORCH_LIBRARY_IMPL(flowmatch, CUDA, m) { m.impl("patchmatch", &flowmatch::pm::patchmatch_cuda); }
