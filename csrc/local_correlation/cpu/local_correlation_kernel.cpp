// CPU kernels of the local correlation lookup (TORCH_LIBRARY_IMPL(flowmatch, CPU)).
//
// Both maps are copied once to N×H×W×C so that a pixel's channels are contiguous; each pixel then
// takes (2r + 2)² dot products of length C with f2 (AVX2 + FMA for float32 when the CPU has them,
// chosen at run time; plain loops otherwise and for float64) and combines them with the bilinear
// weights of local_correlation.h, the same per-element code the CUDA kernels run.  float16/bfloat16
// are computed in float32.  Work is split over (sample, row) pairs with at::parallel_for; the scatter
// into grad_f2 is split over (sample, channel block) instead, so no two threads write one element and
// the result does not depend on the thread count.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "local_correlation/cpu/local_correlation_simd.h"
#include "local_correlation/local_correlation_ops.h"

namespace fm_lc {
namespace {

// FLOWMATCH_LC_SIMD=none forces the plain loops (tests of the fallback; read once per process).
bool use_avx2() {
  static const bool ok = [] {
    bool hw = false;
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    hw = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
    const char* env = std::getenv("FLOWMATCH_LC_SIMD");
    return hw && !(env != nullptr && std::strcmp(env, "none") == 0);
  }();
  return ok;
}

template <typename A>
void dot_rows_plain(const A* a, const A* const* rows, int count, lc_index_t C, A* out) {
  for (int i = 0; i < count; ++i) {
    A s = A(0);
    for (lc_index_t c = 0; c < C; ++c) s += a[c] * rows[i][c];
    out[i] = s;
  }
}

template <typename A>
void weighted_sum_plain(const A* w, const A* const* rows, int count, lc_index_t C, A* out) {
  for (lc_index_t c = 0; c < C; ++c) out[c] = A(0);
  for (int i = 0; i < count; ++i)
    for (lc_index_t c = 0; c < C; ++c) out[c] += w[i] * rows[i][c];
}

template <typename A>
void axpy_plain(A alpha, const A* x, A* y, lc_index_t C) {
  for (lc_index_t c = 0; c < C; ++c) y[c] += alpha * x[c];
}

template <typename A>
struct Math {
  void (*dot_rows)(const A*, const A* const*, int, lc_index_t, A*) = &dot_rows_plain<A>;
  void (*weighted_sum)(const A*, const A* const*, int, lc_index_t, A*) = &weighted_sum_plain<A>;
  void (*axpy)(A, const A*, A*, lc_index_t) = &axpy_plain<A>;
};

template <typename A>
Math<A> math() {
  return Math<A>();
}
template <>
Math<float> math<float>() {
  Math<float> m;
  if (use_avx2()) {
    m.dot_rows = &dot_rows_avx2;
    m.weighted_sum = &weighted_sum_avx2;
    m.axpy = &axpy_avx2;
  }
  return m;
}

// Calls fn(n, y) for every row of every sample, rows in parallel.
template <typename F>
void parallel_rows(const LcParams& P, const F& fn) {
  at::parallel_for(0, P.N * P.H, 1, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) fn(t / P.H, t % P.H);
  });
}

// Per-thread scratch of one pixel's grid.
template <typename A>
struct Grid {
  std::vector<A> d, vals, g;
  std::vector<const A*> rows;
  std::vector<int> idx;
  explicit Grid(const LcParams& P)
      : d(size_t(P.G * P.G)), vals(size_t(P.G * P.G)), g(size_t(P.K * P.K)), rows(size_t(P.G * P.G)),
        idx(size_t(P.G * P.G)) {}
};

template <typename A>
LcCorner<A> corner_at(const LcParams& P, const A* coords, lc_index_t n, lc_index_t y, lc_index_t x) {
  return lc_corner<A>(coords[lc_coord_offset(P, n, 0, y, x)], coords[lc_coord_offset(P, n, 1, y, x)], P.r);
}

// The G×G dot products of the f1 pixel vector with f2 (sample base f2n, N×H2×W2×C layout), 0 outside.
template <typename A>
void grid_dots(const LcParams& P, const LcCorner<A>& cr, const A* f1px, const A* f2n, const Math<A>& M,
               Grid<A>& s) {
  std::fill(s.d.begin(), s.d.end(), A(0));
  int m = 0;
  for (lc_index_t gy = 0; gy < P.G; ++gy)
    for (lc_index_t gx = 0; gx < P.G; ++gx)
      if (lc_grid_inside(P, cr, gx, gy)) {
        s.rows[m] = f2n + ((cr.y0 + gy) * P.W2 + cr.x0 + gx) * P.C;
        s.idx[m++] = int(gy * P.G + gx);
      }
  M.dot_rows(f1px, s.rows.data(), m, P.C, s.vals.data());
  for (int i = 0; i < m; ++i) s.d[s.idx[i]] = s.vals[i];
}

at::Tensor nhwc(const at::Tensor& t, at::ScalarType st) { return t.to(st).permute({0, 2, 3, 1}).contiguous(); }

template <typename A>
at::Tensor forward_typed(const at::Tensor& f1, const at::Tensor& f2, const at::Tensor& coords, const LcParams& P) {
  const at::ScalarType st = c10::CppTypeToScalarType<A>::value;
  const at::Tensor a1 = nhwc(f1, st), a2 = nhwc(f2, st), cc = coords.to(st).contiguous();
  at::Tensor out = at::empty({P.N, P.K * P.K, P.H, P.W}, f1.options().dtype(st));
  const A *p1 = a1.const_data_ptr<A>(), *p2 = a2.const_data_ptr<A>(), *pc = cc.const_data_ptr<A>();
  A* po = out.mutable_data_ptr<A>();
  const A scale = A(1) / std::sqrt(A(P.C));
  const Math<A> M = math<A>();
  at::parallel_for(0, P.N * P.H, 1, [&](int64_t begin, int64_t end) {
    Grid<A> s(P);
    for (int64_t t = begin; t < end; ++t) {
      const lc_index_t n = t / P.H, y = t % P.H;
      for (lc_index_t x = 0; x < P.W; ++x) {
        const LcCorner<A> cr = corner_at(P, pc, n, y, x);
        grid_dots(P, cr, p1 + ((n * P.H + y) * P.W + x) * P.C, p2 + n * P.H2 * P.W2 * P.C, M, s);
        for (lc_index_t ox = 0; ox < P.K; ++ox)
          for (lc_index_t oy = 0; oy < P.K; ++oy)
            po[lc_out_offset(P, n, ox * P.K + oy, y, x)] = scale * lc_combine(s.d.data(), P.G, ox, oy, cr.fx, cr.fy);
      }
    }
  });
  return out;
}

template <typename A>
std::tuple<at::Tensor, at::Tensor, at::Tensor> backward_typed(const at::Tensor& grad, const at::Tensor& f1,
                                                              const at::Tensor& f2, const at::Tensor& coords,
                                                              const LcParams& P, std::array<bool, 3> mask) {
  const at::ScalarType st = c10::CppTypeToScalarType<A>::value;
  const auto opts = f1.options().dtype(st);
  // Only what the requested gradients read: f1 for grad_f2 and grad_coords, f2 for grad_f1 and grad_coords.
  const at::Tensor a1 = (mask[1] || mask[2]) ? nhwc(f1, st) : at::Tensor();
  const at::Tensor a2 = (mask[0] || mask[2]) ? nhwc(f2, st) : at::Tensor();
  const at::Tensor cc = coords.to(st).contiguous(), gg = grad.to(st).contiguous();
  const A *p1 = a1.defined() ? a1.const_data_ptr<A>() : nullptr, *p2 = a2.defined() ? a2.const_data_ptr<A>() : nullptr,
          *pc = cc.const_data_ptr<A>(), *pg = gg.const_data_ptr<A>();
  const A scale = A(1) / std::sqrt(A(P.C));
  const Math<A> M = math<A>();
  const lc_index_t G2 = P.G * P.G, K2 = P.K * P.K;

  // Scaled weight of every grid position of every pixel (0 outside f2): the transpose of lc_combine.
  at::Tensor wts = at::empty({(mask[0] || mask[1]) ? P.N * P.H * P.W : 0, G2}, opts);
  A* pw = wts.mutable_data_ptr<A>();
  if (mask[0] || mask[1]) parallel_rows(P, [&](lc_index_t n, lc_index_t y) {
    std::vector<A> g(static_cast<size_t>(K2));
    for (lc_index_t x = 0; x < P.W; ++x) {
      const LcCorner<A> cr = corner_at(P, pc, n, y, x);
      for (lc_index_t k = 0; k < K2; ++k) g[k] = pg[lc_out_offset(P, n, k, y, x)];
      A* w = pw + ((n * P.H + y) * P.W + x) * G2;
      for (lc_index_t gy = 0; gy < P.G; ++gy)
        for (lc_index_t gx = 0; gx < P.G; ++gx)
          w[gy * P.G + gx] = lc_grid_inside(P, cr, gx, gy) ? scale * lc_spread(g.data(), P.K, gx, gy, cr.fx, cr.fy) : A(0);
    }
  });

  // Gradients not asked for are zeros of the right shape (the schema returns three tensors).
  at::Tensor g1 = mask[0] ? at::empty({P.N, P.H, P.W, P.C}, opts) : at::Tensor();
  at::Tensor g2 = mask[1] ? at::zeros({P.N, P.H2, P.W2, P.C}, opts) : at::Tensor();
  at::Tensor gc = at::zeros({P.N, 2, P.H, P.W}, opts);
  if (mask[0]) {  // grad_f1[pixel] = Σ_g w_g · f2[position g]
    A* o1 = g1.mutable_data_ptr<A>();
    at::parallel_for(0, P.N * P.H, 1, [&](int64_t begin, int64_t end) {
      Grid<A> s(P);  // s.vals: the weights of the positions inside, s.rows: their f2 rows
      for (int64_t t = begin; t < end; ++t) {
        const lc_index_t n = t / P.H, y = t % P.H;
        for (lc_index_t x = 0; x < P.W; ++x) {
          const LcCorner<A> cr = corner_at(P, pc, n, y, x);
          const A* w = pw + ((n * P.H + y) * P.W + x) * G2;
          int m = 0;
          for (lc_index_t gy = 0; gy < P.G; ++gy)
            for (lc_index_t gx = 0; gx < P.G; ++gx)
              if (lc_grid_inside(P, cr, gx, gy)) {
                s.vals[m] = w[gy * P.G + gx];
                s.rows[m++] = p2 + ((n * P.H2 + cr.y0 + gy) * P.W2 + cr.x0 + gx) * P.C;
              }
          M.weighted_sum(s.vals.data(), s.rows.data(), m, P.C, o1 + ((n * P.H + y) * P.W + x) * P.C);
        }
      }
    });
  }
  if (mask[1]) {  // grad_f2[position g] += w_g · f1[pixel], split over (sample, channel block)
    A* o2 = g2.mutable_data_ptr<A>();
    // Enough blocks to keep every thread busy, each at least 64 channels (long axpy runs).
    const lc_index_t want = std::max<lc_index_t>(1, (2 * at::get_num_threads() + P.N - 1) / P.N);
    const lc_index_t blocks = std::max<lc_index_t>(1, std::min<lc_index_t>(want, P.C / 64));
    const lc_index_t cb = (P.C + blocks - 1) / blocks;
    at::parallel_for(0, P.N * blocks, 1, [&](int64_t begin, int64_t end) {
      for (int64_t t = begin; t < end; ++t) {
        const lc_index_t n = t / blocks, c0 = (t % blocks) * cb, cn = std::min<lc_index_t>(cb, P.C - c0);
        if (cn <= 0) continue;
        for (lc_index_t y = 0; y < P.H; ++y)
          for (lc_index_t x = 0; x < P.W; ++x) {
            const LcCorner<A> cr = corner_at(P, pc, n, y, x);
            const A* w = pw + ((n * P.H + y) * P.W + x) * G2;
            const A* src = p1 + ((n * P.H + y) * P.W + x) * P.C + c0;
            for (lc_index_t gy = 0; gy < P.G; ++gy)
              for (lc_index_t gx = 0; gx < P.G; ++gx)
                if (lc_grid_inside(P, cr, gx, gy))
                  M.axpy(w[gy * P.G + gx], src, o2 + ((n * P.H2 + cr.y0 + gy) * P.W2 + cr.x0 + gx) * P.C + c0, cn);
          }
      }
    });
  }
  if (mask[2]) {  // grad_coords: the grid again, through the derivatives of the bilinear weights
    A* oc = gc.mutable_data_ptr<A>();
    at::parallel_for(0, P.N * P.H, 1, [&](int64_t begin, int64_t end) {
      Grid<A> s(P);
      for (int64_t t = begin; t < end; ++t) {
        const lc_index_t n = t / P.H, y = t % P.H;
        for (lc_index_t x = 0; x < P.W; ++x) {
          const LcCorner<A> cr = corner_at(P, pc, n, y, x);
          A sx = A(0), sy = A(0);
          if (cr.valid) {
            grid_dots(P, cr, p1 + ((n * P.H + y) * P.W + x) * P.C, p2 + n * P.H2 * P.W2 * P.C, M, s);
            for (lc_index_t ox = 0; ox < P.K; ++ox)
              for (lc_index_t oy = 0; oy < P.K; ++oy) {
                A dx, dy;
                lc_coord_derivs(s.d.data(), P.G, ox, oy, cr.fx, cr.fy, &dx, &dy);
                const A gk = pg[lc_out_offset(P, n, ox * P.K + oy, y, x)];
                sx += gk * dx;
                sy += gk * dy;
              }
          }
          oc[lc_coord_offset(P, n, 0, y, x)] = scale * sx;
          oc[lc_coord_offset(P, n, 1, y, x)] = scale * sy;
        }
      }
    });
  }
  const auto back = [](const at::Tensor& g, const at::Tensor& like) {
    return g.defined() ? g.permute({0, 3, 1, 2}).to(like.scalar_type()).contiguous() : at::zeros(like.sizes(), like.options());
  };
  return {back(g1, f1), back(g2, f2), gc.to(coords.scalar_type())};
}

void check_cpu(const at::Tensor& t, const char* name) {
  TORCH_CHECK(t.device().is_cpu(), "local_correlation (CPU kernel): ", name, " is on ", t.device());
}

at::Tensor forward_cpu(const at::Tensor& f1, const at::Tensor& f2, const at::Tensor& coords, int64_t radius) {
  const LcParams P = check_inputs(f1, f2, coords, radius);
  check_cpu(f1, "f1");
  if (f1.scalar_type() == at::kDouble) return forward_typed<double>(f1, f2, coords, P);
  return forward_typed<float>(f1, f2, coords, P).to(f1.scalar_type());  // half types in float32
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> backward_cpu(const at::Tensor& grad, const at::Tensor& f1,
                                                            const at::Tensor& f2, const at::Tensor& coords,
                                                            int64_t radius, std::array<bool, 3> mask) {
  const LcParams P = check_inputs(f1, f2, coords, radius);
  check_grad(grad, f1, P);
  check_cpu(f1, "f1");
  if (f1.scalar_type() == at::kDouble) return backward_typed<double>(grad, f1, f2, coords, P, mask);
  return backward_typed<float>(grad, f1, f2, coords, P, mask);
}

}  // namespace
}  // namespace fm_lc

TORCH_LIBRARY_IMPL(flowmatch, CPU, m) {
  m.impl("local_correlation", &fm_lc::forward_cpu);
  m.impl("local_correlation_backward", &fm_lc::backward_cpu);
}
