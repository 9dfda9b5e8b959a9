// The seed graph of the geodesic Voronoi cells and the K geodesically nearest seeds on it (CPU).
#pragma once

#include <algorithm>
#include <cstdint>
#include <utility>
#include <vector>

#include "heaps.h"
#include "parallel.h"
#include "voronoi.h"

namespace flowmatch {
namespace interp {

// Seed adjacency in CSR form: the neighbours of seed i are edges[start[i] .. start[i+1]) in
// increasing order of seed index; an edge's length is the shortest geodesic path between the two
// seeds through a pair of touching pixels of their cells.
struct Graph {
  struct Edge {
    int to;
    float w;
  };
  std::vector<int64_t> start;  // size M + 1
  std::vector<Edge> edges;
};

// Two seeds are adjacent when their cells touch (4-connected pixels); the edge takes the shortest
// d[p] + d[q] + (cost[p] + cost[q]) / 2 over the touching pixel pairs.
inline Graph seed_graph(const Cells& c, const float* cost, int H, int W, int M) {
  struct Touch {
    int lo, hi;
    float len;
  };
  const int* label = c.label.data();
  const float* dist = c.dist.data();
  constexpr int kRows = 16;
  const int bands = (H + kRows - 1) / kRows;
  std::vector<std::vector<Touch>> found(bands);
  parallel_blocks(bands, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      std::vector<Touch>& out = found[b];
      auto add = [&](int p, int q) {
        const int a = label[p], e = label[q];
        if (a == e || a < 0 || e < 0) return;
        out.push_back({std::min(a, e), std::max(a, e), dist[p] + dist[q] + 0.5f * (cost[p] + cost[q])});
      };
      for (int y = static_cast<int>(b) * kRows; y < std::min(H, static_cast<int>(b + 1) * kRows); ++y)
        for (int x = 0; x < W; ++x) {
          const int p = y * W + x;
          if (x < W - 1) add(p, p + 1);
          if (y < H - 1) add(p, p + W);
        }
    }
  });
  // group the touching pairs by their smaller seed (counting sort), then keep the shortest per pair
  std::vector<int64_t> first(static_cast<size_t>(M) + 1, 0);
  for (const auto& f : found)
    for (const Touch& t : f) ++first[t.lo + 1];
  for (int i = 0; i < M; ++i) first[i + 1] += first[i];
  std::vector<std::pair<int, float>> by_lo(first[M]);
  {
    std::vector<int64_t> fill(first.begin(), first.end() - 1);
    for (const auto& f : found)
      for (const Touch& t : f) by_lo[fill[t.lo]++] = {t.hi, t.len};
  }
  found.clear();
  std::vector<int> unique_end(M);  // by_lo[first[i] .. unique_end[i]): seed i's larger neighbours
  parallel_blocks(M, 256, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      auto b = by_lo.begin() + first[i], e = by_lo.begin() + first[i + 1];
      std::sort(b, e);  // by neighbour, then length: the first of each neighbour is the shortest
      auto u = b;
      for (auto it = b; it != e; ++it)
        if (u == b || (u - 1)->first != it->first) *u++ = *it;
      unique_end[i] = static_cast<int>(u - by_lo.begin() - first[i]);
    }
  });
  Graph g;
  g.start.assign(static_cast<size_t>(M) + 1, 0);
  for (int i = 0; i < M; ++i)
    for (int64_t k = first[i]; k < first[i] + unique_end[i]; ++k) {
      ++g.start[i + 1];
      ++g.start[by_lo[k].first + 1];
    }
  for (int i = 0; i < M; ++i) g.start[i + 1] += g.start[i];
  g.edges.resize(g.start[M]);
  std::vector<int64_t> fill(g.start.begin(), g.start.end() - 1);
  for (int i = 0; i < M; ++i)  // in increasing (smaller, larger) order: every list ends up sorted
    for (int64_t k = first[i]; k < first[i] + unique_end[i]; ++k) {
      const auto [j, len] = by_lo[k];
      g.edges[fill[i]++] = {j, len};
      g.edges[fill[j]++] = {i, len};
    }
  return g;
}

// Scratch of knn: distances of size M (all +inf between calls), the seeds they were set for, a heap.
struct KnnScratch {
  std::vector<float> dist;
  std::vector<int> touched;
  KeyHeap heap;
  explicit KnnScratch(int M) : dist(M, kInf) {}
};

// The K nearest seeds of `src` on the seed graph (src itself first, at distance 0), by Dijkstra:
// `out` gets (seed, distance) in the order popped, ties broken by the smaller seed index.
inline void knn(const Graph& g, int src, int K, KnnScratch& s, std::vector<std::pair<int, float>>& out) {
  out.clear();
  s.touched.clear();
  s.heap.clear();
  float* dist = s.dist.data();
  const int64_t* start = g.start.data();
  const Graph::Edge* edges = g.edges.data();
  dist[src] = 0.f;
  s.touched.push_back(src);
  s.heap.push(heap_key(0.f, static_cast<uint32_t>(src)));
  while (!s.heap.empty() && static_cast<int>(out.size()) < K) {
    const uint64_t k = s.heap.pop();
    const float d = key_dist(k);
    const int i = static_cast<int>(key_index(k));
    if (d > dist[i]) continue;  // stale entry
    out.emplace_back(i, d);
    for (int64_t e = start[i]; e < start[i + 1]; ++e) {
      const int j = edges[e].to;
      const float nd = d + edges[e].w;
      if (nd < dist[j]) {
        if (dist[j] == kInf) s.touched.push_back(j);
        dist[j] = nd;
        s.heap.push(heap_key(nd, static_cast<uint32_t>(j)));
      }
    }
  }
  for (int i : s.touched) dist[i] = kInf;
}

}  // namespace interp
}  // namespace flowmatch
