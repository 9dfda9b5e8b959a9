// CUDA kernels of the correlation op: the launch shapes, the per-block pieces and the __global__
// functions.  One source for three compilers: nvcc (cuda/correlation_kernel.cu), NVRTC (the cupy
// backend reads this file as text after correlation.h) and g++ against the CUDA emulation layer
// (the cuda_emulated tests, csrc/cuda_emulation/).  So: only project includes, no torch types.
// T is the stored type, A the accumulator (float for float16/bfloat16/float32, double for float64).
#pragma once

#include "common/host_device.h"
#include "correlation/correlation.h"

namespace flowmatch {
namespace corr {

// Launch shape of the forward kernel: a block computes TW output columns of one output row for one
// vertical displacement q and OC horizontal displacements; each thread owns at most
// FM_FWD_PER_THREAD outputs.  CC channels at a time are staged in shared memory, at most
// FM_FWD_SMEM_BYTES of it (the 48 KiB a launch gets without opt-in) for accumulators of acc_bytes.
#define FM_FWD_THREADS 256
#define FM_FWD_PER_THREAD 4
#define FM_FWD_SMEM_BYTES 49152

FM_HD void corr_fwd_config(const CorrParams& P, fm_index_t acc_bytes, int* TW, int* OC, int* CC, int* nochunk) {
  const fm_index_t cap = FM_FWD_THREADS * FM_FWD_PER_THREAD;
  const fm_index_t oc = P.D < cap ? P.D : cap;
  fm_index_t tw = cap / oc;
  tw = tw > 32 ? 32 : (tw < 1 ? 1 : tw);
  const fm_index_t w1 = (tw - 1) * P.s1 + P.k, w2 = w1 + (oc - 1) * P.s2;
  fm_index_t cc = FM_FWD_SMEM_BYTES / acc_bytes / (P.k * (w1 + w2));
  cc = cc > 32 ? 32 : (cc < 1 ? 1 : cc);
  *TW = int(tw);
  *OC = int(oc);
  *CC = int(cc);
  *nochunk = int((P.D + oc - 1) / oc);
}

// Shared memory bytes the forward kernel needs for this configuration (per accumulator byte size).
FM_HD fm_index_t corr_fwd_smem_elems(const CorrParams& P, int TW, int OC, int CC) {
  const fm_index_t w1 = fm_index_t(TW - 1) * P.s1 + P.k, w2 = w1 + fm_index_t(OC - 1) * P.s2;
  return fm_index_t(CC) * P.k * (w1 + w2);
}

// What one block of the forward kernel computes: output row i, columns [j0, j0 + TW), vertical
// displacement q, horizontal displacements [o0, o0 + ocount) of sample n; the staged f1 strip is
// w1 wide from column x1base, the f2 strip w2 wide from x2base.
struct CorrFwdTile {
  fm_index_t j0, i, q, n, o0, ocount, w1, w2, x1base, x2base, dy;
};

FM_HD CorrFwdTile corr_fwd_tile(const CorrParams& P, int TW, int OC, int nochunk, fm_index_t bx, fm_index_t by,
                                fm_index_t bz) {
  CorrFwdTile t;
  t.j0 = bx * TW;
  t.i = by;
  const fm_index_t chunk = bz % nochunk, nq = bz / nochunk;
  t.q = nq % P.D;
  t.n = nq / P.D;
  t.o0 = chunk * OC;
  t.ocount = (P.D - t.o0) < OC ? (P.D - t.o0) : OC;
  t.w1 = fm_index_t(TW - 1) * P.s1 + P.k;
  t.w2 = t.w1 + (t.ocount - 1) * P.s2;
  t.x1base = corr_f1_coord(P, t.j0, 0);
  t.x2base = t.x1base + corr_shift(P, t.o0);
  t.dy = corr_shift(P, t.q);
  return t;
}

// Thread tid's share of staging channels [c0, c0 + cc): f1 (k rows × w1) into sA, f2 (k rows × w2)
// into sB, zero outside the image.
template <typename T, typename A>
FM_HD void corr_fwd_stage(const CorrFwdTile& tl, const CorrParams& P, const T* __restrict__ f1,
                          const T* __restrict__ f2, A* sA, A* sB, fm_index_t c0, fm_index_t cc, fm_index_t tid,
                          fm_index_t nthreads) {
  for (fm_index_t t = tid; t < cc * P.k * tl.w1; t += nthreads) {
    const fm_index_t c = t / (P.k * tl.w1), rem = t % (P.k * tl.w1), a = rem / tl.w1, x = tl.x1base + rem % tl.w1;
    const fm_index_t y = corr_f1_coord(P, tl.i, a);
    sA[t] = (corr_inside(y, P.H) && corr_inside(x, P.W)) ? static_cast<A>(f1[corr_in_offset(P, tl.n, c0 + c, y, x)])
                                                       : A(0);
  }
  for (fm_index_t t = tid; t < cc * P.k * tl.w2; t += nthreads) {
    const fm_index_t c = t / (P.k * tl.w2), rem = t % (P.k * tl.w2), a = rem / tl.w2, x = tl.x2base + rem % tl.w2;
    const fm_index_t y = corr_f1_coord(P, tl.i, a) + tl.dy;
    sB[t] = (corr_inside(y, P.H) && corr_inside(x, P.W)) ? static_cast<A>(f2[corr_in_offset(P, tl.n, c0 + c, y, x)])
                                                       : A(0);
  }
}

// Thread tid adds the staged channels to its outputs e = tid + m·nthreads (jj = e % TW, ot = e / TW).
template <typename A>
FM_HD void corr_fwd_accumulate(const CorrFwdTile& tl, const CorrParams& P, const A* sA, const A* sB, fm_index_t cc,
                               int TW, fm_index_t tid, fm_index_t nthreads, A* acc) {
  for (int m = 0; m < FM_FWD_PER_THREAD; ++m) {
    const fm_index_t e = tid + fm_index_t(m) * nthreads;
    if (e < TW * tl.ocount) {
      const fm_index_t jj = e % TW, ot = e / TW;
      A sum = A(0);
      for (fm_index_t c = 0; c < cc; ++c)
        for (fm_index_t a = 0; a < P.k; ++a) {
          const A* ra = sA + (c * P.k + a) * tl.w1 + jj * P.s1;
          const A* rb = sB + (c * P.k + a) * tl.w2 + jj * P.s1 + ot * P.s2;
          for (fm_index_t b = 0; b < P.k; ++b) sum += ra[b] * rb[b];
        }
      acc[m] += sum;
    }
  }
}

template <typename T, typename A>
FM_HD void corr_fwd_store(const CorrFwdTile& tl, const CorrParams& P, T* __restrict__ out, int TW, fm_index_t tid,
                          fm_index_t nthreads, const A* acc) {
  const A scale = A(1) / A(P.k * P.k * P.C);
  for (int m = 0; m < FM_FWD_PER_THREAD; ++m) {
    const fm_index_t e = tid + fm_index_t(m) * nthreads;
    if (e < TW * tl.ocount) {
      const fm_index_t jj = e % TW, ot = e / TW, j = tl.j0 + jj;
      if (j < P.oW) out[corr_out_offset(P, tl.n, tl.q, tl.o0 + ot, tl.i, j)] = static_cast<T>(acc[m] * scale);
    }
  }
}

// Launch shape of the forward kernel for accumulator size acc_bytes: grid = (ceil(oW / TW), oH,
// N · D · nochunk), FM_FWD_THREADS threads, smem_bytes of dynamic shared memory.  fits is false
// when grid.y/z exceed 65535 or the tiles exceed 48 KiB (the caller reports it).
struct CorrFwdLaunch {
  int TW, OC, CC, nochunk;
  fm_index_t grid_x, grid_y, grid_z, smem_bytes;
  bool fits;
};

FM_HD CorrFwdLaunch corr_fwd_launch(const CorrParams& P, fm_index_t acc_bytes) {
  CorrFwdLaunch L;
  corr_fwd_config(P, acc_bytes, &L.TW, &L.OC, &L.CC, &L.nochunk);
  L.grid_x = (P.oW + L.TW - 1) / L.TW;
  L.grid_y = P.oH;
  L.grid_z = P.N * P.D * L.nochunk;
  L.smem_bytes = corr_fwd_smem_elems(P, L.TW, L.OC, L.CC) * acc_bytes;
  L.fits = L.grid_y <= 65535 && L.grid_z <= 65535 && L.smem_bytes <= FM_FWD_SMEM_BYTES;
  return L;
}

// Backward: one thread per input element, grid-stride over N·C·H·W.
#define FM_BWD_THREADS 256
FM_HD fm_index_t corr_bwd_blocks(const CorrParams& P) {
  const fm_index_t total = P.N * P.C * P.H * P.W, want = (total + FM_BWD_THREADS - 1) / FM_BWD_THREADS;
  return want < 65535 * 32 ? want : 65535 * 32;
}

#if defined(FM_DEVICE_CODE)
// grid = (ceil(oW / TW), oH, N · D · nochunk), block = FM_FWD_THREADS, dynamic shared memory =
// corr_fwd_smem_elems · sizeof(A).  The f2 strip (all OC displacements of this q) is staged once per
// channel chunk and reused by every thread: one global read serves up to TW · OC products.
template <typename T, typename A>
__device__ void corr_fwd_body(const T* __restrict__ f1, const T* __restrict__ f2, T* __restrict__ out,
                              const CorrParams P, int TW, int OC, int CC, int nochunk) {
  extern __shared__ __align__(16) unsigned char fm_smem_raw[];
  const CorrFwdTile tl = corr_fwd_tile(P, TW, OC, nochunk, blockIdx.x, blockIdx.y, blockIdx.z);
  A* sA = reinterpret_cast<A*>(fm_smem_raw);
  A* sB = sA + fm_index_t(CC) * P.k * tl.w1;
  A acc[FM_FWD_PER_THREAD];
#pragma unroll
  for (int m = 0; m < FM_FWD_PER_THREAD; ++m) acc[m] = A(0);
  for (fm_index_t c0 = 0; c0 < P.C; c0 += CC) {
    const fm_index_t cc = (P.C - c0) < CC ? (P.C - c0) : CC;
    corr_fwd_stage<T, A>(tl, P, f1, f2, sA, sB, c0, cc, threadIdx.x, blockDim.x);
    __syncthreads();
    corr_fwd_accumulate<A>(tl, P, sA, sB, cc, TW, threadIdx.x, blockDim.x, acc);
    __syncthreads();  // the next chunk overwrites the tiles
  }
  corr_fwd_store<T, A>(tl, P, out, TW, threadIdx.x, blockDim.x, acc);
}

// One thread per input element (grid-stride over N·C·H·W); gradient of f1 (which = 0, other = f2)
// or f2 (which = 1, other = f1).  Threads of a warp take neighbouring x: coalesced reads.
template <typename T, typename A>
__device__ void corr_bwd_body(const T* __restrict__ grad, const T* __restrict__ other, T* __restrict__ grad_in,
                              const CorrParams P, int which) {
  const fm_index_t total = P.N * P.C * P.H * P.W;
  const A scale = A(1) / A(P.k * P.k * P.C);
  for (fm_index_t t = fm_index_t(blockIdx.x) * blockDim.x + threadIdx.x; t < total;
       t += fm_index_t(gridDim.x) * blockDim.x) {
    const fm_index_t x = t % P.W, y = (t / P.W) % P.H, c = (t / (P.W * P.H)) % P.C, n = t / (P.W * P.H * P.C);
    grad_in[t] = static_cast<T>(corr_backward_element<A>(grad, other, P, which, n, c, y, x) * scale);
  }
}
template <typename T, typename A>
__global__ void __launch_bounds__(FM_FWD_THREADS)
    corr_fwd_kernel(const T* __restrict__ f1, const T* __restrict__ f2, T* __restrict__ out, const CorrParams P,
                    int TW, int OC, int CC, int nochunk) {
  corr_fwd_body<T, A>(f1, f2, out, P, TW, OC, CC, nochunk);
}

template <typename T, typename A>
__global__ void __launch_bounds__(FM_BWD_THREADS)
    corr_bwd_kernel(const T* __restrict__ grad, const T* __restrict__ other, T* __restrict__ grad_in,
                    const CorrParams P, int which) {
  corr_bwd_body<T, A>(grad, other, grad_in, P, which);
}
#endif  // FM_DEVICE_CODE

}  // namespace corr
}  // namespace flowmatch
