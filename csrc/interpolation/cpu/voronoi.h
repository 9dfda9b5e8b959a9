// Geodesic Voronoi cells on the 4-connected pixel grid (CPU): every pixel's geodesically nearest
// seed and its distance.  The step from pixel p to q costs (cost[p] + cost[q]) / 2.
//
// The reference definition is a multi-source Dijkstra with a binary heap keyed by (distance,
// pixel index), where a pixel takes the label of the first popped neighbour that gives it its
// final distance (voronoi_serial; the first seed on a pixel wins it).  The fast path computes the
// same cells in two steps that need no global pop order:
// - distances: label-correcting Dijkstras on 64×64 tiles that exchange their borders until nothing
//   changes.  The result is the fixed point d[q] = min over neighbours p of fl(d[p] + step), i.e.
//   the smallest float-accumulated path length, which is unique: exactly the serial distances.
// - labels: when every step is strictly positive and never lost to rounding (checked:
//   strictly_increasing_steps), Dijkstra pops in (distance, index) order, so a pixel's label is
//   that of its lexicographically first (distance, index) neighbour on a shortest path; that
//   predecessor has a smaller distance, so following predecessors ends at a seed.
// Cost maps that fail the check (zero or vanishing steps) take the serial path.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <limits>
#include <memory>
#include <vector>

#include "heaps.h"
#include "parallel.h"

namespace flowmatch {
namespace interp {

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

// With every step >= min_cost > 0 and distances up to dmax, fl(d + step) > d for every relaxation
// (min_cost exceeds two ulps of dmax), so each push is strictly above the pop that made it.
inline bool strictly_increasing_steps(float min_cost, float dmax) {
  return min_cost > 0.f && dmax < kInf && dmax * 0x1p-22f < min_cost;
}

// Dijkstra on a w×h 4-connected grid with row stride `stride`, from the pixels already queued in `heap`:
// a step between neighbours p and q costs (cost[p] + cost[q]) / 2; improved(p, q) runs whenever q's
// distance improves through p (before q is queued).
template <typename Heap, typename Improved>
inline void grid_dijkstra(Heap& heap, float* dist, const float* cost, int w, int h, int stride, Improved improved) {
  while (!heap.empty()) {
    const uint64_t k = heap.pop();
    const float d = key_dist(k);
    const int p = static_cast<int>(key_index(k));
    if (d > dist[p]) continue;  // stale entry
    const int y = p / stride, x = p - y * stride;
    const float cp = cost[p];
    auto relax = [&](int q) {
      const float nd = d + 0.5f * (cp + cost[q]);
      if (nd < dist[q]) {
        dist[q] = nd;
        improved(p, q);
        heap.push(heap_key(nd, static_cast<uint32_t>(q)));
      }
    };
    if (x > 0) relax(p - 1);
    if (x < w - 1) relax(p + 1);
    if (y > 0) relax(p - stride);
    if (y < h - 1) relax(p + stride);
  }
}

// Serial Dijkstra from the pixels already queued in `heap` (the reference algorithm).
inline void grow_cells_serial(Cells& c, const float* cost, int H, int W, RadixHeap& heap) {
  int* label = c.label.data();
  grid_dijkstra(heap, c.dist.data(), cost, W, H, W, [label](int p, int q) { label[q] = label[p]; });
}

// Empty cells with the seeds placed (distance 0, the first seed on a pixel wins it).
inline Cells place_seeds(const Seeds& s, int H, int W) {
  const int64_t n = static_cast<int64_t>(H) * W;
  Cells c{std::vector<int>(n, -1), std::vector<float>(n, kInf)};
  for (size_t i = 0; i < s.size(); ++i) {
    const int p = s.y[i] * W + s.x[i];
    if (c.label[p] < 0) {
      c.dist[p] = 0.f;
      c.label[p] = static_cast<int>(i);
    }
  }
  return c;
}

inline Cells voronoi_serial(const Seeds& s, const float* cost, int H, int W) {
  Cells c = place_seeds(s, H, W);
  RadixHeap heap;
  for (size_t i = 0; i < s.size(); ++i) {
    const int p = s.y[i] * W + s.x[i];
    if (c.label[p] == static_cast<int>(i)) heap.push(heap_key(0.f, static_cast<uint32_t>(p)));
  }
  grow_cells_serial(c, cost, H, W, heap);
  return c;
}

// ---- distances on tiles ------------------------------------------------------------------------

constexpr int kTile = 64;

struct TileScratch {
  float d[kTile * kTile], c[kTile * kTile];  // the tile's distances and costs, row stride kTile
  RadixHeap heap;
};

// One pass over tile t: take the distances offered by the neighbouring tiles' borders (`border`,
// their values after the previous round), settle the tile, write its distances back to `dist`.
// In the first pass, also starts from every finite pixel next to an infinite one.  Returns
// whether one of the tile's border pixels changed.
inline bool settle_tile(int t, int tiles_x, const float* cost, float* dist, const float* border, int H, int W,
                        bool first, TileScratch& s) {
  const int y0 = (t / tiles_x) * kTile, x0 = (t % tiles_x) * kTile;
  const int th = std::min(kTile, H - y0), tw = std::min(kTile, W - x0);
  float* d = s.d;
  float* c = s.c;
  for (int y = 0; y < th; ++y)
    for (int x = 0; x < tw; ++x) {
      d[y * kTile + x] = dist[(y0 + y) * W + x0 + x];
      c[y * kTile + x] = cost[(y0 + y) * W + x0 + x];
    }
  auto& heap = s.heap;
  heap.clear();
  if (first)  // before the offers below, which make some infinite pixels finite
    for (int y = 0; y < th; ++y)
      for (int x = 0; x < tw; ++x) {
        const int i = y * kTile + x;
        if (d[i] == kInf) continue;
        if ((x > 0 && d[i - 1] == kInf) || (x < tw - 1 && d[i + 1] == kInf) || (y > 0 && d[i - kTile] == kInf) ||
            (y < th - 1 && d[i + kTile] == kInf))
          heap.push(heap_key(d[i], static_cast<uint32_t>(i)));
      }
  auto offer = [&](int i, int p) {  // pixel p outside the tile next to local pixel i
    const float nd = border[p] + 0.5f * (cost[p] + c[i]);
    if (nd < d[i]) {
      d[i] = nd;
      heap.push(heap_key(nd, static_cast<uint32_t>(i)));
    }
  };
  if (y0 > 0)
    for (int x = 0; x < tw; ++x) offer(x, (y0 - 1) * W + x0 + x);
  if (y0 + th < H)
    for (int x = 0; x < tw; ++x) offer((th - 1) * kTile + x, (y0 + th) * W + x0 + x);
  if (x0 > 0)
    for (int y = 0; y < th; ++y) offer(y * kTile, (y0 + y) * W + x0 - 1);
  if (x0 + tw < W)
    for (int y = 0; y < th; ++y) offer(y * kTile + tw - 1, (y0 + y) * W + x0 + tw);
  grid_dijkstra(heap, d, c, tw, th, kTile, [](int, int) {});
  bool changed = false;
  for (int y = 0; y < th; ++y)
    for (int x = 0; x < tw; ++x) {
      const int p = (y0 + y) * W + x0 + x;
      const float v = d[y * kTile + x];
      if (v != dist[p] && (y == 0 || y == th - 1 || x == 0 || x == tw - 1)) changed = true;
      dist[p] = v;
    }
  return changed;
}

// Geodesic distances from the finite pixels of `dist` (in place), on all threads.  `active`: the
// tiles whose pixels may improve (those holding a seed or an infinite pixel).
inline void settle_distances(std::vector<float>& dist, const float* cost, int H, int W, std::vector<char> active) {
  const int tiles_x = (W + kTile - 1) / kTile, tiles_y = (H + kTile - 1) / kTile, T = tiles_x * tiles_y;
  std::vector<float> border(dist);  // tile borders as of the last round (read while tiles write)
  std::vector<char> changed(T, 0);
  for (bool first = true;; first = false) {
    std::vector<int> todo;
    for (int t = 0; t < T; ++t)
      if (active[t]) todo.push_back(t);
    if (todo.empty()) break;
    parallel_blocks(
        static_cast<int64_t>(todo.size()), 1, [] { return std::make_unique<TileScratch>(); },
        [&](std::unique_ptr<TileScratch>& s, int64_t a, int64_t b) {
          for (int64_t k = a; k < b; ++k)
            changed[todo[k]] = settle_tile(todo[k], tiles_x, cost, dist.data(), border.data(), H, W, first, *s);
        });
    std::fill(active.begin(), active.end(), 0);
    for (int t : todo) {
      if (!changed[t]) continue;
      changed[t] = 0;
      const int ty = t / tiles_x, tx = t % tiles_x, y0 = ty * kTile, x0 = tx * kTile;
      const int y1 = std::min(H, y0 + kTile), x1 = std::min(W, x0 + kTile);
      for (int y = y0; y < y1; ++y) {  // publish the new border
        if (y == y0 || y == y1 - 1) {
          std::copy(dist.begin() + static_cast<int64_t>(y) * W + x0, dist.begin() + static_cast<int64_t>(y) * W + x1,
                    border.begin() + static_cast<int64_t>(y) * W + x0);
        } else {
          border[static_cast<int64_t>(y) * W + x0] = dist[static_cast<int64_t>(y) * W + x0];
          border[static_cast<int64_t>(y) * W + x1 - 1] = dist[static_cast<int64_t>(y) * W + x1 - 1];
        }
      }
      if (ty > 0) active[t - tiles_x] = 1;
      if (ty < tiles_y - 1) active[t + tiles_x] = 1;
      if (tx > 0) active[t - 1] = 1;
      if (tx < tiles_x - 1) active[t + 1] = 1;
    }
  }
}

// Labels of the unlabelled reached pixels from final distances (see the top of the file); the
// labelled ones (seeds, kept cells) stay.  Returns false if some pixel has no predecessor (cannot
// happen under strictly_increasing_steps).
inline bool labels_from_distances(Cells& c, const float* cost, int H, int W) {
  const float* dist = c.dist.data();
  int* label = c.label.data();
  std::vector<int> pred(c.label.size(), -1);
  std::atomic<bool> ok{true};
  parallel_blocks(H, 8, [&](int64_t ya, int64_t yb) {
    for (int y = static_cast<int>(ya); y < yb; ++y)
      for (int x = 0; x < W; ++x) {
        const int q = y * W + x;
        if (label[q] >= 0 || dist[q] == kInf) continue;
        int best = -1;
        auto consider = [&](int p) {  // neighbours come in increasing index order
          if (dist[p] + 0.5f * (cost[p] + cost[q]) == dist[q] && (best < 0 || dist[p] < dist[best])) best = p;
        };
        if (y > 0) consider(q - W);
        if (x > 0) consider(q - 1);
        if (x < W - 1) consider(q + 1);
        if (y < H - 1) consider(q + W);
        if (best < 0 || !(dist[best] < dist[q])) ok = false;
        pred[q] = best;
      }
  });
  if (!ok) return false;
  // Follow predecessors to a labelled pixel.  Threads may label the same chain at once; they
  // write the same values (relaxed atomics keep that well defined).
  parallel_blocks(H, 8, [] { return std::vector<int>(); }, [&](std::vector<int>& chain, int64_t ya, int64_t yb) {
    for (int64_t q0 = ya * W; q0 < yb * W; ++q0) {
      if (std::atomic_ref<int>(label[q0]).load(std::memory_order_relaxed) >= 0 || dist[q0] == kInf) continue;
      chain.clear();
      int r = static_cast<int>(q0), l;
      while ((l = std::atomic_ref<int>(label[r]).load(std::memory_order_relaxed)) < 0) {
        chain.push_back(r);
        r = pred[r];
      }
      for (int q : chain) std::atomic_ref<int>(label[q]).store(l, std::memory_order_relaxed);
    }
  });
  return true;
}

inline float max_distance(const std::vector<float>& dist) {
  float m = 0.f;
  for (float d : dist) m = std::max(m, d);
  return m;
}

// Geodesic Voronoi cells of all seeds (equal to voronoi_serial).  min_cost: the smallest cost.
inline Cells voronoi(const Seeds& s, const float* cost, int H, int W, float min_cost) {
  if (min_cost <= 0.f) return voronoi_serial(s, cost, H, W);
  Cells c = place_seeds(s, H, W);
  const int T = ((W + kTile - 1) / kTile) * ((H + kTile - 1) / kTile);
  settle_distances(c.dist, cost, H, W, std::vector<char>(T, 1));
  if (!strictly_increasing_steps(min_cost, max_distance(c.dist)) || !labels_from_distances(c, cost, H, W))
    return voronoi_serial(s, cost, H, W);
  return c;
}

// Cells of the seed subset `kept` (new index = rank among the kept seeds; `s` holds the kept seeds
// in that order) from the cells `c` of all seeds, in place: only the cells of dropped seeds are
// recomputed.  The pixels of kept cells keep their distance and label: their shortest paths lie in
// their own cell, and a dropped cell's pixel was never their first predecessor.  Needs
// strictly_increasing_steps for the old and the new cells; falls back to voronoi_serial otherwise.
inline void drop_seeds(Cells& c, const std::vector<char>& kept, const Seeds& s, const float* cost, int H, int W,
                       float min_cost) {
  if (!strictly_increasing_steps(min_cost, max_distance(c.dist))) {
    c = voronoi_serial(s, cost, H, W);
    return;
  }
  std::vector<int> rank(kept.size(), -1);
  for (size_t i = 0, r = 0; i < kept.size(); ++i)
    if (kept[i]) rank[i] = static_cast<int>(r++);
  const int tiles_x = (W + kTile - 1) / kTile, T = tiles_x * ((H + kTile - 1) / kTile);
  std::vector<char> active(T, 0);
  const int n = H * W;
  for (int p = 0; p < n; ++p) {
    const int l = c.label[p] < 0 ? -1 : rank[c.label[p]];
    c.label[p] = l;
    if (l < 0) {
      c.dist[p] = kInf;
      active[(p / W / kTile) * tiles_x + (p % W) / kTile] = 1;
    }
  }
  for (size_t i = 0; i < s.size(); ++i) {  // a kept duplicate of a dropped seed takes its pixel
    const int p = s.y[i] * W + s.x[i];
    if (c.label[p] < 0) {
      c.dist[p] = 0.f;
      c.label[p] = static_cast<int>(i);
    }
  }
  settle_distances(c.dist, cost, H, W, std::move(active));
  if (!strictly_increasing_steps(min_cost, max_distance(c.dist)) || !labels_from_distances(c, cost, H, W))
    c = voronoi_serial(s, cost, H, W);
}

}  // namespace interp
}  // namespace flowmatch
