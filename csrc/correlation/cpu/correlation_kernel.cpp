// CPU kernels of the correlation op (TORCH_LIBRARY_IMPL(flowmatch, CPU)).
//
// float32 with stride1 = 1 runs the SIMD kernels (AVX-512 or AVX2, chosen at run time by
// common/cpu_features.h; see correlation_simd.inc), stride1 = 2 or 3 the same on the stride-1 grid
// then subsampled; float16/bfloat16 are computed in float32 (their own kernels would go beside
// these, issue 16); everything else (float64, larger stride1, CPUs without AVX2) uses the
// per-element code of correlation.h, which the CUDA backward kernel runs too.  Work is split over
// (sample, row) pairs so one sample still uses every thread.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <torch/library.h>

#include "common/cpu_features.h"
#include "correlation/correlation_ops.h"
#include "correlation/cpu/correlation_cpu.h"
#include "correlation/cpu/correlation_simd.h"

namespace flowmatch {
namespace corr {
namespace {

using cpu::Simd;
Simd simd_level() { return cpu::level(); }

// Calls fn(n, begin, end) over contiguous row ranges of one sample, rows of all samples in parallel.
template <typename F>
void parallel_rows(fm_index_t N, fm_index_t rows, const F& fn) {
  at::parallel_for(0, N * rows, 1, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end;) {
      const fm_index_t n = t / rows, r0 = t % rows;
      const fm_index_t r1 = std::min<fm_index_t>(rows, r0 + (end - t));
      fn(n, r0, r1);
      t += r1 - r0;
    }
  });
}

bool use_simd(const at::Tensor& t, const CorrParams& P) {
  return t.scalar_type() == at::kFloat && P.s1 == 1 && P.k <= 63 && simd_level() != Simd::kNone;
}

// float32 with a small stride1 > 1: the SIMD kernels on the stride-1 grid (s1² times the work, still
// several times faster than the per-element path), then every s1-th row and column.
constexpr int64_t kMaxSubsampledStride = 3;

bool use_simd_subsampled(const at::Tensor& t, const CorrParams& P) {
  return t.scalar_type() == at::kFloat && P.s1 > 1 && P.s1 <= kMaxSubsampledStride && P.k <= 63 &&
         simd_level() != Simd::kNone;
}

CorrParams with_unit_stride(const CorrParams& P) {
  return corr_make_params(P.N, P.C, P.H, P.W, P.pad, P.k, P.md, 1, P.s2);
}

}  // namespace

at::Tensor forward_impl(const at::Tensor& f1_in, const at::Tensor& f2_in, const CorrParams& P, bool elementwise) {
  const auto st = f1_in.scalar_type();
  if (st == at::kHalf || st == at::kBFloat16) {  // accumulate in float32
    return forward_impl(f1_in.to(at::kFloat), f2_in.to(at::kFloat), P, elementwise).to(st);
  }
  const at::Tensor f1 = f1_in.contiguous(), f2 = f2_in.contiguous();
  if (!elementwise && use_simd_subsampled(f1, P)) {
    const at::Tensor full = forward_impl(f1, f2, with_unit_stride(P), false);
    return full.slice(2, 0, (P.oH - 1) * P.s1 + 1, P.s1).slice(3, 0, (P.oW - 1) * P.s1 + 1, P.s1).contiguous();
  }
  at::Tensor out = at::empty({P.N, P.D * P.D, P.oH, P.oW}, f1.options());
  if (!elementwise && use_simd(f1, P)) {
    const float *a = f1.const_data_ptr<float>(), *b = f2.const_data_ptr<float>();
    float* o = out.mutable_data_ptr<float>();
    const bool avx512 = simd_level() == Simd::kAvx512;
    parallel_rows(P.N, P.oH, [&](fm_index_t n, fm_index_t i0, fm_index_t i1) {
      const bool ok = avx512 ? forward_rows_avx512(a, b, o, P, n, i0, i1) : forward_rows_avx2(a, b, o, P, n, i0, i1);
      TORCH_CHECK(ok, "correlation: could not allocate a scratch tile");
    });
    return out;
  }
  AT_DISPATCH_FLOATING_TYPES(f1.scalar_type(), "correlation_forward_cpu", [&] {
    const scalar_t *a = f1.const_data_ptr<scalar_t>(), *b = f2.const_data_ptr<scalar_t>();
    scalar_t* o = out.mutable_data_ptr<scalar_t>();
    const scalar_t scale = scalar_t(1) / scalar_t(P.k * P.k * P.C);
    parallel_rows(P.N * P.D * P.D, P.oH, [&](fm_index_t nd, fm_index_t i0, fm_index_t i1) {
      const fm_index_t n = nd / (P.D * P.D), q = (nd / P.D) % P.D, d = nd % P.D;
      for (fm_index_t i = i0; i < i1; ++i)
        for (fm_index_t j = 0; j < P.oW; ++j)
          o[corr_out_offset(P, n, q, d, i, j)] = corr_forward_element<scalar_t>(a, b, P, n, q, d, i, j) * scale;
    });
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor> backward_impl(const at::Tensor& grad_in, const at::Tensor& f1_in,
                                                 const at::Tensor& f2_in, const CorrParams& P, bool elementwise,
                                                 std::array<bool, 2> mask) {
  const auto st = f1_in.scalar_type();
  if (st == at::kHalf || st == at::kBFloat16) {
    auto res = backward_impl(grad_in.to(at::kFloat), f1_in.to(at::kFloat), f2_in.to(at::kFloat), P, elementwise,
                             mask);
    return {std::get<0>(res).to(st), std::get<1>(res).to(st)};
  }
  const at::Tensor grad = grad_in.to(st).contiguous();
  const at::Tensor f1 = f1_in.contiguous(), f2 = f2_in.contiguous();
  if (!elementwise && use_simd_subsampled(f1, P)) {
    // The strided output is a subsampling of the stride-1 one: scatter grad onto that grid.
    const CorrParams P1 = with_unit_stride(P);
    at::Tensor full = at::zeros({P1.N, P1.D * P1.D, P1.oH, P1.oW}, grad.options());
    full.slice(2, 0, (P.oH - 1) * P.s1 + 1, P.s1).slice(3, 0, (P.oW - 1) * P.s1 + 1, P.s1).copy_(grad);
    return backward_impl(full, f1, f2, P1, false, mask);
  }
  // A gradient nobody asked for (needs_input_grad) is returned empty and never computed.
  at::Tensor g1 = at::empty(mask[0] ? f1.sizes() : at::IntArrayRef{0}, f1.options());
  at::Tensor g2 = at::empty(mask[1] ? f2.sizes() : at::IntArrayRef{0}, f2.options());
  // Jobs run over the requested maps only: map index m in [0, nmaps) is `which` = first + m.
  const int first = mask[0] ? 0 : 1, nmaps = int(mask[0]) + int(mask[1]);
  if (nmaps == 0) return {g1, g2};
  if (!elementwise && use_simd(f1, P)) {
    const float *g = grad.const_data_ptr<float>(), *a = f1.const_data_ptr<float>(), *b = f2.const_data_ptr<float>();
    float *o1 = g1.mutable_data_ptr<float>(), *o2 = g2.mutable_data_ptr<float>();
    const bool avx512 = simd_level() == Simd::kAvx512;
    // Rows of grad_f1 and of grad_f2 as one list of 2·N·H jobs.
    parallel_rows(nmaps * P.N, P.H, [&](fm_index_t wn, fm_index_t y0, fm_index_t y1) {
      const int which = first + int(wn / P.N);
      const fm_index_t n = wn % P.N;
      const float* other = which == 0 ? b : a;
      float* dst = which == 0 ? o1 : o2;
      const bool ok = avx512 ? backward_rows_avx512(g, other, dst, P, which, n, y0, y1)
                             : backward_rows_avx2(g, other, dst, P, which, n, y0, y1);
      TORCH_CHECK(ok, "correlation_backward: could not allocate a scratch tile");
    });
    return {g1, g2};
  }
  AT_DISPATCH_FLOATING_TYPES(f1.scalar_type(), "correlation_backward_cpu", [&] {
    const scalar_t *g = grad.const_data_ptr<scalar_t>(), *a = f1.const_data_ptr<scalar_t>(),
                   *b = f2.const_data_ptr<scalar_t>();
    scalar_t *o1 = g1.mutable_data_ptr<scalar_t>(), *o2 = g2.mutable_data_ptr<scalar_t>();
    const scalar_t scale = scalar_t(1) / scalar_t(P.k * P.k * P.C);
    parallel_rows(nmaps * P.N * P.C, P.H, [&](fm_index_t wnc, fm_index_t y0, fm_index_t y1) {
      const int which = first + int(wnc / (P.N * P.C));
      const fm_index_t n = (wnc / P.C) % P.N, c = wnc % P.C;
      const scalar_t* other = which == 0 ? b : a;
      scalar_t* dst = which == 0 ? o1 : o2;
      for (fm_index_t y = y0; y < y1; ++y)
        for (fm_index_t x = 0; x < P.W; ++x)
          dst[corr_in_offset(P, n, c, y, x)] = corr_backward_element<scalar_t>(g, other, P, which, n, c, y, x) * scale;
    });
  });
  return {g1, g2};
}

void check_cpu(const at::Tensor& t, const char* name) {
  TORCH_CHECK(t.device().is_cpu(), "correlation (CPU kernel): ", name, " is on ", t.device());
}

namespace {

at::Tensor forward_cpu(const at::Tensor& f1, const at::Tensor& f2, int64_t pad, int64_t k, int64_t md, int64_t s1,
                       int64_t s2) {
  const CorrParams P = check_inputs(f1, f2, pad, k, md, s1, s2);
  check_cpu(f1, "f1");
  check_cpu(f2, "f2");
  return forward_impl(f1, f2, P, false);
}

std::tuple<at::Tensor, at::Tensor> backward_cpu(const at::Tensor& grad, const at::Tensor& f1, const at::Tensor& f2,
                                                int64_t pad, int64_t k, int64_t md, int64_t s1, int64_t s2,
                                                std::array<bool, 2> mask) {
  const CorrParams P = check_inputs(f1, f2, pad, k, md, s1, s2);
  check_grad(grad, f1, P);
  check_cpu(f1, "f1");
  check_cpu(f2, "f2");
  check_cpu(grad, "grad_output");
  return backward_impl(grad, f1, f2, P, false, mask);
}

}  // namespace
}  // namespace corr
}  // namespace flowmatch

TORCH_LIBRARY_IMPL(flowmatch, CPU, m) {
  m.impl("correlation", &flowmatch::corr::forward_cpu);
  m.impl("correlation_backward", &flowmatch::corr::backward_cpu);
}
