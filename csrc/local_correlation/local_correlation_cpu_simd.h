// Run-time selected float32 AVX2 + FMA helpers of the local correlation CPU kernels
// (local_correlation_cpu_avx2.cpp, compiled for AVX2 only inside that file).
#pragma once
#include "local_correlation.h"

namespace fm_lc {
// out[i] = Σ_c a[c] · rows[i][c] for i < count.
void dot_rows_avx2(const float* a, const float* const* rows, int count, lc_index_t C, float* out);
// y[c] += alpha · x[c] for c < C.
void axpy_avx2(float alpha, const float* x, float* y, lc_index_t C);
}  // namespace fm_lc
