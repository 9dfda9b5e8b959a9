// SIMD squared L2 distances for the CPU PatchMatch, chosen once at run time (common/cpu_features.h).
// The extension is built without -march flags, so each variant carries its own target attribute;
// off x86 only the portable one exists.
#pragma once

#include <c10/util/Half.h>

#include "common/cpu_features.h"
#include "patchmatch/patchmatch.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace flowmatch {
namespace pm {
namespace cpu_dist {

#if defined(__x86_64__) || defined(__i386__)

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
#endif  // x86

template <typename T>
float dist_portable(const T* a, const T* b, int D, float bound) {
  return sq_dist(a, b, D, bound);
}

template <typename T>
using DistFn = float (*)(const T*, const T*, int, float);

template <typename T>
DistFn<T> pick_dist() {
#if defined(__x86_64__) || defined(__i386__)
  switch (flowmatch::cpu::level()) {
    case flowmatch::cpu::Simd::kAvx512:
      return &dist_avx512<T>;
    case flowmatch::cpu::Simd::kAvx2:
      return &dist_avx2<T>;
    case flowmatch::cpu::Simd::kNone:
      break;
  }
#endif
  return &dist_portable<T>;
}

}  // namespace cpu_dist
}  // namespace pm
}  // namespace flowmatch
