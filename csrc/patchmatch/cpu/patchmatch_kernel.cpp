// PatchMatch on the CPU (OpenMP through at::parallel_for).
//
// Parallel but deterministic: the image is cut into row bands whose height depends only on the
// image height.  Each band is scanned serially (left-to-right/top-down on even iterations,
// reversed on odd ones), so propagation inside a band is the classic sequential one.  The first
// row of a band reads its neighbour in the previous band from a snapshot taken before the pass,
// never from a band another thread is writing.  Random numbers are hashes of (seed, pixel,
// iteration, draw).  Results are therefore identical for any number of threads.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/util/Half.h>
#include <torch/library.h>

#include <algorithm>
#include <optional>
#include <tuple>
#include <vector>

#include "patchmatch/cpu/patchmatch_dist.h"
#include "patchmatch/patchmatch_kernels.cuh"
#include "patchmatch/patchmatch_ops.h"

namespace flowmatch {
namespace pm {
namespace {

using cpu_dist::DistFn;

struct Field {
  int H, W, D;
};

// The cost functor handed to the shared per-pixel stages (SIMD, chosen at run time).
template <typename T>
struct CpuDist {
  int D;
  DistFn<T> fn;
  float operator()(const T* a, const T* b, float bound) const { return fn(a, b, D, bound); }
};

int band_rows(int H) { return std::max(8, (H + 15) / 16); }

template <typename T>
inline void init_pixels(const T* a, const T* b, Field f, const CpuDist<T>& dist, int window, const int* guess,
                        int64_t seed, int64_t p0, int64_t p1, int* U, int* V, float* C) {
  for (int64_t p = p0; p < p1; ++p) init_pixel(a, b, f.W, f.H, dist, window, guess, seed, p, U, V, C);
}

// One pass over rows [y0, y1).  `snap_*` hold the neighbouring band's boundary row (or nullptr).
// The band is walked in column tiles (all rows of a tile, then the next tile) so that the part of
// B being read stays in cache.  Every pixel depends only on its left and upper neighbours (right
// and lower on backward passes), which any such order has finished first: the result is the same
// as a plain row-by-row scan.
constexpr int kTileCols = 32;

template <typename T>
inline void band_pass(const T* a, const T* b, Field f, const CpuDist<T>& dist, int y0, int y1, bool forward, int iter,
                      int radius, int64_t seed, int* U, int* V, float* C, const int* snap_u, const int* snap_v) {
  const int W = f.W, H = f.H, D = f.D;
  const int tiles = (W + kTileCols - 1) / kTileCols;
  for (int ti = 0; ti < tiles; ++ti) {
    const int tile = forward ? ti : tiles - 1 - ti;
    const int x0 = tile * kTileCols, x1 = std::min(W, x0 + kTileCols);
    for (int yi = 0; yi < y1 - y0; ++yi) {
      const int y = forward ? y0 + yi : y1 - 1 - yi;
      const int ny = forward ? y - 1 : y + 1;  // vertical neighbour row
      const bool ny_in_band = ny >= y0 && ny < y1;
      const bool ny_snap = !ny_in_band && ny >= 0 && ny < H && snap_u != nullptr;
      for (int xi = 0; xi < x1 - x0; ++xi) {
        const int x = forward ? x0 + xi : x1 - 1 - xi;
        const int64_t p = static_cast<int64_t>(y) * W + x;
        const T* a_pix = a + p * D;
        Best best{U[p], V[p], C[p]};
        // Candidates: the horizontal neighbour, then the vertical one (in the band or snapshot).
        int cu[2], cv[2], n = 0;
        const int nx = forward ? x - 1 : x + 1;
        if (nx >= 0 && nx < W) {
          const int64_t q = static_cast<int64_t>(y) * W + nx;
          cu[n] = U[q];
          cv[n++] = V[q];
        }
        if (ny_in_band) {
          const int64_t q = static_cast<int64_t>(ny) * W + x;
          cu[n] = U[q];
          cv[n++] = V[q];
        } else if (ny_snap) {
          cu[n] = snap_u[x];
          cv[n++] = snap_v[x];
        }
        propagate_pixel(a_pix, b, x, y, W, H, dist, cu, cv, n, true, seed, iter, radius, best);
        U[p] = best.u;
        V[p] = best.v;
        C[p] = best.cost;
      }
    }
  }
}

template <typename T>
inline void finish_pixels(const T* a, const T* b, Field f, const CpuDist<T>& dist, bool subpix, int64_t p0,
                          int64_t p1, const int* U, const int* V, const float* C, float* flow, float* cost) {
  for (int64_t p = p0; p < p1; ++p) finish_pixel(a, b, f.W, f.H, dist, subpix, p, U, V, C, flow, cost);
}

template <typename T>
inline void run(const T* a, const T* b, Field f, int iterations, int radius, int window, const int* guess, int64_t seed,
                bool subpix, float* flow, float* cost) {
  const int64_t n = static_cast<int64_t>(f.H) * f.W;
  static const DistFn<T> fn = cpu_dist::pick_dist<T>();
  const CpuDist<T> dist{f.D, fn};
  std::vector<int> U(n), V(n);
  std::vector<float> C(n);
  // Small problems run on one thread: waking the pool costs more than it saves (and much more on a
  // busy machine).  Chunks never change the result, only who computes it.
  const bool parallel = static_cast<double>(n) * f.D * (iterations + 1) > static_cast<double>(1 << 23);
  const int64_t pixel_grain = parallel ? 2048 : n;
  at::parallel_for(0, n, pixel_grain, [&](int64_t p0, int64_t p1) {
    init_pixels(a, b, f, dist, window, guess, seed, p0, p1, U.data(), V.data(), C.data());
  });
  const int rows = band_rows(f.H);
  const int nb = (f.H + rows - 1) / rows;
  std::vector<int> snap_u(static_cast<size_t>(nb) * f.W), snap_v(static_cast<size_t>(nb) * f.W);
  for (int it = 0; it < iterations; ++it) {
    const bool forward = it % 2 == 0;
    // Snapshot, for band k, the row next to it in the band it reads from.
    for (int k = 0; k < nb; ++k) {
      const int ny = forward ? k * rows - 1 : std::min(f.H, (k + 1) * rows);
      if (ny < 0 || ny >= f.H) continue;
      std::copy_n(U.data() + static_cast<int64_t>(ny) * f.W, f.W, snap_u.data() + static_cast<int64_t>(k) * f.W);
      std::copy_n(V.data() + static_cast<int64_t>(ny) * f.W, f.W, snap_v.data() + static_cast<int64_t>(k) * f.W);
    }
    at::parallel_for(0, nb, parallel ? 1 : nb, [&](int64_t k0, int64_t k1) {
      for (int64_t k = k0; k < k1; ++k) {
        const int y0 = static_cast<int>(k) * rows, y1 = std::min(f.H, y0 + rows);
        band_pass(a, b, f, dist, y0, y1, forward, it, radius, seed, U.data(), V.data(), C.data(),
                  snap_u.data() + k * f.W, snap_v.data() + k * f.W);
      }
    });
  }
  at::parallel_for(0, n, pixel_grain, [&](int64_t p0, int64_t p1) {
    finish_pixels(a, b, f, dist, subpix, p0, p1, U.data(), V.data(), C.data(), flow, cost);
  });
}

std::tuple<at::Tensor, at::Tensor> patchmatch_cpu(const at::Tensor& desc_a, const at::Tensor& desc_b,
                                                  int64_t iterations, int64_t radius, int64_t window, int64_t seed,
                                                  bool subpixel, const std::optional<at::Tensor>& init) {
  check_inputs(desc_a, desc_b, iterations, radius, window, init);
  TORCH_CHECK(desc_a.device().is_cpu() && desc_b.device().is_cpu(), "patchmatch (CPU kernel): descriptors are on ",
              desc_a.device(), " and ", desc_b.device());
  const int64_t H = desc_a.size(0), W = desc_a.size(1), D = desc_a.size(2);
  at::Tensor guess;
  if (init.has_value() && init->defined()) guess = init->contiguous();
  const int* guess_ptr = guess.defined() ? guess.const_data_ptr<int>() : nullptr;
  const at::Tensor a = desc_a.contiguous(), b = desc_b.contiguous();
  at::Tensor flow = at::empty({H, W, 2}, a.options().dtype(at::kFloat));
  at::Tensor cost = at::empty({H, W}, a.options().dtype(at::kFloat));
  const Field f{static_cast<int>(H), static_cast<int>(W), static_cast<int>(D)};
  AT_DISPATCH_SWITCH(a.scalar_type(), "patchmatch_cpu", AT_DISPATCH_CASE(at::kFloat, [&] {
                       run(a.const_data_ptr<scalar_t>(), b.const_data_ptr<scalar_t>(), f, static_cast<int>(iterations),
                           static_cast<int>(radius), static_cast<int>(window), guess_ptr, seed, subpixel,
                           flow.mutable_data_ptr<float>(), cost.mutable_data_ptr<float>());
                     }) AT_DISPATCH_CASE(at::kHalf, [&] {
                       run(a.const_data_ptr<scalar_t>(), b.const_data_ptr<scalar_t>(), f, static_cast<int>(iterations),
                           static_cast<int>(radius), static_cast<int>(window), guess_ptr, seed, subpixel,
                           flow.mutable_data_ptr<float>(), cost.mutable_data_ptr<float>());
                     }));
  return {flow, cost};
}

}  // namespace
}  // namespace pm
}  // namespace flowmatch

TORCH_LIBRARY_IMPL(flowmatch, CPU, m) { m.impl("patchmatch", &flowmatch::pm::patchmatch_cpu); }
