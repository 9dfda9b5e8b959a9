// Declarations of the run-time selected float32 SIMD kernels (correlation_simd.inc; common/cpu_features.h picks one).
#pragma once
#include "correlation/correlation.h"

namespace flowmatch {
namespace corr {
bool forward_rows_avx512(const float* f1, const float* f2, float* out, const CorrParams& P, fm_index_t n,
                         fm_index_t i0, fm_index_t i1);
bool backward_rows_avx512(const float* grad, const float* other, float* grad_in, const CorrParams& P, int which,
                          fm_index_t n, fm_index_t y0, fm_index_t y1);
bool forward_rows_avx2(const float* f1, const float* f2, float* out, const CorrParams& P, fm_index_t n,
                       fm_index_t i0, fm_index_t i1);
bool backward_rows_avx2(const float* grad, const float* other, float* grad_in, const CorrParams& P, int which,
                        fm_index_t n, fm_index_t y0, fm_index_t y1);
}  // namespace corr
}  // namespace flowmatch
