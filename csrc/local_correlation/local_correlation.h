// RAFT-style local correlation lookup: index maths and per-element code shared by the CPU kernels
// (cpu/local_correlation_kernel.cpp) and the CUDA kernels (local_correlation_kernels.cuh).  No includes, no
// torch types: the CUDA source must also build through a host-compiler CUDA emulation layer.
//
// Pixel (n, y, x) of f1 (N×C×H×W) samples f2 (N×C×H2×W2) around (cx, cy) = coords[n, 0:2, y, x]
// (pixels of f2, x then y).  Output channel k = ox·K + oy (K = 2r + 1, ox, oy in [0, K); RAFT's order:
// the x offset is the slow index) holds
//     scale · Σ_c f1[n, c, y, x] · bilinear(f2[n, c], cx + ox − r, cy + oy − r),   scale = 1/√C,
// with f2 taken as zero outside [0, W2) × [0, H2) (grid_sample's zeros padding, align_corners=True,
// on pixel coordinates).  All samples of a pixel share the fractional parts fx = cx − floor(cx) and
// fy, so the G×G grid (G = K + 1) of dot products at integer positions
//     d[gy·G + gx] = Σ_c f1[n, c, y, x] · f2[n, c, floor(cy) − r + gy, floor(cx) − r + gx]  (0 outside)
// gives every output (lc_combine): G² dot products of length C per pixel, no all-pairs volume.
#pragma once

#if defined(__CUDACC__) || defined(__CUDACC_RTC__)
#define LC_HD __host__ __device__ __forceinline__
#else
#define LC_HD inline
#endif

typedef long long lc_index_t;  // 64-bit: N·C·H·W overflows 32 bits at realistic sizes

// Largest radius: the CUDA kernels keep a (2r + 2)² grid in shared memory.
#define LC_MAX_RADIUS 15
// Coordinates beyond ±LC_COORD_LIMIT pixels (and NaN, ±inf) put every sample outside the image.
#define LC_COORD_LIMIT 1.0e9

struct LcParams {
  lc_index_t N, C, H, W;  // f1 (and coords: N×2×H×W)
  lc_index_t H2, W2;      // f2
  lc_index_t r, K, G;     // radius, K = 2r + 1 samples per axis, G = K + 1 grid positions per axis
};

LC_HD LcParams lc_make_params(lc_index_t N, lc_index_t C, lc_index_t H, lc_index_t W, lc_index_t H2,
                              lc_index_t W2, lc_index_t r) {
  LcParams P;
  P.N = N; P.C = C; P.H = H; P.W = W;
  P.H2 = H2; P.W2 = W2;
  P.r = r;
  P.K = 2 * r + 1;
  P.G = 2 * r + 2;
  return P;
}

// The grid of one pixel: integer position of grid index (0, 0) and the shared fractional parts.
template <typename A>
struct LcCorner {
  lc_index_t x0, y0;
  A fx, fy;
  bool valid;  // false for non-finite or huge coordinates: every sample is then zero
};

template <typename A>
LC_HD lc_index_t lc_floor(A v) {  // |v| < LC_COORD_LIMIT; no <cmath> on purpose (see above)
  lc_index_t i = static_cast<lc_index_t>(v);
  return (static_cast<A>(i) > v) ? i - 1 : i;
}

template <typename A>
LC_HD LcCorner<A> lc_corner(A cx, A cy, lc_index_t r) {
  LcCorner<A> c;
  const A lim = static_cast<A>(LC_COORD_LIMIT);
  c.valid = cx > -lim && cx < lim && cy > -lim && cy < lim;  // false for NaN too
  if (!c.valid) {
    c.x0 = c.y0 = 0;
    c.fx = c.fy = A(0);
    return c;
  }
  const lc_index_t ix = lc_floor(cx), iy = lc_floor(cy);
  c.fx = cx - static_cast<A>(ix);
  c.fy = cy - static_cast<A>(iy);
  c.x0 = ix - r;
  c.y0 = iy - r;
  return c;
}

LC_HD bool lc_inside(lc_index_t v, lc_index_t n) { return v >= 0 && v < n; }

// Does grid position (gx, gy) of this pixel lie inside f2?
template <typename A>
LC_HD bool lc_grid_inside(const LcParams& P, const LcCorner<A>& c, lc_index_t gx, lc_index_t gy) {
  return c.valid && lc_inside(c.y0 + gy, P.H2) && lc_inside(c.x0 + gx, P.W2);
}

// Flat offsets: f1 / output / coords NCHW, f2 NCHW.
LC_HD lc_index_t lc_out_offset(const LcParams& P, lc_index_t n, lc_index_t k, lc_index_t y, lc_index_t x) {
  return ((n * P.K * P.K + k) * P.H + y) * P.W + x;
}
LC_HD lc_index_t lc_coord_offset(const LcParams& P, lc_index_t n, lc_index_t axis, lc_index_t y, lc_index_t x) {
  return ((n * 2 + axis) * P.H + y) * P.W + x;
}
LC_HD lc_index_t lc_f1_offset(const LcParams& P, lc_index_t n, lc_index_t c, lc_index_t y, lc_index_t x) {
  return ((n * P.C + c) * P.H + y) * P.W + x;
}
LC_HD lc_index_t lc_f2_offset(const LcParams& P, lc_index_t n, lc_index_t c, lc_index_t y, lc_index_t x) {
  return ((n * P.C + c) * P.H2 + y) * P.W2 + x;
}

// Output (ox, oy) from the dot-product grid d (row-major G×G): bilinear weights of the four grid
// positions (ox, oy), (ox + 1, oy), (ox, oy + 1), (ox + 1, oy + 1).
template <typename A>
LC_HD A lc_combine(const A* d, lc_index_t G, lc_index_t ox, lc_index_t oy, A fx, A fy) {
  const A* p = d + oy * G + ox;
  const A wx0 = A(1) - fx, wy0 = A(1) - fy;
  return wy0 * (wx0 * p[0] + fx * p[1]) + fy * (wx0 * p[G] + fx * p[G + 1]);
}

// The transpose of lc_combine: weight of grid position (gx, gy) given the output gradients g
// (K² values, channel order ox·K + oy), i.e. Σ over the outputs that read (gx, gy) of g · weight.
template <typename A>
LC_HD A lc_spread(const A* g, lc_index_t K, lc_index_t gx, lc_index_t gy, A fx, A fy) {
  A w = A(0);
  for (lc_index_t a = 0; a < 2; ++a) {
    const lc_index_t ox = gx - a;
    if (!lc_inside(ox, K)) continue;
    const A wx = a ? fx : A(1) - fx;
    for (lc_index_t b = 0; b < 2; ++b) {
      const lc_index_t oy = gy - b;
      if (!lc_inside(oy, K)) continue;
      w += g[ox * K + oy] * wx * (b ? fy : A(1) - fy);
    }
  }
  return w;
}

// d(output (ox, oy)) / d(cx) and / d(cy) from the grid d (the derivative of the bilinear weights;
// one-sided at integer coordinates, as grid_sample's backward).
template <typename A>
LC_HD void lc_coord_derivs(const A* d, lc_index_t G, lc_index_t ox, lc_index_t oy, A fx, A fy, A* dcx, A* dcy) {
  const A* p = d + oy * G + ox;
  *dcx = (A(1) - fy) * (p[1] - p[0]) + fy * (p[G + 1] - p[G]);
  *dcy = (A(1) - fx) * (p[G] - p[0]) + fx * (p[G + 1] - p[1]);
}
