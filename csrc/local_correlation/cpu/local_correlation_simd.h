// Run-time selected float32 AVX2 + FMA helpers of the local correlation CPU kernels
// (local_correlation_simd_avx2.cpp, compiled for AVX2 only inside that file).
#pragma once
#include "local_correlation/local_correlation.h"

namespace fm_lc {
// out[i] = Σ_c a[c] · rows[i][c] for i < count.
void dot_rows_avx2(const float* a, const float* const* rows, int count, lc_index_t C, float* out);
// out[c] = Σ_i w[i] · rows[i][c] for c < C (overwrites out).
void weighted_sum_avx2(const float* w, const float* const* rows, int count, lc_index_t C, float* out);
// y[c] += alpha · x[c] for c < C.
void axpy_avx2(float alpha, const float* x, float* y, lc_index_t C);
}  // namespace fm_lc
