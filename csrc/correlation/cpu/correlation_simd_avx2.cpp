// AVX2 + FMA + F16C variant of the SIMD correlation kernels (float32 arithmetic; float32, bfloat16 and
// float16 inputs), selected at run time when the CPU has AVX2, FMA and F16C but not AVX-512.  Includes no torch/ATen header (see correlation_simd_avx512.cpp).
// Everything shared with other translation units (correlation.h's inline functions, the C library)
// is included before the target pragma, so that only this file's own functions use the wider ISA.
#include "correlation/cpu/correlation_simd.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "correlation/correlation.h"

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")

namespace {
using ::flowmatch::corr::fm_index_t;
struct Vec {
  static constexpr int L = 8;
  using reg = __m256;
  using mask = __m256i;
  static reg zero() { return _mm256_setzero_ps(); }
  static mask make_mask(fm_index_t lo, fm_index_t hi) {
    lo = lo < 0 ? 0 : lo;
    hi = hi > L ? L : hi;
    const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i ge = _mm256_cmpgt_epi32(iota, _mm256_set1_epi32(int(lo) - 1));
    const __m256i lt = _mm256_cmpgt_epi32(_mm256_set1_epi32(int(hi)), iota);
    return _mm256_and_si256(ge, lt);
  }
  static bool empty(mask m) { return _mm256_testz_si256(m, m); }
  static bool full(mask m) { return _mm256_movemask_ps(_mm256_castsi256_ps(m)) == 0xFF; }
  static reg load(mask m, const float* p) { return _mm256_maskload_ps(p, m); }
  static reg loadu(const float* p) { return _mm256_loadu_ps(p); }
  static reg fma(reg a, reg b, reg c) { return _mm256_fmadd_ps(a, b, c); }
  static reg scale(reg a, float s) { return _mm256_mul_ps(a, _mm256_set1_ps(s)); }
  static void store(mask m, float* p, reg v) { _mm256_maskstore_ps(p, m, v); }
};
}  // namespace

#define FM_SIMD_NAME(name) name##_avx2
#define FM_SIMD_MAX_OB 6
#define FM_SIMD_MAX_MASKED_OB 3
#define FM_SIMD_MAX_CB 4
#include "correlation/cpu/correlation_simd.inc"

#pragma GCC pop_options

#else  // not x86: cpu::level() is kNone, these are never called
namespace flowmatch {
namespace corr {
bool forward_rows_avx2(const float*, const float*, float*, const CorrParams&, fm_index_t, fm_index_t, fm_index_t) {
  return false;
}
bool backward_rows_avx2(const float*, const float*, float*, const CorrParams&, int, fm_index_t, fm_index_t,
                        fm_index_t) {
  return false;
}
bool forward_rows_bf16_avx2(const uint16_t*, const uint16_t*, float*, const CorrParams&, fm_index_t, fm_index_t,
                           fm_index_t) {
  return false;
}
bool forward_rows_fp16_avx2(const uint16_t*, const uint16_t*, float*, const CorrParams&, fm_index_t, fm_index_t,
                           fm_index_t) {
  return false;
}
}  // namespace corr
}  // namespace flowmatch
#endif
