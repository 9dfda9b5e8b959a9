// CUDA kernels of the local correlation lookup.  Included by cuda/local_correlation_kernel.cu after
// local_correlation.h (whose per-element code they share with the CPU kernels).  Plain CUDA only
// (blockIdx, threadIdx, blockDim, __syncthreads, static __shared__ arrays, atomicAdd), no torch types
// and no includes, so that a host-compiler CUDA emulation layer can run this very source.
// A is the compute type (float or double; the launcher converts float16/bfloat16 to float32).
#pragma once

#define LC_THREADS 128  // threads per block; a power of two (the coords-gradient reduction)
#define LC_CHUNK 128    // f1 channels staged in shared memory at a time
#define LC_MAX_G2 ((2 * LC_MAX_RADIUS + 2) * (2 * LC_MAX_RADIUS + 2))
#define LC_PER_THREAD ((LC_MAX_G2 + LC_THREADS - 1) / LC_THREADS)  // grid positions per thread

// Every kernel: grid = (W, H, N), one block of LC_THREADS threads per f1 pixel (x, y, n).

// The pixel's G×G dot products into s_d.  The block stages LC_CHUNK channels of the f1 vector in
// s_f1; thread t owns grid positions t, t + LC_THREADS, ... and keeps their sums in registers.
// Neighbouring threads read neighbouring x of one f2 row: coalesced within a grid row.
template <typename A>
__device__ void lc_block_grid_dots(const LcParams& P, const LcCorner<A>& cr, const A* __restrict__ f1,
                                   const A* __restrict__ f2, lc_index_t n, lc_index_t y, lc_index_t x, A* s_f1,
                                   A* s_d) {
  const lc_index_t G2 = P.G * P.G, plane = P.H2 * P.W2;
  A acc[LC_PER_THREAD];
  for (int m = 0; m < LC_PER_THREAD; ++m) acc[m] = A(0);
  for (lc_index_t c0 = 0; c0 < P.C; c0 += LC_CHUNK) {
    const lc_index_t cn = (P.C - c0) < LC_CHUNK ? (P.C - c0) : LC_CHUNK;
    for (lc_index_t c = threadIdx.x; c < cn; c += blockDim.x) s_f1[c] = f1[lc_f1_offset(P, n, c0 + c, y, x)];
    __syncthreads();
    for (int m = 0; m < LC_PER_THREAD; ++m) {
      const lc_index_t g = threadIdx.x + lc_index_t(m) * LC_THREADS;
      const lc_index_t gy = g / P.G, gx = g % P.G;
      if (g < G2 && lc_grid_inside(P, cr, gx, gy)) {
        const A* b = f2 + lc_f2_offset(P, n, c0, cr.y0 + gy, cr.x0 + gx);
        A s = A(0);
        for (lc_index_t c = 0; c < cn; ++c) s += s_f1[c] * b[c * plane];
        acc[m] += s;
      }
    }
    __syncthreads();  // the next chunk overwrites s_f1
  }
  for (int m = 0; m < LC_PER_THREAD; ++m) {
    const lc_index_t g = threadIdx.x + lc_index_t(m) * LC_THREADS;
    if (g < G2) s_d[g] = acc[m];
  }
}

template <typename A>
__global__ void lc_forward_kernel(const A* __restrict__ f1, const A* __restrict__ f2, const A* __restrict__ coords,
                                  A* __restrict__ out, const LcParams P, const A scale) {
  __shared__ A s_f1[LC_CHUNK];
  __shared__ A s_d[LC_MAX_G2];
  const lc_index_t x = blockIdx.x, y = blockIdx.y, n = blockIdx.z;
  const LcCorner<A> cr =
      lc_corner<A>(coords[lc_coord_offset(P, n, 0, y, x)], coords[lc_coord_offset(P, n, 1, y, x)], P.r);
  lc_block_grid_dots<A>(P, cr, f1, f2, n, y, x, s_f1, s_d);
  __syncthreads();
  for (lc_index_t k = threadIdx.x; k < P.K * P.K; k += blockDim.x)
    out[lc_out_offset(P, n, k, y, x)] = scale * lc_combine<A>(s_d, P.G, k / P.K, k % P.K, cr.fx, cr.fy);
}

// grad_f1 (written, when need_f1) and grad_f2 (atomically accumulated into a zeroed g2, when need_f2):
// the pixel's grid weights (the transpose of lc_combine) go to shared memory, then thread t handles
// channels t, t + LC_THREADS, ...
template <typename A>
__global__ void lc_backward_kernel(const A* __restrict__ grad, const A* __restrict__ f1, const A* __restrict__ f2,
                                   const A* __restrict__ coords, A* __restrict__ g1, A* __restrict__ g2,
                                   const LcParams P, const A scale, int need_f1, int need_f2) {
  __shared__ A s_g[LC_MAX_G2];
  __shared__ A s_w[LC_MAX_G2];
  const lc_index_t x = blockIdx.x, y = blockIdx.y, n = blockIdx.z;
  const LcCorner<A> cr =
      lc_corner<A>(coords[lc_coord_offset(P, n, 0, y, x)], coords[lc_coord_offset(P, n, 1, y, x)], P.r);
  const lc_index_t G2 = P.G * P.G;
  for (lc_index_t k = threadIdx.x; k < P.K * P.K; k += blockDim.x) s_g[k] = grad[lc_out_offset(P, n, k, y, x)];
  __syncthreads();
  for (lc_index_t g = threadIdx.x; g < G2; g += blockDim.x) {
    const lc_index_t gy = g / P.G, gx = g % P.G;
    s_w[g] = lc_grid_inside(P, cr, gx, gy) ? scale * lc_spread<A>(s_g, P.K, gx, gy, cr.fx, cr.fy) : A(0);
  }
  __syncthreads();
  for (lc_index_t c = threadIdx.x; c < P.C; c += blockDim.x) {
    const A* b = f2 + lc_f2_offset(P, n, c, 0, 0);
    const A v = f1[lc_f1_offset(P, n, c, y, x)];
    A acc = A(0);
    for (lc_index_t g = 0; g < G2; ++g) {
      const lc_index_t gy = g / P.G, gx = g % P.G;
      if (!lc_grid_inside(P, cr, gx, gy)) continue;
      const lc_index_t pos = (cr.y0 + gy) * P.W2 + cr.x0 + gx;
      if (need_f1) acc += s_w[g] * b[pos];
      if (need_f2) atomicAdd(g2 + lc_f2_offset(P, n, c, 0, 0) + pos, s_w[g] * v);
    }
    if (need_f1) g1[lc_f1_offset(P, n, c, y, x)] = acc;
  }
}

// grad_coords: the grid of dot products again, through the derivatives of the bilinear weights,
// summed over the K² outputs by a shared-memory tree reduction.
template <typename A>
__global__ void lc_coords_grad_kernel(const A* __restrict__ grad, const A* __restrict__ f1, const A* __restrict__ f2,
                                      const A* __restrict__ coords, A* __restrict__ gc, const LcParams P,
                                      const A scale) {
  __shared__ A s_f1[LC_CHUNK];
  __shared__ A s_d[LC_MAX_G2];
  __shared__ A s_rx[LC_THREADS];
  __shared__ A s_ry[LC_THREADS];
  const lc_index_t x = blockIdx.x, y = blockIdx.y, n = blockIdx.z;
  const LcCorner<A> cr =
      lc_corner<A>(coords[lc_coord_offset(P, n, 0, y, x)], coords[lc_coord_offset(P, n, 1, y, x)], P.r);
  lc_block_grid_dots<A>(P, cr, f1, f2, n, y, x, s_f1, s_d);
  __syncthreads();
  A sx = A(0), sy = A(0);
  if (cr.valid) {
    for (lc_index_t k = threadIdx.x; k < P.K * P.K; k += blockDim.x) {
      A dx, dy;
      lc_coord_derivs<A>(s_d, P.G, k / P.K, k % P.K, cr.fx, cr.fy, &dx, &dy);
      const A gk = grad[lc_out_offset(P, n, k, y, x)];
      sx += gk * dx;
      sy += gk * dy;
    }
  }
  s_rx[threadIdx.x] = sx;
  s_ry[threadIdx.x] = sy;
  __syncthreads();
  for (unsigned s = LC_THREADS / 2; s > 0; s >>= 1) {
    if (threadIdx.x < s) {
      s_rx[threadIdx.x] += s_rx[threadIdx.x + s];
      s_ry[threadIdx.x] += s_ry[threadIdx.x + s];
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    gc[lc_coord_offset(P, n, 0, y, x)] = scale * s_rx[0];
    gc[lc_coord_offset(P, n, 1, y, x)] = scale * s_ry[0];
  }
}
