// PatchMatch on dense descriptor fields: the per-candidate helpers shared by the CPU and CUDA kernels
// (the per-pixel stages built from them are in patchmatch_kernels.cuh).
//
// Layout: a descriptor field is H×W×D, row-major, channels last (one contiguous D-vector per
// pixel).  A match is an integer offset (u, v) so that pixel (x, y) of A matches (x+u, y+v) of B;
// its cost is the squared L2 distance of the two D-vectors, accumulated in float.
//
// Randomness is counter based: every random number is a hash of (seed, pixel, iteration, draw),
// so results never depend on thread scheduling or on the number of threads.
#pragma once

#include <cstdint>

#include "common/host_device.h"

namespace flowmatch {
namespace pm {

// splitmix64 finaliser: a well-mixed 64-bit hash of one 64-bit word.
FM_HD uint64_t mix64(uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Random word for draw `k` of pixel `pixel` in iteration `iter` (iter -1 = initialisation).
FM_HD uint64_t rand_word(int64_t seed, int64_t pixel, int iter, int k) {
  uint64_t h = mix64(static_cast<uint64_t>(seed));
  h = mix64(h ^ static_cast<uint64_t>(pixel));
  h = mix64(h ^ (static_cast<uint64_t>(static_cast<uint32_t>(iter + 1)) << 32 | static_cast<uint32_t>(k)));
  return h;
}

// Uniform integer in [lo, hi] (inclusive) from a random word; lo <= hi.
FM_HD int rand_int(uint64_t word, int lo, int hi) {
  const uint64_t span = static_cast<uint64_t>(hi - lo) + 1ull;
  return lo + static_cast<int>((word >> 11) % span);
}

FM_HD int clampi(int v, int lo, int hi) { return v < lo ? lo : (v > hi ? hi : v); }

// Offset of pixel (x, y) clamped so that the target (x+u, y+v) lies inside a W×H image.
FM_HD void clamp_offset(int x, int y, int W, int H, int& u, int& v) {
  u = clampi(x + u, 0, W - 1) - x;
  v = clampi(y + v, 0, H - 1) - y;
}

// Squared L2 distance of two D-vectors, accumulated in float; stops early (returning a value
// >= bound) once the partial sum exceeds `bound`: terms are non-negative, so this never changes
// which candidate wins.  Loads go through float conversion, so T may be float or a half type.
template <typename T>
FM_HD float sq_dist(const T* a, const T* b, int D, float bound) {
  float total = 0.f;
  constexpr int kChunk = 64;
  for (int start = 0; start < D; start += kChunk) {
    const int stop = start + kChunk < D ? start + kChunk : D;
    float s = 0.f;
#if !defined(__CUDA_ARCH__) && defined(_OPENMP)
#pragma omp simd reduction(+ : s)
#endif
    for (int d = start; d < stop; ++d) {
      const float diff = static_cast<float>(a[d]) - static_cast<float>(b[d]);
      s += diff * diff;
    }
    total += s;
    if (total > bound) return total;
  }
  return total;
}

// The cost function the helpers call: any type with a member `D` and
// `float operator()(const T* a_pix, const T* b_pix, float bound) const` returning the squared L2
// distance (or any value > bound once it is known to exceed bound).  The CPU passes one backed by
// SIMD intrinsics; this portable one serves CUDA and the fallback.
template <typename T>
struct PortableDist {
  int D;
  FM_HD float operator()(const T* a, const T* b, float bound) const { return sq_dist(a, b, D, bound); }
};

// The best match of one pixel so far.
struct Best {
  int u, v;
  float cost;
};

// Try candidate offset (u, v) for pixel (x, y) (clamped into B); keep it when cheaper.  Equal
// costs are broken by (v, u) order, so the winner among equals does not depend on visiting order.
template <typename T, typename Dist>
FM_HD void try_candidate(const T* a_pix, const T* b, int x, int y, int W, int H, const Dist& dist, int u, int v,
                         Best& best) {
  clamp_offset(x, y, W, H, u, v);
  if (u == best.u && v == best.v) return;
  const T* b_pix = b + (static_cast<int64_t>(y + v) * W + (x + u)) * dist.D;
  const float c = dist(a_pix, b_pix, best.cost);
  if (c < best.cost || (c == best.cost && (v < best.v || (v == best.v && u < best.u)))) {
    best.u = u;
    best.v = v;
    best.cost = c;
  }
}

// Random initial offset of pixel (x, y), uniform in (cu, cv) + [-window, window]² (then clamped
// into B); (cu, cv) is the initial guess (0, 0 without one).
FM_HD void random_init(int64_t seed, int x, int y, int W, int H, int window, int cu, int cv, int& u, int& v) {
  const int64_t pixel = static_cast<int64_t>(y) * W + x;
  u = cu + rand_int(rand_word(seed, pixel, -1, 0), -window, window);
  v = cv + rand_int(rand_word(seed, pixel, -1, 1), -window, window);
  clamp_offset(x, y, W, H, u, v);
}

// Random search around the current best with radius first_radius, first_radius/2, ..., 1.
template <typename T, typename Dist>
FM_HD void random_search(const T* a_pix, const T* b, int x, int y, int W, int H, const Dist& dist, int64_t seed,
                         int iter, int first_radius, Best& best) {
  const int64_t pixel = static_cast<int64_t>(y) * W + x;
  int k = 0;
  for (int r = first_radius; r >= 1; r /= 2, k += 2) {
    const int du = rand_int(rand_word(seed, pixel, iter, k), -r, r);
    const int dv = rand_int(rand_word(seed, pixel, iter, k + 1), -r, r);
    try_candidate(a_pix, b, x, y, W, H, dist, best.u + du, best.v + dv, best);
  }
}

// Sub-pixel offset of a minimum from the costs left/centre/right by a parabola through them;
// 0 when the three points do not bracket a minimum.  Result in [-0.5, 0.5].
FM_HD float parabola_offset(float cm, float c0, float cp) {
  const float denom = cm - 2.f * c0 + cp;
  if (!(denom > 0.f)) return 0.f;
  float off = 0.5f * (cm - cp) / denom;
  return off < -0.5f ? -0.5f : (off > 0.5f ? 0.5f : off);
}

// Sub-pixel refinement of pixel (x, y)'s integer match: one parabola per axis through the costs of
// the neighbouring offsets (skipped along an axis where a neighbour falls outside B).
template <typename T, typename Dist>
FM_HD void subpixel(const T* a_pix, const T* b, int x, int y, int W, int H, const Dist& dist, const Best& best,
                    float& fu, float& fv) {
  const int64_t D = dist.D;
  const int tx = x + best.u, ty = y + best.v;
  fu = static_cast<float>(best.u);
  fv = static_cast<float>(best.v);
  const float inf = 3.0e38f;
  if (tx > 0 && tx < W - 1) {
    const T* row = b + static_cast<int64_t>(ty) * W * D;  // row ty of B
    const float cm = dist(a_pix, row + (tx - 1) * D, inf);
    const float cp = dist(a_pix, row + (tx + 1) * D, inf);
    fu += parabola_offset(cm, best.cost, cp);
  }
  if (ty > 0 && ty < H - 1) {
    const float cm = dist(a_pix, b + (static_cast<int64_t>(ty - 1) * W + tx) * D, inf);
    const float cp = dist(a_pix, b + (static_cast<int64_t>(ty + 1) * W + tx) * D, inf);
    fv += parabola_offset(cm, best.cost, cp);
  }
}

}  // namespace pm
}  // namespace flowmatch
