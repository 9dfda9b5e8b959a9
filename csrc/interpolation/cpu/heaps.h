// Priority queues of the geodesic Dijkstras (plain C++): keys pack (distance, index) in 64 bits,
// and every queue pops the exact minimum key, so results never depend on the queue's layout.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

namespace flowmatch {
namespace interp {

// For d >= 0 (never NaN), the order of the keys is the order of the pairs (d, i): non-negative
// floats order like their bit patterns.
inline uint64_t heap_key(float d, uint32_t i) {
  uint32_t b;
  std::memcpy(&b, &d, 4);
  return static_cast<uint64_t>(b) << 32 | i;
}
inline float key_dist(uint64_t k) {
  const uint32_t b = static_cast<uint32_t>(k >> 32);
  float d;
  std::memcpy(&d, &b, 4);
  return d;
}
inline uint32_t key_index(uint64_t k) { return static_cast<uint32_t>(k); }

// Binary min-heap of keys in a flat vector (kept between uses to avoid reallocation).
class KeyHeap {
 public:
  bool empty() const { return h_.empty(); }
  void clear() { h_.clear(); }
  void push(uint64_t k) {
    size_t i = h_.size();
    h_.push_back(k);
    while (i > 0) {
      const size_t up = (i - 1) / 2;
      if (h_[up] <= k) break;
      h_[i] = h_[up];
      i = up;
    }
    h_[i] = k;
  }
  uint64_t pop() {
    const uint64_t top = h_[0], last = h_.back();
    h_.pop_back();
    const size_t n = h_.size();
    if (n == 0) return top;
    size_t i = 0;
    for (;;) {
      size_t c = 2 * i + 1;
      if (c + 1 < n) {
        c += h_[c + 1] < h_[c];  // no branch on the unpredictable comparison
      } else if (c >= n) {
        break;
      }
      if (last <= h_[c]) break;
      h_[i] = h_[c];
      i = c;
    }
    h_[i] = last;
    return top;
  }

 private:
  std::vector<uint64_t> h_;
};

// Radix heap: a monotone priority queue (Dijkstra pops never decrease), O(1) push and amortised
// O(key bits) pop, several times faster than a binary heap on the pixel grid.  Keys are bucketed by
// the highest bit in which they differ from the last popped key.  A key below the last popped one
// (possible only with zero-cost steps, or steps lost to float rounding) goes to a small binary heap
// that is served first, so the pop order stays exact.
class RadixHeap {
 public:
  bool empty() const { return size_ == 0 && low_.empty(); }
  void clear() {
    for (auto& b : buckets_) b.clear();
    low_.clear();
    size_ = 0;
    last_ = 0;
  }
  void push(uint64_t k) {
    if (k < last_) {
      low_.push(k);
      return;
    }
    buckets_[bucket(k)].push_back(k);
    ++size_;
  }
  uint64_t pop() {
    if (!low_.empty()) return low_.pop();
    if (buckets_[0].empty()) {
      int i = 1;
      while (buckets_[i].empty()) ++i;
      auto& b = buckets_[i];
      last_ = *std::min_element(b.begin(), b.end());
      for (uint64_t k : b) buckets_[bucket(k)].push_back(k);  // all land in lower buckets
      b.clear();
    }
    const uint64_t k = buckets_[0].back();
    buckets_[0].pop_back();
    --size_;
    return k;
  }

 private:
  int bucket(uint64_t k) const { return k == last_ ? 0 : 64 - __builtin_clzll(k ^ last_); }
  std::vector<uint64_t> buckets_[65];
  KeyHeap low_;
  uint64_t last_ = 0;
  size_t size_ = 0;
};

}  // namespace interp
}  // namespace flowmatch
