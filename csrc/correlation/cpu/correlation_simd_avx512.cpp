// AVX-512 variant of the SIMD correlation kernels (float32 arithmetic; float32, bfloat16 and float16
// inputs), selected at run time when the CPU has AVX-512 F/BW/VL/DQ.  Deliberately includes no torch/ATen header: everything in this file is compiled for
// AVX-512, and inline functions shared with other translation units must not be.
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
#pragma GCC target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma,f16c")

namespace {
using ::flowmatch::corr::fm_index_t;
struct Vec {
  static constexpr int L = 16;
  using reg = __m512;
  using mask = __mmask16;
  static reg zero() { return _mm512_setzero_ps(); }
  // Lanes l with lo <= l < hi.
  static mask make_mask(fm_index_t lo, fm_index_t hi) {
    lo = lo < 0 ? 0 : lo;
    hi = hi > L ? L : hi;
    if (hi <= lo) return 0;
    return mask(((1u << hi) - 1u) & ~((1u << lo) - 1u));
  }
  static bool empty(mask m) { return m == 0; }
  static bool full(mask m) { return m == 0xFFFF; }
  static reg load(mask m, const float* p) { return _mm512_maskz_loadu_ps(m, p); }
  static reg loadu(const float* p) { return _mm512_loadu_ps(p); }
  static reg fma(reg a, reg b, reg c) { return _mm512_fmadd_ps(a, b, c); }
  static reg scale(reg a, float s) { return _mm512_mul_ps(a, _mm512_set1_ps(s)); }
  static void store(mask m, float* p, reg v) { _mm512_mask_storeu_ps(p, m, v); }
};
}  // namespace

#define FM_SIMD_NAME(name) name##_avx512
#define FM_SIMD_MAX_OB 12
#define FM_SIMD_MAX_MASKED_OB 6
#define FM_SIMD_MAX_CB 8
#include "correlation/cpu/correlation_simd.inc"

#pragma GCC pop_options

#else  // not x86: cpu::level() is kNone, these are never called
namespace flowmatch {
namespace corr {
bool forward_rows_avx512(const float*, const float*, float*, const CorrParams&, fm_index_t, fm_index_t, fm_index_t) {
  return false;
}
bool backward_rows_avx512(const float*, const float*, float*, const CorrParams&, int, fm_index_t, fm_index_t,
                        fm_index_t) {
  return false;
}
bool forward_rows_bf16_avx512(const uint16_t*, const uint16_t*, float*, const CorrParams&, fm_index_t, fm_index_t,
                           fm_index_t) {
  return false;
}
bool forward_rows_fp16_avx512(const uint16_t*, const uint16_t*, float*, const CorrParams&, fm_index_t, fm_index_t,
                           fm_index_t) {
  return false;
}
}  // namespace corr
}  // namespace flowmatch
#endif
