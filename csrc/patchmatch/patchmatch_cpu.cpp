// PatchMatch on the CPU (OpenMP through at::parallel_for).
//
// Parallel but deterministic: the image is cut into row bands whose height depends only on the
// image height.  Each band is scanned serially (left-to-right/top-down on even iterations,
// reversed on odd ones), so propagation inside a band is the classic sequential one.  The first
// row of a band reads its neighbour in the previous band from a snapshot taken before the pass,
// never from a band another thread is writing.  Random numbers are hashes of (seed, pixel,
// iteration, draw).  Results are therefore identical for any number of threads.
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/util/Half.h>
#include <torch/library.h>

#include <immintrin.h>

#include <algorithm>
#include <limits>
#include <optional>
#include <tuple>
#include <vector>

#include "patchmatch/patchmatch.h"
#include "patchmatch/patchmatch_checks.h"

namespace flowmatch {
namespace {

using pm::Best;

struct Field {
  int H, W, D;
};

// ---- SIMD squared distances, chosen once at run time by what the CPU supports ----------------
// (the extension is built without -march flags, so each variant carries its own target.)

__attribute__((target("avx512f,avx512bw,avx512vl"))) inline float hsum512(__m512 v) { return _mm512_reduce_add_ps(v); }

// Loads 16 lanes of T as floats (masked for the tail).
__attribute__((target("avx512f,avx512bw,avx512vl"))) inline __m512 load16(const float* p, __mmask16 m) {
  return _mm512_maskz_loadu_ps(m, p);
}
__attribute__((target("avx512f,avx512bw,avx512vl"))) inline __m512 load16(const c10::Half* p, __mmask16 m) {
  return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p));
}

template <typename T>
__attribute__((target("avx512f,avx512bw,avx512vl"))) float dist_avx512(const T* a, const T* b, int D, float bound) {
  __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
  int d = 0;
  // Blocks of 64 values (4 vectors), then check the bound: early exit never changes the winner.
  for (; d + 64 <= D; d += 64) {
    for (int k = 0; k < 64; k += 32) {
      const __m512 x0 = _mm512_sub_ps(load16(a + d + k, 0xFFFF), load16(b + d + k, 0xFFFF));
      const __m512 x1 = _mm512_sub_ps(load16(a + d + k + 16, 0xFFFF), load16(b + d + k + 16, 0xFFFF));
      acc0 = _mm512_fmadd_ps(x0, x0, acc0);
      acc1 = _mm512_fmadd_ps(x1, x1, acc1);
    }
    if (d + 64 < D) {
      const float partial = hsum512(_mm512_add_ps(acc0, acc1));
      if (partial > bound) return partial;
    }
  }
  for (; d < D; d += 16) {
    const int left = D - d;
    const __mmask16 m = left >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << left) - 1u);
    const __m512 x = _mm512_sub_ps(load16(a + d, m), load16(b + d, m));
    acc0 = _mm512_fmadd_ps(x, x, acc0);
  }
  return hsum512(_mm512_add_ps(acc0, acc1));
}

__attribute__((target("avx2,fma"))) inline __m256 load8(const float* p) { return _mm256_loadu_ps(p); }
__attribute__((target("avx2,fma,f16c"))) inline __m256 load8(const c10::Half* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

template <typename T>
__attribute__((target("avx2,fma,f16c"))) float dist_avx2(const T* a, const T* b, int D, float bound) {
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  int d = 0;
  for (; d + 16 <= D; d += 16) {
    const __m256 x0 = _mm256_sub_ps(load8(a + d), load8(b + d));
    const __m256 x1 = _mm256_sub_ps(load8(a + d + 8), load8(b + d + 8));
    acc0 = _mm256_fmadd_ps(x0, x0, acc0);
    acc1 = _mm256_fmadd_ps(x1, x1, acc1);
    if ((d & 63) == 48 && d + 16 < D) {
      alignas(32) float t[8];
      _mm256_store_ps(t, _mm256_add_ps(acc0, acc1));
      const float partial = t[0] + t[1] + t[2] + t[3] + t[4] + t[5] + t[6] + t[7];
      if (partial > bound) return partial;
    }
  }
  alignas(32) float t[8];
  _mm256_store_ps(t, _mm256_add_ps(acc0, acc1));
  float total = t[0] + t[1] + t[2] + t[3] + t[4] + t[5] + t[6] + t[7];
  for (; d < D; ++d) {
    const float x = static_cast<float>(a[d]) - static_cast<float>(b[d]);
    total += x * x;
  }
  return total;
}

template <typename T>
float dist_portable(const T* a, const T* b, int D, float bound) {
  return pm::sq_dist(a, b, D, bound);
}

template <typename T>
using DistFn = float (*)(const T*, const T*, int, float);

template <typename T>
DistFn<T> pick_dist() {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl"))
    return &dist_avx512<T>;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c"))
    return &dist_avx2<T>;
  return &dist_portable<T>;
}

// The cost functor handed to the shared helpers of patchmatch.h.
template <typename T>
struct CpuDist {
  int D;
  DistFn<T> fn;
  float operator()(const T* a, const T* b, float bound) const { return fn(a, b, D, bound); }
};

int band_rows(int H) { return std::max(8, (H + 15) / 16); }

template <typename T>
inline void init_pixels(const T* a, const T* b, Field f, const CpuDist<T>& dist, int window, const int* guess,
                        int64_t seed, int64_t p0, int64_t p1,
                        int* U, int* V, float* C) {
  const float inf = std::numeric_limits<float>::infinity();
  for (int64_t p = p0; p < p1; ++p) {
    const int y = static_cast<int>(p / f.W), x = static_cast<int>(p % f.W);
    int u, v;
    const int cu = guess ? guess[2 * p] : 0, cv = guess ? guess[2 * p + 1] : 0;
    pm::random_init(seed, x, y, f.W, f.H, window, cu, cv, u, v);
    U[p] = u;
    V[p] = v;
    C[p] = dist(a + p * f.D, b + (static_cast<int64_t>(y + v) * f.W + (x + u)) * f.D, inf);
  }
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
        const int nx = forward ? x - 1 : x + 1;
        if (nx >= 0 && nx < W) {
          const int64_t q = static_cast<int64_t>(y) * W + nx;
          pm::try_candidate(a_pix, b, x, y, W, H, dist, U[q], V[q], best);
        }
        if (ny_in_band) {
          const int64_t q = static_cast<int64_t>(ny) * W + x;
          pm::try_candidate(a_pix, b, x, y, W, H, dist, U[q], V[q], best);
        } else if (ny_snap) {
          pm::try_candidate(a_pix, b, x, y, W, H, dist, snap_u[x], snap_v[x], best);
        }
        pm::random_search(a_pix, b, x, y, W, H, dist, seed, iter, radius, best);
        U[p] = best.u;
        V[p] = best.v;
        C[p] = best.cost;
      }
    }
  }
}

template <typename T>
inline void finish_pixels(const T* a, const T* b, Field f, const CpuDist<T>& dist, bool subpix, int64_t p0, int64_t p1, const int* U,
                          const int* V, const float* C, float* flow, float* cost) {
  for (int64_t p = p0; p < p1; ++p) {
    const int y = static_cast<int>(p / f.W), x = static_cast<int>(p % f.W);
    float fu = static_cast<float>(U[p]), fv = static_cast<float>(V[p]);
    if (subpix) pm::subpixel(a + p * f.D, b, x, y, f.W, f.H, dist, Best{U[p], V[p], C[p]}, fu, fv);
    flow[2 * p] = fu;
    flow[2 * p + 1] = fv;
    cost[p] = C[p];
  }
}

template <typename T>
inline void run(const T* a, const T* b, Field f, int iterations, int radius, int window, const int* guess, int64_t seed,
                bool subpix, float* flow, float* cost) {
  const int64_t n = static_cast<int64_t>(f.H) * f.W;
  static const DistFn<T> fn = pick_dist<T>();
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
  pm::check_inputs(desc_a, desc_b, iterations, radius, window, init);
  const int64_t H = desc_a.size(0), W = desc_a.size(1), D = desc_a.size(2);
  at::Tensor guess;
  if (init.has_value() && init->defined()) guess = init->contiguous();
  const int* guess_ptr = guess.defined() ? guess.data_ptr<int>() : nullptr;
  const at::Tensor a = desc_a.contiguous(), b = desc_b.contiguous();
  at::Tensor flow = at::empty({H, W, 2}, a.options().dtype(at::kFloat));
  at::Tensor cost = at::empty({H, W}, a.options().dtype(at::kFloat));
  const Field f{static_cast<int>(H), static_cast<int>(W), static_cast<int>(D)};
  if (a.scalar_type() == at::kFloat) {
    run(a.data_ptr<float>(), b.data_ptr<float>(), f, static_cast<int>(iterations), static_cast<int>(radius),
            static_cast<int>(window), guess_ptr, seed, subpixel, flow.data_ptr<float>(), cost.data_ptr<float>());
  } else {
    run(a.data_ptr<c10::Half>(), b.data_ptr<c10::Half>(), f, static_cast<int>(iterations),
            static_cast<int>(radius), static_cast<int>(window), guess_ptr, seed, subpixel, flow.data_ptr<float>(),
            cost.data_ptr<float>());
  }
  return {flow, cost};
}

}  // namespace
}  // namespace flowmatch

TORCH_LIBRARY_IMPL(flowmatch, CPU, m) { m.impl("patchmatch", &flowmatch::patchmatch_cpu); }
