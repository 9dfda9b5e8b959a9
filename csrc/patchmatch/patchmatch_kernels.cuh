// PatchMatch per-pixel stages (init, propagate, finish) and the CUDA kernels and launch schedule
// built from them.  The stages are FM_HD functions used by the CPU loop (cpu/patchmatch_kernel.cpp)
// and the CUDA kernels alike; the kernels and schedule are compiled by nvcc
// (cuda/patchmatch_kernel.cu) and, for the cuda_emulated tests, by g++ against
// csrc/cuda_emulation/cuda_host.h.  `Dist` is a cost functor (see PortableDist in patchmatch.h).
#pragma once

#include "common/host_device.h"
#include "patchmatch/patchmatch.h"

namespace flowmatch {
namespace pm {

// Initialisation of pixel p: a random offset around the guess (if any), and its cost.
template <typename T, typename Dist>
FM_HD void init_pixel(const T* a, const T* b, int W, int H, const Dist& dist, int window, const int* guess,
                      int64_t seed, int64_t p, int* U, int* V, float* C) {
  const int y = static_cast<int>(p / W), x = static_cast<int>(p % W);
  int u, v;
  const int cu = guess ? guess[2 * p] : 0, cv = guess ? guess[2 * p + 1] : 0;
  random_init(seed, x, y, W, H, window, cu, cv, u, v);
  U[p] = u;
  V[p] = v;
  C[p] = dist(a + p * dist.D, b + (static_cast<int64_t>(y + v) * W + (x + u)) * dist.D, __builtin_huge_valf());
}

// One propagation visit of pixel (x, y): try the candidate offsets (ncand of them, taken from the
// neighbours the caller's schedule chose), then random search when `search`.  `best` holds the
// pixel's current match on entry and the result on return.
template <typename T, typename Dist>
FM_HD void propagate_pixel(const T* a_pix, const T* b, int x, int y, int W, int H, const Dist& dist,
                           const int* cand_u, const int* cand_v, int ncand, bool search, int64_t seed, int iter,
                           int radius, Best& best) {
  for (int i = 0; i < ncand; ++i) try_candidate(a_pix, b, x, y, W, H, dist, cand_u[i], cand_v[i], best);
  if (search) random_search(a_pix, b, x, y, W, H, dist, seed, iter, radius, best);
}

// Output of pixel p: the flow (sub-pixel refined when `subpix`) and the integer match's cost.
template <typename T, typename Dist>
FM_HD void finish_pixel(const T* a, const T* b, int W, int H, const Dist& dist, bool subpix, int64_t p, const int* U,
                        const int* V, const float* C, float* flow, float* cost) {
  const int y = static_cast<int>(p / W), x = static_cast<int>(p % W);
  float fu = static_cast<float>(U[p]), fv = static_cast<float>(V[p]);
  if (subpix) subpixel(a + p * dist.D, b, x, y, W, H, dist, Best{U[p], V[p], C[p]}, fu, fv);
  flow[2 * p] = fu;
  flow[2 * p + 1] = fv;
  cost[p] = C[p];
}

#if defined(FM_DEVICE_CODE)
// ---- CUDA: one thread per pixel ------------------------------------------------------------------
// A GPU cannot scan serially: each iteration runs jump-flood-like parallel propagation steps
// (neighbours at distance 8, 4, 2, 1 in the iteration's direction, each step reading the previous
// step's buffer and writing the other), then random search on the last step.  Every read comes from
// a finished buffer and random numbers are hashes of (seed, pixel, iteration, draw), so the result
// is deterministic for a seed (it is not bit-identical to the CPU's, whose scan is sequential).
constexpr int kThreads = 256;

template <typename T>
__global__ void __launch_bounds__(kThreads)
    init_kernel(const T* __restrict__ a, const T* __restrict__ b, int H, int W, int D, int window,
                const int* __restrict__ guess, int64_t seed, int* __restrict__ U, int* __restrict__ V,
                float* __restrict__ C) {
  const int64_t p = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (p >= static_cast<int64_t>(H) * W) return;
  init_pixel(a, b, W, H, PortableDist<T>{D}, window, guess, seed, p, U, V, C);
}

// One propagation step at distance `step` (from the left/up neighbours when forward, else
// right/down), plus random search when `search` is set.  Reads (U0, V0, C0), writes (U1, V1, C1).
template <typename T>
__global__ void __launch_bounds__(kThreads)
    step_kernel(const T* __restrict__ a, const T* __restrict__ b, int H, int W, int D, int step, bool forward,
                bool search, int iter, int radius, int64_t seed, const int* __restrict__ U0,
                const int* __restrict__ V0, const float* __restrict__ C0, int* __restrict__ U1, int* __restrict__ V1,
                float* __restrict__ C1) {
  const int64_t p = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (p >= static_cast<int64_t>(H) * W) return;
  const int y = static_cast<int>(p / W), x = static_cast<int>(p % W);
  const int s = forward ? -step : step;
  int cu[2], cv[2], n = 0;
  if (x + s >= 0 && x + s < W) {
    cu[n] = U0[p + s];
    cv[n++] = V0[p + s];
  }
  if (y + s >= 0 && y + s < H) {
    cu[n] = U0[p + static_cast<int64_t>(s) * W];
    cv[n++] = V0[p + static_cast<int64_t>(s) * W];
  }
  Best best{U0[p], V0[p], C0[p]};
  propagate_pixel(a + p * D, b, x, y, W, H, PortableDist<T>{D}, cu, cv, n, search, seed, iter, radius, best);
  U1[p] = best.u;
  V1[p] = best.v;
  C1[p] = best.cost;
}

template <typename T>
__global__ void __launch_bounds__(kThreads)
    finish_kernel(const T* __restrict__ a, const T* __restrict__ b, int H, int W, int D, bool subpix,
                  const int* __restrict__ U, const int* __restrict__ V, const float* __restrict__ C,
                  float* __restrict__ flow, float* __restrict__ cost) {
  const int64_t p = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (p >= static_cast<int64_t>(H) * W) return;
  finish_pixel(a, b, W, H, PortableDist<T>{D}, subpix, p, U, V, C, flow, cost);
}

// Device buffers of one run: two (U, V, C) sets of H·W entries each, ping-ponged by the steps.
struct DeviceBuffers {
  int *U0, *V0, *U1, *V1;
  float *C0, *C1;
};

// The whole GPU schedule (host code).  `launch(kernel, grid, block, smem_bytes, args...)` starts one
// kernel: `<<<>>>` on the current stream in the .cu, cuda_host::launch in the emulation tests.
template <typename T, typename Launch>
void run_device(const Launch& launch, const T* a, const T* b, int H, int W, int D, int iterations, int radius,
                int window, const int* guess, int64_t seed, bool subpix, DeviceBuffers buf, float* flow, float* cost) {
  const int64_t n = static_cast<int64_t>(H) * W;
  const dim3 grid(static_cast<unsigned>((n + kThreads - 1) / kThreads)), block(kThreads);
  launch(init_kernel<T>, grid, block, 0, a, b, H, W, D, window, guess, seed, buf.U0, buf.V0, buf.C0);
  int first_step = 1;
  while (first_step * 2 <= 8 && first_step * 2 < (H > W ? H : W)) first_step *= 2;
  for (int it = 0; it < iterations; ++it) {
    for (int step = first_step; step >= 1; step /= 2) {
      launch(step_kernel<T>, grid, block, 0, a, b, H, W, D, step, it % 2 == 0, step == 1, it, radius, seed,
             buf.U0, buf.V0, buf.C0, buf.U1, buf.V1, buf.C1);
      int* tu = buf.U0; buf.U0 = buf.U1; buf.U1 = tu;
      int* tv = buf.V0; buf.V0 = buf.V1; buf.V1 = tv;
      float* tc = buf.C0; buf.C0 = buf.C1; buf.C1 = tc;
    }
  }
  launch(finish_kernel<T>, grid, block, 0, a, b, H, W, D, subpix, buf.U0, buf.V0, buf.C0, flow, cost);
}
#endif  // FM_DEVICE_CODE

}  // namespace pm
}  // namespace flowmatch
