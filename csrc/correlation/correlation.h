// FlowNet correlation: index maths, bounds and per-element sums shared by the CPU kernels, the CUDA
// kernels and the cupy source (which reads this very file as text: only project includes, which
// it inlines).
//
// Coordinates here are those of the unpadded inputs.  Output (i, j), kernel offset (a, b) and
// displacement (q, o) read
//   f1 at (Y1, X1) = (i·s1 + md + a − p, j·s1 + md + b − p)
//   f2 at (Y1 + (q − r)·s2, X1 + (o − r)·s2)
// with zero outside [0, H) × [0, W), and out[n, q·D + o, i, j] = Σ f1·f2 / (k²·C).
#pragma once

#include "common/host_device.h"

namespace flowmatch {
namespace corr {

typedef long long fm_index_t;  // 64-bit: N·C·H·W and N·D²·oH·oW overflow 32 bits at realistic sizes

struct CorrParams {
  fm_index_t N, C, H, W;        // input shape
  fm_index_t pad, k, md, s1, s2;  // layer parameters
  fm_index_t r, D, oH, oW;      // derived: radius, displacements per axis, output size
};

// oH = floor((H + 2p − 2·md − k) / s1) + 1, or 0 when the window does not fit.
FM_HD fm_index_t corr_out_size(fm_index_t n, fm_index_t pad, fm_index_t k, fm_index_t md, fm_index_t s1) {
  const fm_index_t span = n + 2 * pad - 2 * md - k;
  return span >= 0 ? span / s1 + 1 : 0;
}

FM_HD CorrParams corr_make_params(fm_index_t N, fm_index_t C, fm_index_t H, fm_index_t W, fm_index_t pad,
                                  fm_index_t k, fm_index_t md, fm_index_t s1, fm_index_t s2) {
  CorrParams P;
  P.N = N; P.C = C; P.H = H; P.W = W;
  P.pad = pad; P.k = k; P.md = md; P.s1 = s1; P.s2 = s2;
  P.r = md / s2;
  P.D = 2 * P.r + 1;
  P.oH = corr_out_size(H, pad, k, md, s1);
  P.oW = corr_out_size(W, pad, k, md, s1);
  return P;
}

// Displacement in pixels of displacement index q (or o) in [0, D).
FM_HD fm_index_t corr_shift(const CorrParams& P, fm_index_t q) { return (q - P.r) * P.s2; }

// Input row/column of f1 read by output row i (column j) with kernel offset a (b).
FM_HD fm_index_t corr_f1_coord(const CorrParams& P, fm_index_t i, fm_index_t a) {
  return i * P.s1 + P.md + a - P.pad;
}

// Inverse: the output row i whose window reads input row y at kernel offset a, or −1 when none.
FM_HD fm_index_t corr_out_coord(const CorrParams& P, fm_index_t y, fm_index_t a, fm_index_t limit) {
  const fm_index_t t = y + P.pad - P.md - a;
  if (t < 0 || t % P.s1 != 0) return -1;
  const fm_index_t i = t / P.s1;
  return i < limit ? i : -1;
}

FM_HD bool corr_inside(fm_index_t v, fm_index_t n) { return v >= 0 && v < n; }

// Flat NCHW offsets.
FM_HD fm_index_t corr_in_offset(const CorrParams& P, fm_index_t n, fm_index_t c, fm_index_t y, fm_index_t x) {
  return ((n * P.C + c) * P.H + y) * P.W + x;
}
FM_HD fm_index_t corr_out_offset(const CorrParams& P, fm_index_t n, fm_index_t q, fm_index_t o, fm_index_t i,
                                 fm_index_t j) {
  return ((n * P.D * P.D + q * P.D + o) * P.oH + i) * P.oW + j;
}

// One output element (un-normalised sum; multiply by 1/(k²·C)).  T is the stored type, A the
// accumulator (float for half types).
template <typename A, typename T>
FM_HD A corr_forward_element(const T* f1, const T* f2, const CorrParams& P, fm_index_t n, fm_index_t q,
                             fm_index_t o, fm_index_t i, fm_index_t j) {
  A acc = A(0);
  const fm_index_t dy = corr_shift(P, q), dx = corr_shift(P, o);
  for (fm_index_t a = 0; a < P.k; ++a) {
    const fm_index_t y1 = corr_f1_coord(P, i, a), y2 = y1 + dy;
    if (!corr_inside(y1, P.H) || !corr_inside(y2, P.H)) continue;
    for (fm_index_t b = 0; b < P.k; ++b) {
      const fm_index_t x1 = corr_f1_coord(P, j, b), x2 = x1 + dx;
      if (!corr_inside(x1, P.W) || !corr_inside(x2, P.W)) continue;
      for (fm_index_t c = 0; c < P.C; ++c) {
        acc += static_cast<A>(f1[corr_in_offset(P, n, c, y1, x1)]) * static_cast<A>(f2[corr_in_offset(P, n, c, y2, x2)]);
      }
    }
  }
  return acc;
}

// Gradient (un-normalised) at input element (n, c, y, x) of f1 (which = 0) or f2 (which = 1):
// Σ over every output element that read it of grad_out · the other map's value it was multiplied by.
template <typename A, typename T>
FM_HD A corr_backward_element(const T* grad, const T* other, const CorrParams& P, int which, fm_index_t n,
                              fm_index_t c, fm_index_t y, fm_index_t x) {
  A acc = A(0);
  for (fm_index_t q = 0; q < P.D; ++q) {
    const fm_index_t dy = corr_shift(P, q);
    // f1 row of this product: y itself (which = 0) or y − dy (which = 1); the other map is at y ± dy.
    const fm_index_t y1 = which == 0 ? y : y - dy, yo = which == 0 ? y + dy : y - dy;
    if (!corr_inside(yo, P.H) || !corr_inside(y1, P.H)) continue;
    for (fm_index_t a = 0; a < P.k; ++a) {
      const fm_index_t i = corr_out_coord(P, y1, a, P.oH);
      if (i < 0) continue;
      for (fm_index_t o = 0; o < P.D; ++o) {
        const fm_index_t dx = corr_shift(P, o);
        const fm_index_t x1 = which == 0 ? x : x - dx, xo = which == 0 ? x + dx : x - dx;
        if (!corr_inside(xo, P.W) || !corr_inside(x1, P.W)) continue;
        const A v = static_cast<A>(other[corr_in_offset(P, n, c, yo, xo)]);
        for (fm_index_t b = 0; b < P.k; ++b) {
          const fm_index_t j = corr_out_coord(P, x1, b, P.oW);
          if (j < 0) continue;
          acc += static_cast<A>(grad[corr_out_offset(P, n, q, o, i, j)]) * v;
        }
      }
    }
  }
  return acc;
}

}  // namespace corr
}  // namespace flowmatch
