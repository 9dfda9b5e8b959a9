// The interpolation itself on plain arrays (CPU): prefilter, per-seed local models fitted to each
// seed's K geodesically nearest seeds, and the dense flow.  The torch op (interpolation_kernel.cpp)
// checks its arguments and calls interpolate_seeds.
#pragma once

#include <algorithm>
#include <memory>
#include <chrono>
#include <cmath>
#include <utility>
#include <vector>

#include "parallel.h"
#include "seed_graph.h"
#include "voronoi.h"

namespace flowmatch {
namespace interp {

// Per-seed model: flow(x, y) = (a0 + a1·dx + a2·dy, b0 + b1·dx + b2·dy), dx, dy relative to the seed.
struct Model {
  float a0, a1, a2, b0, b1, b2;
};

// Weighted least squares in double; weights exp(-coef · distance).
inline Model fit(const Seeds& s, int src, const std::vector<std::pair<int, float>>& nb, float coef, bool affine) {
  double sw = 0, su = 0, sv = 0;
  double m[3][3] = {{0, 0, 0}, {0, 0, 0}, {0, 0, 0}}, ru[3] = {0, 0, 0}, rv[3] = {0, 0, 0};
  for (const auto& [j, d] : nb) {
    const double w = std::exp(-static_cast<double>(coef) * d) + 1e-12;  // never all-zero weights
    const double dx = s.x[j] - s.x[src], dy = s.y[j] - s.y[src];
    const double f[3] = {1.0, dx, dy};
    sw += w;
    su += w * s.u[j];
    sv += w * s.v[j];
    for (int r = 0; r < 3; ++r) {
      for (int q = 0; q < 3; ++q) m[r][q] += w * f[r] * f[q];
      ru[r] += w * f[r] * s.u[j];
      rv[r] += w * f[r] * s.v[j];
    }
  }
  Model nw{static_cast<float>(su / sw), 0.f, 0.f, static_cast<float>(sv / sw), 0.f, 0.f};
  if (!affine || nb.size() < 3) return nw;
  // Solve the 3×3 normal equations by Cramer's rule; fall back to Nadaraya-Watson when the
  // neighbours are (nearly) collinear.
  auto det3 = [](const double a[3][3]) {
    return a[0][0] * (a[1][1] * a[2][2] - a[1][2] * a[2][1]) - a[0][1] * (a[1][0] * a[2][2] - a[1][2] * a[2][0]) +
           a[0][2] * (a[1][0] * a[2][1] - a[1][1] * a[2][0]);
  };
  const double det = det3(m);
  const double scale = m[0][0] * m[1][1] * m[2][2];
  if (!(std::fabs(det) > 1e-6 * std::fabs(scale)) || !std::isfinite(det)) return nw;
  double sol_u[3], sol_v[3];
  for (int k = 0; k < 3; ++k) {
    double mu[3][3], mv[3][3];
    for (int r = 0; r < 3; ++r)
      for (int q = 0; q < 3; ++q) {
        mu[r][q] = q == k ? ru[r] : m[r][q];
        mv[r][q] = q == k ? rv[r] : m[r][q];
      }
    sol_u[k] = det3(mu) / det;
    sol_v[k] = det3(mv) / det;
  }
  Model aff{static_cast<float>(sol_u[0]), static_cast<float>(sol_u[1]), static_cast<float>(sol_u[2]),
            static_cast<float>(sol_v[0]), static_cast<float>(sol_v[1]), static_cast<float>(sol_v[2])};
  if (!std::isfinite(aff.a0) || !std::isfinite(aff.a1) || !std::isfinite(aff.a2) || !std::isfinite(aff.b0) ||
      !std::isfinite(aff.b1) || !std::isfinite(aff.b2))
    return nw;
  return aff;
}

// fn(seed, neighbours) for every seed, on all threads (each seed's result depends on it alone).
template <typename Fn>
void for_each_seed_knn(const Graph& g, int M, int K, Fn fn) {
  struct Scratch {
    KnnScratch knn;
    std::vector<std::pair<int, float>> nb;
  };
  parallel_blocks(
      M, 128, [M] { return std::make_unique<Scratch>(Scratch{KnnScratch(M), {}}); },
      [&](std::unique_ptr<Scratch>& s, int64_t i0, int64_t i1) {
        for (int i = static_cast<int>(i0); i < i1; ++i) {
          knn(g, i, K, s->knn, s->nb);
          fn(i, s->nb);
        }
      });
}

// Seeds that pass the prefilter: flow within th px of the median flow of their K nearest seeds.
inline std::vector<char> prefilter(const Seeds& s, const Graph& g, int K, float th) {
  const int M = static_cast<int>(s.size());
  std::vector<char> keep(M, 1);
  for_each_seed_knn(g, M, K + 1, [&](int i, const std::vector<std::pair<int, float>>& nb) {
    if (nb.size() < 3) return;  // too isolated to judge
    thread_local std::vector<float> us, vs;
    us.clear();
    vs.clear();
    for (const auto& [j, d] : nb)
      if (j != i) {
        us.push_back(s.u[j]);
        vs.push_back(s.v[j]);
      }
    const size_t h = us.size() / 2;
    std::nth_element(us.begin(), us.begin() + h, us.end());
    std::nth_element(vs.begin(), vs.begin() + h, vs.end());
    const float du = s.u[i] - us[h], dv = s.v[i] - vs[h];
    if (du * du + dv * dv > th * th) keep[i] = 0;
  });
  return keep;
}

struct Params {
  int nn;             // neighbours per model
  float coef_kernel;  // weights exp(-coef_kernel · distance)
  bool affine;        // affine (else Nadaraya-Watson) models
  int pref_nn;        // prefilter neighbours (0 = no prefilter)
  float pref_th;      // prefilter threshold (px)
};

// Wall seconds per phase, for benchmarks and profiling.
struct PhaseTimes {
  double voronoi = 0, graph = 0, prefilter = 0, update = 0, models = 0, output = 0;
};

class Stopwatch {
 public:
  explicit Stopwatch(PhaseTimes* t) : t_(t), last_(std::chrono::steady_clock::now()) {}
  void lap(double PhaseTimes::*field) {
    if (t_ == nullptr) return;
    const auto now = std::chrono::steady_clock::now();
    t_->*field += std::chrono::duration<double>(now - last_).count();
    last_ = now;
  }

 private:
  PhaseTimes* t_;
  std::chrono::steady_clock::time_point last_;
};

// Dense flow (H×W×2, written to `flow`, zeros where no seed is reachable) and the prefilter's
// verdict per seed (`kept`, M entries).  min_cost: the smallest value of `cost`.
inline void interpolate_seeds(Seeds s, const float* cost, int H, int W, float min_cost, const Params& prm,
                              float* flow, bool* kept, PhaseTimes* times = nullptr) {
  Stopwatch clock(times);
  const int M = static_cast<int>(s.size());
  Cells c = voronoi(s, cost, H, W, min_cost);
  clock.lap(&PhaseTimes::voronoi);
  std::fill(kept, kept + M, true);
  if (prm.pref_nn > 0) {
    const Graph g0 = seed_graph(c, cost, H, W, M);
    clock.lap(&PhaseTimes::graph);
    const std::vector<char> keep = prefilter(s, g0, prm.pref_nn, prm.pref_th);
    clock.lap(&PhaseTimes::prefilter);
    Seeds t;
    for (int i = 0; i < M; ++i) {
      if (!keep[i]) continue;
      t.x.push_back(s.x[i]);
      t.y.push_back(s.y[i]);
      t.u.push_back(s.u[i]);
      t.v.push_back(s.v[i]);
    }
    if (t.size() > 0 && t.size() < s.size()) {  // never filter everything away
      for (int i = 0; i < M; ++i) kept[i] = keep[i] != 0;
      s = std::move(t);
      // the cells of the kept seeds: only the dropped seeds' cells change (or all, when the cost
      // map has zero or vanishing steps)
      drop_seeds(c, keep, s, cost, H, W, min_cost);
      clock.lap(&PhaseTimes::update);
    }
  }
  const int Ms = static_cast<int>(s.size());
  const Graph g = seed_graph(c, cost, H, W, Ms);
  clock.lap(&PhaseTimes::graph);
  std::vector<Model> models(Ms);
  for_each_seed_knn(g, Ms, prm.nn, [&](int i, const std::vector<std::pair<int, float>>& nb) {
    models[i] = fit(s, i, nb, prm.coef_kernel, prm.affine);
  });
  clock.lap(&PhaseTimes::models);
  parallel_blocks(H, 16, [&](int64_t y0, int64_t y1) {
    for (int y = static_cast<int>(y0); y < y1; ++y) {
      const int* label = c.label.data() + static_cast<int64_t>(y) * W;
      float* o = flow + static_cast<int64_t>(y) * W * 2;
      for (int x = 0; x < W; ++x) {
        const int l = label[x];
        if (l < 0) {
          o[2 * x] = o[2 * x + 1] = 0.f;
          continue;
        }
        const Model& m = models[l];
        const float dx = static_cast<float>(x - s.x[l]), dy = static_cast<float>(y - s.y[l]);
        o[2 * x] = m.a0 + m.a1 * dx + m.a2 * dy;
        o[2 * x + 1] = m.b0 + m.b1 * dx + m.b2 * dy;
      }
    }
  });
  clock.lap(&PhaseTimes::output);
}

}  // namespace interp
}  // namespace flowmatch
