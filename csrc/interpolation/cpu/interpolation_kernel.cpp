// Edge-aware sparse-to-dense interpolation of flow matches (in the spirit of EpicFlow), CPU.
//
// 1. Geodesic Voronoi cells: a multi-source Dijkstra over the 4-connected pixel grid, where the
//    step from pixel p to q costs (cost[p] + cost[q]) / 2 (cost = edge strength + a small
//    Euclidean term), gives every pixel its geodesically nearest seed and the distance to it.
// 2. Seed graph: two seeds are adjacent when their cells touch; the edge length is the shortest
//    geodesic path through the touching pixel pair.  Distances between seeds are approximated by
//    shortest paths in this graph (exact along cell boundaries, like EpicFlow's approximation).
// 3. Per seed, a Dijkstra on the seed graph finds its K nearest seeds; a model is fitted to them with
//    weights exp(-coef_kernel · distance): a locally weighted affine map of positions, or a
//    Nadaraya-Watson average.  Every pixel takes the model of its cell's seed, evaluated at itself.
// Optional prefilter (pref_nn > 0): seeds whose flow differs by more than pref_th px from the
// median flow of their pref_nn nearest seeds are dropped first.  Deterministic for any thread count.
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/ones.h>
#include <ATen/ops/zeros.h>
#include <torch/library.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <queue>
#include <tuple>
#include <utility>
#include <vector>

namespace flowmatch {
namespace interp {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

struct Seeds {
  std::vector<int> x, y;     // integer pixel position in image 1
  std::vector<float> u, v;   // flow at the seed (pixels)
  size_t size() const { return x.size(); }
};

struct Cells {
  std::vector<int> label;    // nearest seed per pixel (-1 when unreachable)
  std::vector<float> dist;   // geodesic distance to it
};

// Multi-source Dijkstra on the pixel grid.  Ties in the heap are broken by pixel index so the
// labelling is deterministic.
Cells voronoi(const Seeds& s, const float* cost, int H, int W) {
  const int64_t n = static_cast<int64_t>(H) * W;
  Cells c{std::vector<int>(n, -1), std::vector<float>(n, kInf)};
  using Item = std::pair<float, int64_t>;
  std::priority_queue<Item, std::vector<Item>, std::greater<Item>> heap;
  for (size_t i = 0; i < s.size(); ++i) {
    const int64_t p = static_cast<int64_t>(s.y[i]) * W + s.x[i];
    if (c.label[p] < 0) {  // the first seed on a pixel wins; a duplicate gets no cell
      c.dist[p] = 0.f;
      c.label[p] = static_cast<int>(i);
      heap.emplace(0.f, p);
    }
  }
  while (!heap.empty()) {
    const auto [d, p] = heap.top();
    heap.pop();
    if (d > c.dist[p]) continue;
    const int y = static_cast<int>(p / W), x = static_cast<int>(p % W);
    const int64_t nbr[4] = {x > 0 ? p - 1 : -1, x < W - 1 ? p + 1 : -1, y > 0 ? p - W : -1, y < H - 1 ? p + W : -1};
    for (int64_t q : nbr) {
      if (q < 0) continue;
      const float nd = d + 0.5f * (cost[p] + cost[q]);
      if (nd < c.dist[q]) {
        c.dist[q] = nd;
        c.label[q] = c.label[p];
        heap.emplace(nd, q);
      }
    }
  }
  return c;
}

// Seed adjacency in CSR form.
struct Graph {
  std::vector<int64_t> start;  // size M + 1
  std::vector<int> to;
  std::vector<float> w;
};

Graph seed_graph(const Cells& c, const float* cost, int H, int W, int M) {
  std::vector<std::pair<uint64_t, float>> edges;
  auto add = [&](int64_t p, int64_t q) {
    const int a = c.label[p], b = c.label[q];
    if (a < 0 || b < 0 || a == b) return;
    const float len = c.dist[p] + c.dist[q] + 0.5f * (cost[p] + cost[q]);
    const uint64_t lo = static_cast<uint64_t>(std::min(a, b)), hi = static_cast<uint64_t>(std::max(a, b));
    edges.emplace_back(lo << 32 | hi, len);
  };
  for (int y = 0; y < H; ++y) {
    for (int x = 0; x < W; ++x) {
      const int64_t p = static_cast<int64_t>(y) * W + x;
      if (x < W - 1) add(p, p + 1);
      if (y < H - 1) add(p, p + W);
    }
  }
  std::sort(edges.begin(), edges.end());
  // Keep the shortest edge per seed pair (the first after sorting by key then length).
  std::vector<std::pair<uint64_t, float>> uniq;
  for (const auto& e : edges)
    if (uniq.empty() || uniq.back().first != e.first) uniq.push_back(e);
  Graph g;
  g.start.assign(static_cast<size_t>(M) + 1, 0);
  for (const auto& e : uniq) {
    ++g.start[(e.first >> 32) + 1];
    ++g.start[(e.first & 0xFFFFFFFFull) + 1];
  }
  for (int i = 0; i < M; ++i) g.start[i + 1] += g.start[i];
  g.to.resize(g.start[M]);
  g.w.resize(g.start[M]);
  std::vector<int64_t> fill(g.start.begin(), g.start.end() - 1);
  for (const auto& e : uniq) {
    const int a = static_cast<int>(e.first >> 32), b = static_cast<int>(e.first & 0xFFFFFFFFull);
    g.to[fill[a]] = b;
    g.w[fill[a]++] = e.second;
    g.to[fill[b]] = a;
    g.w[fill[b]++] = e.second;
  }
  return g;
}

// K nearest seeds of `src` on the seed graph (including src itself at distance 0), by Dijkstra.
// `dist` is scratch of size M filled with +inf; it is restored before returning.
void knn(const Graph& g, int src, int K, std::vector<float>& dist, std::vector<int>& touched,
         std::vector<std::pair<int, float>>& out) {
  using Item = std::pair<float, int>;
  std::priority_queue<Item, std::vector<Item>, std::greater<Item>> heap;
  out.clear();
  touched.clear();
  dist[src] = 0.f;
  touched.push_back(src);
  heap.emplace(0.f, src);
  while (!heap.empty() && static_cast<int>(out.size()) < K) {
    const auto [d, i] = heap.top();
    heap.pop();
    if (d > dist[i]) continue;
    out.emplace_back(i, d);
    for (int64_t e = g.start[i]; e < g.start[i + 1]; ++e) {
      const int j = g.to[e];
      const float nd = d + g.w[e];
      if (nd < dist[j]) {
        if (dist[j] == kInf) touched.push_back(j);
        dist[j] = nd;
        heap.emplace(nd, j);
      }
    }
  }
  for (int i : touched) dist[i] = kInf;
}

// Per-seed model: flow(x, y) = (a0 + a1·dx + a2·dy, b0 + b1·dx + b2·dy), dx, dy relative to the seed.
struct Model {
  float a0, a1, a2, b0, b1, b2;
};

Model fit(const Seeds& s, int src, const std::vector<std::pair<int, float>>& nb, float coef, bool affine) {
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

// Apply `fn(seed, neighbours)` to every seed in parallel, with per-chunk scratch.
template <typename Fn>
void for_each_seed_knn(const Graph& g, int M, int K, Fn fn) {
  at::parallel_for(0, M, 64, [&](int64_t i0, int64_t i1) {
    std::vector<float> dist(M, kInf);
    std::vector<int> touched;
    std::vector<std::pair<int, float>> nb;
    for (int64_t i = i0; i < i1; ++i) {
      knn(g, static_cast<int>(i), K, dist, touched, nb);
      fn(static_cast<int>(i), nb);
    }
  });
}

// Indices of the seeds that pass the prefilter.
std::vector<char> prefilter(const Seeds& s, const Graph& g, int K, float th) {
  const int M = static_cast<int>(s.size());
  std::vector<char> keep(M, 1);
  for_each_seed_knn(g, M, K + 1, [&](int i, const std::vector<std::pair<int, float>>& nb) {
    if (nb.size() < 3) return;  // too isolated to judge
    std::vector<float> us, vs;
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

std::tuple<at::Tensor, at::Tensor> interpolate_cpu(const at::Tensor& seeds_xy, const at::Tensor& seeds_flow,
                                                   const at::Tensor& cost_map, int64_t nn, double coef_kernel,
                                                   bool affine, int64_t pref_nn, double pref_th) {
  TORCH_CHECK(seeds_xy.dim() == 2 && seeds_xy.size(1) == 2 && seeds_xy.scalar_type() == at::kInt,
              "edge_aware_interpolate: seeds_xy must be M×2 int32 (x, y), got ", seeds_xy.sizes(), " ",
              seeds_xy.scalar_type());
  TORCH_CHECK(seeds_flow.dim() == 2 && seeds_flow.size(1) == 2 && seeds_flow.scalar_type() == at::kFloat &&
                  seeds_flow.size(0) == seeds_xy.size(0),
              "edge_aware_interpolate: seeds_flow must be M×2 float32 like seeds_xy, got ", seeds_flow.sizes());
  TORCH_CHECK(cost_map.dim() == 2 && cost_map.scalar_type() == at::kFloat,
              "edge_aware_interpolate: cost_map must be H×W float32, got ", cost_map.sizes());
  TORCH_CHECK(seeds_xy.device().is_cpu() && seeds_flow.device().is_cpu() && cost_map.device().is_cpu(),
              "edge_aware_interpolate: runs on the CPU only");
  TORCH_CHECK(nn >= 1, "edge_aware_interpolate: nn must be >= 1, got ", nn);
  // the kernels compute in float: a larger coef_kernel or pref_th would become inf (and the weights NaN)
  TORCH_CHECK(std::isfinite(coef_kernel) && coef_kernel >= 0 && coef_kernel <= FLT_MAX,
              "edge_aware_interpolate: coef_kernel must be finite, >= 0 and fit a float, got ", coef_kernel);
  TORCH_CHECK(pref_nn >= 0, "edge_aware_interpolate: pref_nn must be >= 0, got ", pref_nn);
  TORCH_CHECK(std::isfinite(pref_th) && pref_th >= 0 && pref_th <= FLT_MAX,
              "edge_aware_interpolate: pref_th must be finite, >= 0 and fit a float, got ", pref_th);
  const int64_t H = cost_map.size(0), W = cost_map.size(1), M = seeds_xy.size(0);
  TORCH_CHECK(H >= 1 && W >= 1 && H < (1 << 30) / W, "edge_aware_interpolate: bad cost_map size ", cost_map.sizes());
  TORCH_CHECK(M >= 1 && M < (1 << 30), "edge_aware_interpolate: need at least one seed, got ", M);
  // more neighbours than seeds means all of them: clamp before the int casts below (2^31 used to wrap)
  nn = std::min(nn, M);
  pref_nn = std::min(pref_nn, M);
  const at::Tensor xy = seeds_xy.contiguous(), fl = seeds_flow.contiguous(), cm = cost_map.contiguous();
  const int* pxy = xy.data_ptr<int>();
  const float* pfl = fl.data_ptr<float>();
  const float* cost = cm.data_ptr<float>();
  for (int64_t p = 0; p < H * W; ++p)
    TORCH_CHECK(std::isfinite(cost[p]) && cost[p] >= 0.f, "edge_aware_interpolate: cost_map must be finite and >= 0");
  Seeds s;
  for (int64_t i = 0; i < M; ++i) {
    TORCH_CHECK(pxy[2 * i] >= 0 && pxy[2 * i] < W && pxy[2 * i + 1] >= 0 && pxy[2 * i + 1] < H,
                "edge_aware_interpolate: seed ", i, " at (", pxy[2 * i], ", ", pxy[2 * i + 1], ") is outside the ",
                W, "×", H, " image");
    TORCH_CHECK(std::isfinite(pfl[2 * i]) && std::isfinite(pfl[2 * i + 1]),
                "edge_aware_interpolate: seed ", i, " has a non-finite flow");
    s.x.push_back(pxy[2 * i]);
    s.y.push_back(pxy[2 * i + 1]);
    s.u.push_back(pfl[2 * i]);
    s.v.push_back(pfl[2 * i + 1]);
  }
  const int h = static_cast<int>(H), w = static_cast<int>(W);
  at::Tensor kept = at::ones({M}, xy.options().dtype(at::kBool));
  if (pref_nn > 0) {
    Cells c0 = voronoi(s, cost, h, w);
    const Graph g0 = seed_graph(c0, cost, h, w, static_cast<int>(M));
    const std::vector<char> keep = prefilter(s, g0, static_cast<int>(pref_nn), static_cast<float>(pref_th));
    Seeds t;
    bool* pk = kept.data_ptr<bool>();
    for (int64_t i = 0; i < M; ++i) {
      pk[i] = keep[i] != 0;
      if (!keep[i]) continue;
      t.x.push_back(s.x[i]);
      t.y.push_back(s.y[i]);
      t.u.push_back(s.u[i]);
      t.v.push_back(s.v[i]);
    }
    if (t.size() > 0) s = std::move(t);  // never filter everything away
    else std::fill(pk, pk + M, true);
  }
  const int Ms = static_cast<int>(s.size());
  const Cells c = voronoi(s, cost, h, w);
  const Graph g = seed_graph(c, cost, h, w, Ms);
  std::vector<Model> models(Ms);
  for_each_seed_knn(g, Ms, static_cast<int>(nn), [&](int i, const std::vector<std::pair<int, float>>& nb) {
    models[i] = fit(s, i, nb, static_cast<float>(coef_kernel), affine);
  });
  at::Tensor flow = at::zeros({H, W, 2}, cm.options());
  float* out = flow.data_ptr<float>();
  at::parallel_for(0, H * W, 4096, [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      const int l = c.label[p];
      if (l < 0) continue;
      const Model& m = models[l];
      const float dx = static_cast<float>(p % W - s.x[l]), dy = static_cast<float>(p / W - s.y[l]);
      out[2 * p] = m.a0 + m.a1 * dx + m.a2 * dy;
      out[2 * p + 1] = m.b0 + m.b1 * dx + m.b2 * dy;
    }
  });
  return {flow, kept};
}

}  // namespace
}  // namespace interp
}  // namespace flowmatch

TORCH_LIBRARY_IMPL(flowmatch, CPU, m) { m.impl("edge_aware_interpolate", &flowmatch::interp::interpolate_cpu); }
