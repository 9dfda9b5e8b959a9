// Work sharing of the interpolation kernels: blocks of indices handed out from a shared counter,
// so a thread slowed down by other load does not hold up the rest.  Every caller computes each
// item independently of the split, so results never depend on the thread count.
#pragma once

#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <cstdint>

namespace flowmatch {
namespace interp {

// fn(scratch, begin, end) over [0, n) in blocks of `block`, where scratch = make() is built once per
// thread.
template <typename Make, typename Fn>
void parallel_blocks(int64_t n, int64_t block, Make make, Fn fn) {
  if (n <= 0) return;
  std::atomic<int64_t> next{0};
  const int64_t workers = std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), (n + block - 1) / block));
  at::parallel_for(0, workers, 1, [&](int64_t, int64_t) {
    auto scratch = make();
    for (;;) {
      const int64_t i0 = next.fetch_add(block);
      if (i0 >= n) break;
      fn(scratch, i0, std::min(n, i0 + block));
    }
  });
}

// The same without scratch: fn(begin, end).
template <typename Fn>
void parallel_blocks(int64_t n, int64_t block, Fn fn) {
  parallel_blocks(n, block, [] { return 0; }, [&](int, int64_t i0, int64_t i1) { fn(i0, i1); });
}

}  // namespace interp
}  // namespace flowmatch
