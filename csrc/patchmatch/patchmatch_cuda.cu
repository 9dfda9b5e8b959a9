// PatchMatch on CUDA.  Same per-pixel logic as the CPU (patchmatch.h); the scan order differs
// because a GPU cannot scan serially: each iteration runs jump-flood-like parallel propagation
// steps (neighbours at distance 8, 4, 2, 1 in the iteration's direction, each step reading the
// previous step's buffer and writing the other), then random search.  Every read comes from a
// finished buffer and random numbers are hashes of (seed, pixel, iteration, draw), so the result
// is deterministic for a seed (it is not bit-identical to the CPU's, whose scan is sequential).
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/util/Half.h>
#include <torch/library.h>

#include <optional>
#include <tuple>

#include "patchmatch/patchmatch.h"
#include "patchmatch/patchmatch_checks.h"

namespace flowmatch {
namespace {

using pm::Best;

constexpr int kThreads = 256;

template <typename T>
__global__ void init_kernel(const T* __restrict__ a, const T* __restrict__ b, int H, int W, int D, int window,
                            const int* __restrict__ guess,
                            int64_t seed, int* __restrict__ U, int* __restrict__ V, float* __restrict__ C) {
  const int64_t p = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (p >= static_cast<int64_t>(H) * W) return;
  const int y = static_cast<int>(p / W), x = static_cast<int>(p % W);
  int u, v;
  const int cu = guess ? guess[2 * p] : 0, cv = guess ? guess[2 * p + 1] : 0;
  pm::random_init(seed, x, y, W, H, window, cu, cv, u, v);
  U[p] = u;
  V[p] = v;
  C[p] = pm::sq_dist(a + p * D, b + (static_cast<int64_t>(y + v) * W + (x + u)) * D, D, 3.0e38f);
}

// One propagation step at distance `step` (from the left/up neighbours when forward, else
// right/down), plus random search when `search` is set.  Reads (U0, V0, C0), writes (U1, V1, C1).
template <typename T>
__global__ void step_kernel(const T* __restrict__ a, const T* __restrict__ b, int H, int W, int D, int step,
                            bool forward, bool search, int iter, int radius, int64_t seed,
                            const int* __restrict__ U0, const int* __restrict__ V0, const float* __restrict__ C0,
                            int* __restrict__ U1, int* __restrict__ V1, float* __restrict__ C1) {
  const int64_t p = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (p >= static_cast<int64_t>(H) * W) return;
  const int y = static_cast<int>(p / W), x = static_cast<int>(p % W);
  const pm::PortableDist<T> dist{D};
  const T* a_pix = a + p * D;
  Best best{U0[p], V0[p], C0[p]};
  const int s = forward ? -step : step;
  if (x + s >= 0 && x + s < W) {
    const int64_t q = p + s;
    pm::try_candidate(a_pix, b, x, y, W, H, dist, U0[q], V0[q], best);
  }
  if (y + s >= 0 && y + s < H) {
    const int64_t q = p + static_cast<int64_t>(s) * W;
    pm::try_candidate(a_pix, b, x, y, W, H, dist, U0[q], V0[q], best);
  }
  if (search) pm::random_search(a_pix, b, x, y, W, H, dist, seed, iter, radius, best);
  U1[p] = best.u;
  V1[p] = best.v;
  C1[p] = best.cost;
}

template <typename T>
__global__ void finish_kernel(const T* __restrict__ a, const T* __restrict__ b, int H, int W, int D, bool subpix,
                              const int* __restrict__ U, const int* __restrict__ V, const float* __restrict__ C,
                              float* __restrict__ flow, float* __restrict__ cost) {
  const int64_t p = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (p >= static_cast<int64_t>(H) * W) return;
  const int y = static_cast<int>(p / W), x = static_cast<int>(p % W);
  float fu = static_cast<float>(U[p]), fv = static_cast<float>(V[p]);
  if (subpix) pm::subpixel(a + p * D, b, x, y, W, H, pm::PortableDist<T>{D}, Best{U[p], V[p], C[p]}, fu, fv);
  flow[2 * p] = fu;
  flow[2 * p + 1] = fv;
  cost[p] = C[p];
}

template <typename T>
void run_cuda(const T* a, const T* b, int H, int W, int D, int iterations, int radius, int window, const int* guess,
              int64_t seed,
              bool subpix, float* flow, float* cost, const at::TensorOptions& opts) {
  const int64_t n = static_cast<int64_t>(H) * W;
  const unsigned blocks = static_cast<unsigned>((n + kThreads - 1) / kThreads);
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  at::Tensor u0 = at::empty({n}, opts.dtype(at::kInt)), v0 = at::empty({n}, opts.dtype(at::kInt));
  at::Tensor u1 = at::empty({n}, opts.dtype(at::kInt)), v1 = at::empty({n}, opts.dtype(at::kInt));
  at::Tensor c0 = at::empty({n}, opts.dtype(at::kFloat)), c1 = at::empty({n}, opts.dtype(at::kFloat));
  int *U0 = u0.data_ptr<int>(), *V0 = v0.data_ptr<int>(), *U1 = u1.data_ptr<int>(), *V1 = v1.data_ptr<int>();
  float *C0 = c0.data_ptr<float>(), *C1 = c1.data_ptr<float>();
  init_kernel<T><<<blocks, kThreads, 0, stream>>>(a, b, H, W, D, window, guess, seed, U0, V0, C0);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  int first_step = 1;
  while (first_step * 2 <= 8 && first_step * 2 < (H > W ? H : W)) first_step *= 2;
  for (int it = 0; it < iterations; ++it) {
    for (int step = first_step; step >= 1; step /= 2) {
      step_kernel<T><<<blocks, kThreads, 0, stream>>>(a, b, H, W, D, step, it % 2 == 0, step == 1, it, radius, seed,
                                                      U0, V0, C0, U1, V1, C1);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
      std::swap(U0, U1);
      std::swap(V0, V1);
      std::swap(C0, C1);
    }
  }
  finish_kernel<T><<<blocks, kThreads, 0, stream>>>(a, b, H, W, D, subpix, U0, V0, C0, flow, cost);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

std::tuple<at::Tensor, at::Tensor> patchmatch_cuda(const at::Tensor& desc_a, const at::Tensor& desc_b,
                                                   int64_t iterations, int64_t radius, int64_t window, int64_t seed,
                                                   bool subpixel, const std::optional<at::Tensor>& init) {
  pm::check_inputs(desc_a, desc_b, iterations, radius, window, init);
  TORCH_CHECK(desc_a.device() == desc_b.device(), "patchmatch: desc_a and desc_b are on different devices");
  const int64_t H = desc_a.size(0), W = desc_a.size(1), D = desc_a.size(2);
  at::Tensor guess;
  if (init.has_value() && init->defined()) guess = init->contiguous();
  const int* guess_ptr = guess.defined() ? guess.data_ptr<int>() : nullptr;
  const c10::cuda::CUDAGuard guard(desc_a.device());
  const at::Tensor a = desc_a.contiguous(), b = desc_b.contiguous();
  at::Tensor flow = at::empty({H, W, 2}, a.options().dtype(at::kFloat));
  at::Tensor cost = at::empty({H, W}, a.options().dtype(at::kFloat));
  if (a.scalar_type() == at::kFloat) {
    run_cuda(a.data_ptr<float>(), b.data_ptr<float>(), static_cast<int>(H), static_cast<int>(W), static_cast<int>(D),
             static_cast<int>(iterations), static_cast<int>(radius), static_cast<int>(window), guess_ptr, seed, subpixel,
             flow.data_ptr<float>(), cost.data_ptr<float>(), a.options());
  } else {
    run_cuda(a.data_ptr<c10::Half>(), b.data_ptr<c10::Half>(), static_cast<int>(H), static_cast<int>(W),
             static_cast<int>(D), static_cast<int>(iterations), static_cast<int>(radius), static_cast<int>(window),
             guess_ptr, seed, subpixel, flow.data_ptr<float>(), cost.data_ptr<float>(), a.options());
  }
  return {flow, cost};
}

}  // namespace
}  // namespace flowmatch

TORCH_LIBRARY_IMPL(flowmatch, CUDA, m) { m.impl("patchmatch", &flowmatch::patchmatch_cuda); }
