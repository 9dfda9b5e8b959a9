// AVX2 + FMA helpers of the local correlation CPU kernels, selected at run time (never -march=native).
// Only this file's functions use the wider ISA: the shared header comes before the target pragma.
#include <immintrin.h>

#include "local_correlation/cpu/local_correlation_simd.h"

#pragma GCC push_options
#pragma GCC target("avx2,fma")

namespace fm_lc {
namespace {
inline float hsum(__m256 v) {
  const __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 t = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(t, _mm_movehdup_ps(t)));
}
}  // namespace

void dot_rows_avx2(const float* a, const float* const* rows, int count, lc_index_t C, float* out) {
  int i = 0;
  // Four rows at a time: one load of a serves four FMAs, and four independent accumulator chains.
  for (; i + 4 <= count; i += 4) {
    const float *b0 = rows[i], *b1 = rows[i + 1], *b2 = rows[i + 2], *b3 = rows[i + 3];
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps(), s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
    lc_index_t c = 0;
    for (; c + 8 <= C; c += 8) {
      const __m256 va = _mm256_loadu_ps(a + c);
      s0 = _mm256_fmadd_ps(va, _mm256_loadu_ps(b0 + c), s0);
      s1 = _mm256_fmadd_ps(va, _mm256_loadu_ps(b1 + c), s1);
      s2 = _mm256_fmadd_ps(va, _mm256_loadu_ps(b2 + c), s2);
      s3 = _mm256_fmadd_ps(va, _mm256_loadu_ps(b3 + c), s3);
    }
    float t0 = hsum(s0), t1 = hsum(s1), t2 = hsum(s2), t3 = hsum(s3);
    for (; c < C; ++c) {
      t0 += a[c] * b0[c];
      t1 += a[c] * b1[c];
      t2 += a[c] * b2[c];
      t3 += a[c] * b3[c];
    }
    out[i] = t0;
    out[i + 1] = t1;
    out[i + 2] = t2;
    out[i + 3] = t3;
  }
  for (; i < count; ++i) {
    const float* b = rows[i];
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    lc_index_t c = 0;
    for (; c + 16 <= C; c += 16) {
      s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + c), _mm256_loadu_ps(b + c), s0);
      s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + c + 8), _mm256_loadu_ps(b + c + 8), s1);
    }
    for (; c + 8 <= C; c += 8) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + c), _mm256_loadu_ps(b + c), s0);
    float t = hsum(_mm256_add_ps(s0, s1));
    for (; c < C; ++c) t += a[c] * b[c];
    out[i] = t;
  }
}

void weighted_sum_avx2(const float* w, const float* const* rows, int count, lc_index_t C, float* out) {
  lc_index_t c = 0;
  // 32 output channels in four registers while all rows stream past: one load per FMA, one store.
  for (; c + 32 <= C; c += 32) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps(), s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
    for (int i = 0; i < count; ++i) {
      const __m256 wv = _mm256_set1_ps(w[i]);
      const float* r = rows[i] + c;
      s0 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(r), s0);
      s1 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(r + 8), s1);
      s2 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(r + 16), s2);
      s3 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(r + 24), s3);
    }
    _mm256_storeu_ps(out + c, s0);
    _mm256_storeu_ps(out + c + 8, s1);
    _mm256_storeu_ps(out + c + 16, s2);
    _mm256_storeu_ps(out + c + 24, s3);
  }
  for (; c < C; ++c) {
    float s = 0.0f;
    for (int i = 0; i < count; ++i) s += w[i] * rows[i][c];
    out[c] = s;
  }
}

void axpy_avx2(float alpha, const float* x, float* y, lc_index_t C) {
  const __m256 va = _mm256_set1_ps(alpha);
  lc_index_t c = 0;
  for (; c + 8 <= C; c += 8) _mm256_storeu_ps(y + c, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + c), _mm256_loadu_ps(y + c)));
  for (; c < C; ++c) y[c] += alpha * x[c];
}

}  // namespace fm_lc

#pragma GCC pop_options
