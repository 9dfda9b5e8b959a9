// AVX-512 BF16 forward kernel of the correlation for bfloat16 inputs (stride1 = 1): bf16 channel pairs
// multiplied and summed into float32 by vdpbf16ps (_mm512_dpbf16_ps), on the schedule of
// correlation_simd_pairs.inc.  Called only when cpu::has_avx512_bf16() (correlation_kernel.cpp);
// compiled with its own target pragma, never -march.
// UNTESTED ON HARDWARE: written and built on an AMD Zen 3 (no AVX-512 at all), where the dispatch never
// selects it.  Its packing and indexing run there through correlation_simd_pairs_avx2.cpp (the same
// .inc, the dot product emulated); only the Pairs traits below are unexercised.  vdpbf16ps treats
// bf16 denormals as zero and flushes float32 denormal results; the products themselves are exact.
// Includes no torch/ATen header (see correlation_simd_avx512.cpp).
#include "correlation/cpu/correlation_simd.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "correlation/correlation.h"

#pragma GCC push_options
#pragma GCC target("avx512f,avx512vl,avx512bw,avx512dq,avx512bf16,avx2,fma")

namespace {
using ::flowmatch::corr::fm_index_t;
struct Pairs {
  static constexpr int L = 16;
  using reg = __m512;
  using pairs = __m512bh;
  static reg zero() { return _mm512_setzero_ps(); }
  static pairs load(const uint16_t* p) { return (__m512bh)_mm512_loadu_si512(p); }
  static reg dot(reg acc, pairs a, pairs b) { return _mm512_dpbf16_ps(acc, a, b); }
  static void store(float* p, fm_index_t n, reg v, float s) {
    const __mmask16 m = n >= L ? __mmask16(0xFFFF) : __mmask16((1u << n) - 1u);
    _mm512_mask_storeu_ps(p, m, _mm512_mul_ps(v, _mm512_set1_ps(s)));
  }
};
}  // namespace

#define FM_PAIRS_ENTRY forward_rows_bf16_avx512bf16
#define FM_PAIRS_OB 12
#include "correlation/cpu/correlation_simd_pairs.inc"

#pragma GCC pop_options

#else  // not x86: never called
namespace flowmatch {
namespace corr {
bool forward_rows_bf16_avx512bf16(const uint16_t*, const uint16_t*, float*, const CorrParams&, fm_index_t,
                                  fm_index_t, fm_index_t) {
  return false;
}
}  // namespace corr
}  // namespace flowmatch
#endif
