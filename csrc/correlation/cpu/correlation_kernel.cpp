// CPU kernels of the correlation op (TORCH_LIBRARY_IMPL(flowmatch, CPU)).
//
// float32 with stride1 = 1 runs the SIMD kernels (AVX-512 or AVX2, chosen at run time by
// common/cpu_features.h; see correlation_simd.inc), stride1 = 2 or 3 the same on the stride-1 grid
// then subsampled.  bfloat16/float16 forwards run the same kernels on their 16-bit inputs, widened
// to float32 as they are packed (or, for bf16 on CPUs with AVX-512 BF16, multiplied in pairs by
// vdpbf16ps: correlation_simd_avx512bf16.cpp), float32 accumulation, the result rounded to the input
// type once; their backwards run the float32 kernels on float32 copies of grad, f1 and f2 and round
// the gradients once.  Everything else (float64, larger stride1, CPUs without AVX2) uses the
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

bool is_half(at::ScalarType st) { return st == at::kHalf || st == at::kBFloat16; }

// The forward kernels; kind_name() is what the test-only op correlation_cpu_kernel reports.
enum class FwdKind { kElementwise, kF32Avx2, kF32Avx512, kBF16Avx2, kBF16Avx512, kBF16Avx512Dp, kF16Avx2, kF16Avx512,
                     kBF16PairsAvx2 };

const char* kind_name(FwdKind k) {
  switch (k) {
    case FwdKind::kF32Avx2: return "float32_avx2";
    case FwdKind::kF32Avx512: return "float32_avx512";
    case FwdKind::kBF16Avx2: return "bfloat16_avx2";
    case FwdKind::kBF16Avx512: return "bfloat16_avx512";
    case FwdKind::kBF16Avx512Dp: return "bfloat16_avx512bf16";
    case FwdKind::kF16Avx2: return "float16_avx2";
    case FwdKind::kF16Avx512: return "float16_avx512";
    case FwdKind::kBF16PairsAvx2: return "bfloat16_pairs_avx2";
    default: return "elementwise";
  }
}

// The SIMD kernel the op runs for dtype st and P (on the stride-1 grid when P.s1 > 1), or kElementwise.
FwdKind choose_forward(at::ScalarType st, const CorrParams& P) {
  if (P.k > 63 || P.s1 > kMaxSubsampledStride || simd_level() == Simd::kNone) return FwdKind::kElementwise;
  const bool avx512 = simd_level() == Simd::kAvx512;
  switch (st) {
    case at::kFloat: return avx512 ? FwdKind::kF32Avx512 : FwdKind::kF32Avx2;
    case at::kHalf: return avx512 ? FwdKind::kF16Avx512 : FwdKind::kF16Avx2;
    case at::kBFloat16:
      if (cpu::has_avx512_bf16()) return FwdKind::kBF16Avx512Dp;  // only on CPUs with avx512_bf16
      return avx512 ? FwdKind::kBF16Avx512 : FwdKind::kBF16Avx2;
    default: return FwdKind::kElementwise;
  }
}

// One SIMD forward (P.s1 == 1): float32 output, rounded to a half input's type here, once.
at::Tensor forward_simd(const at::Tensor& f1_in, const at::Tensor& f2_in, const CorrParams& P, FwdKind kind) {
  const at::Tensor f1 = f1_in.contiguous(), f2 = f2_in.contiguous();
  at::Tensor out = at::empty({P.N, P.D * P.D, P.oH, P.oW}, f1.options().dtype(at::kFloat));
  const void *a = f1.const_data_ptr(), *b = f2.const_data_ptr();
  const auto *af = static_cast<const float*>(a), *bf = static_cast<const float*>(b);
  const auto *ah = static_cast<const uint16_t*>(a), *bh = static_cast<const uint16_t*>(b);
  float* o = out.mutable_data_ptr<float>();
  parallel_rows(P.N, P.oH, [&](fm_index_t n, fm_index_t i0, fm_index_t i1) {
    bool ok = false;
    switch (kind) {
      case FwdKind::kF32Avx2: ok = forward_rows_avx2(af, bf, o, P, n, i0, i1); break;
      case FwdKind::kF32Avx512: ok = forward_rows_avx512(af, bf, o, P, n, i0, i1); break;
      case FwdKind::kBF16Avx2: ok = forward_rows_bf16_avx2(ah, bh, o, P, n, i0, i1); break;
      case FwdKind::kBF16Avx512: ok = forward_rows_bf16_avx512(ah, bh, o, P, n, i0, i1); break;
      case FwdKind::kBF16Avx512Dp: ok = forward_rows_bf16_avx512bf16(ah, bh, o, P, n, i0, i1); break;
      case FwdKind::kF16Avx2: ok = forward_rows_fp16_avx2(ah, bh, o, P, n, i0, i1); break;
      case FwdKind::kF16Avx512: ok = forward_rows_fp16_avx512(ah, bh, o, P, n, i0, i1); break;
      case FwdKind::kBF16PairsAvx2: ok = forward_rows_bf16pairs_avx2(ah, bh, o, P, n, i0, i1); break;
      default: break;
    }
    TORCH_CHECK(ok, "correlation: could not allocate a scratch tile");
  });
  return out;
}

// forward_simd on the stride-1 grid, then every s1-th row and column (stride1 <= 3), rounded once.
at::Tensor forward_simd_strided(const at::Tensor& f1, const at::Tensor& f2, const CorrParams& P, FwdKind kind) {
  at::Tensor out = forward_simd(f1, f2, P.s1 == 1 ? P : with_unit_stride(P), kind);
  if (P.s1 > 1)
    out = out.slice(2, 0, (P.oH - 1) * P.s1 + 1, P.s1).slice(3, 0, (P.oW - 1) * P.s1 + 1, P.s1).contiguous();
  return out.to(f1.scalar_type());
}

}  // namespace

const char* forward_kernel_name(at::ScalarType st, const CorrParams& P) { return kind_name(choose_forward(st, P)); }

at::Tensor forward_bf16_pairs_emulated(const at::Tensor& f1, const at::Tensor& f2, const CorrParams& P) {
  TORCH_CHECK(f1.scalar_type() == at::kBFloat16 && P.s1 <= kMaxSubsampledStride && P.k <= 63,
              "correlation_bf16_pairs: bfloat16 inputs, stride1 <= 3 and kernel_size <= 63 only");
  TORCH_CHECK(simd_level() != Simd::kNone, "correlation_bf16_pairs: needs a CPU with AVX2, FMA and F16C");
  return forward_simd_strided(f1, f2, P, FwdKind::kBF16PairsAvx2);
}

at::Tensor forward_impl(const at::Tensor& f1_in, const at::Tensor& f2_in, const CorrParams& P, bool elementwise) {
  const auto st = f1_in.scalar_type();
  const FwdKind kind = elementwise ? FwdKind::kElementwise : choose_forward(st, P);
  if (kind != FwdKind::kElementwise) return forward_simd_strided(f1_in, f2_in, P, kind);
  if (is_half(st)) {  // the per-element path in float32, rounded once
    return forward_impl(f1_in.to(at::kFloat), f2_in.to(at::kFloat), P, true).to(st);
  }
  const at::Tensor f1 = f1_in.contiguous(), f2 = f2_in.contiguous();
  at::Tensor out = at::empty({P.N, P.D * P.D, P.oH, P.oW}, f1.options());
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
  if (is_half(st)) {  // float32 after an exact conversion; each gradient rounded once
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
