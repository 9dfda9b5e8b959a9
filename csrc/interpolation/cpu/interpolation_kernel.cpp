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
//
// This file holds the op (argument checks, tensors); the algorithm is in the headers next to it:
// heaps.h (priority queues), voronoi.h (step 1), seed_graph.h (steps 2-3: graph, K nearest seeds),
// local_models.h (prefilter, models, the dense flow: interpolate_seeds).
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <tuple>
#include <utility>

#include "local_models.h"

namespace flowmatch {
namespace interp {
namespace {

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
  float min_cost = kInf;
  for (int64_t p = 0; p < H * W; ++p) {
    TORCH_CHECK(std::isfinite(cost[p]) && cost[p] >= 0.f, "edge_aware_interpolate: cost_map must be finite and >= 0");
    min_cost = std::min(min_cost, cost[p]);
  }
  Seeds s;
  s.x.reserve(M);
  s.y.reserve(M);
  s.u.reserve(M);
  s.v.reserve(M);
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
  at::Tensor kept = at::empty({M}, xy.options().dtype(at::kBool));
  at::Tensor flow = at::empty({H, W, 2}, cm.options());
  const Params prm{static_cast<int>(nn), static_cast<float>(coef_kernel), affine, static_cast<int>(pref_nn),
                   static_cast<float>(pref_th)};
  interpolate_seeds(std::move(s), cost, static_cast<int>(H), static_cast<int>(W), min_cost, prm,
                    flow.data_ptr<float>(), kept.data_ptr<bool>());
  return {flow, kept};
}

}  // namespace
}  // namespace interp
}  // namespace flowmatch

TORCH_LIBRARY_IMPL(flowmatch, CPU, m) { m.impl("edge_aware_interpolate", &flowmatch::interp::interpolate_cpu); }
