// Declarations of the run-time selected SIMD kernels (correlation_simd.inc, correlation_simd_pairs.inc;
// common/cpu_features.h says which ones the CPU runs; correlation_kernel.cpp picks one).
// forward_rows_{bf16,fp16}_*: the raw 16-bit words of bfloat16 / float16 inputs, widened to float32
// as they are packed, float32 accumulation and output.  forward_rows_bf16_avx512bf16 multiplies
// bf16 channel pairs with vdpbf16ps and is called only when cpu::has_avx512_bf16();
// forward_rows_bf16pairs_avx2 is the same schedule with the dot product emulated by two FMAs (test
// only: it checks that kernel's packing and indexing on CPUs without AVX-512 BF16).
#pragma once
#include <cstdint>

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
bool forward_rows_bf16_avx512(const uint16_t* f1, const uint16_t* f2, float* out, const CorrParams& P, fm_index_t n,
                              fm_index_t i0, fm_index_t i1);
bool forward_rows_fp16_avx512(const uint16_t* f1, const uint16_t* f2, float* out, const CorrParams& P, fm_index_t n,
                              fm_index_t i0, fm_index_t i1);
bool forward_rows_bf16_avx2(const uint16_t* f1, const uint16_t* f2, float* out, const CorrParams& P, fm_index_t n,
                            fm_index_t i0, fm_index_t i1);
bool forward_rows_fp16_avx2(const uint16_t* f1, const uint16_t* f2, float* out, const CorrParams& P, fm_index_t n,
                            fm_index_t i0, fm_index_t i1);
bool forward_rows_bf16_avx512bf16(const uint16_t* f1, const uint16_t* f2, float* out, const CorrParams& P,
                                  fm_index_t n, fm_index_t i0, fm_index_t i1);
bool forward_rows_bf16pairs_avx2(const uint16_t* f1, const uint16_t* f2, float* out, const CorrParams& P,
                                 fm_index_t n, fm_index_t i0, fm_index_t i1);
}  // namespace corr
}  // namespace flowmatch
