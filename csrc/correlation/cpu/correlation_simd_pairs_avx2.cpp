// Test-only AVX2 instance of correlation_simd_pairs.inc (the schedule of the AVX-512 BF16 kernel):
// vdpbf16ps's two bf16 products per float32 lane emulated with two FMAs on the pair's halves widened
// exactly (even channel: word << 16; odd channel: the upper half of the 32-bit lane, as is).  Run by
// torch.ops.flowmatch_testing.correlation_bf16_pairs so that CPUs without AVX-512 BF16 check that
// kernel's tile packing and indexing against the reference; never used by the op.  Includes no
// torch/ATen header (see correlation_simd_avx512.cpp).
#include "correlation/cpu/correlation_simd.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "correlation/correlation.h"

#pragma GCC push_options
#pragma GCC target("avx2,fma")

namespace {
using ::flowmatch::corr::fm_index_t;
struct Pairs {
  static constexpr int L = 8;
  using reg = __m256;
  using pairs = __m256i;
  static reg zero() { return _mm256_setzero_ps(); }
  static pairs load(const uint16_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
  static reg dot(reg acc, pairs a, pairs b) {
    const __m256i hi = _mm256_set1_epi32(int(0xFFFF0000u));
    const __m256 ae = _mm256_castsi256_ps(_mm256_slli_epi32(a, 16)), be = _mm256_castsi256_ps(_mm256_slli_epi32(b, 16));
    const __m256 ao = _mm256_castsi256_ps(_mm256_and_si256(a, hi)), bo = _mm256_castsi256_ps(_mm256_and_si256(b, hi));
    return _mm256_fmadd_ps(ao, bo, _mm256_fmadd_ps(ae, be, acc));
  }
  static void store(float* p, fm_index_t n, reg v, float s) {
    const int hi = n >= L ? L : int(n);
    const __m256i m = _mm256_cmpgt_epi32(_mm256_set1_epi32(hi), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    _mm256_maskstore_ps(p, m, _mm256_mul_ps(v, _mm256_set1_ps(s)));
  }
};
}  // namespace

#define FM_PAIRS_ENTRY forward_rows_bf16pairs_avx2
#define FM_PAIRS_OB 6
#include "correlation/cpu/correlation_simd_pairs.inc"

#pragma GCC pop_options

#else  // not x86: never called
namespace flowmatch {
namespace corr {
bool forward_rows_bf16pairs_avx2(const uint16_t*, const uint16_t*, float*, const CorrParams&, fm_index_t,
                                 fm_index_t, fm_index_t) {
  return false;
}
}  // namespace corr
}  // namespace flowmatch
#endif
