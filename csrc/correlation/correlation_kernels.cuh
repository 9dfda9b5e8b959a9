// CUDA kernel bodies of the correlation op.  Included by correlation_cuda.cu and read as source text
// by flowmatch/ops/correlation_cupy.py (after correlation.h), so: no includes, no torch types.
// T is the stored type, A the accumulator (float for float16/bfloat16/float32, double for float64).
#pragma once

// Launch shape of the forward kernel: a block computes TW output columns of one output row for one
// vertical displacement q and OC horizontal displacements; each thread owns at most
// FM_FWD_PER_THREAD outputs.  CC channels at a time are staged in shared memory.
#define FM_FWD_THREADS 256
#define FM_FWD_PER_THREAD 4
#define FM_FWD_SMEM_FLOATS 12288

FM_HD void corr_fwd_config(const CorrParams& P, int* TW, int* OC, int* CC, int* nochunk) {
  const fm_index_t cap = FM_FWD_THREADS * FM_FWD_PER_THREAD;
  const fm_index_t oc = P.D < cap ? P.D : cap;
  fm_index_t tw = cap / oc;
  tw = tw > 32 ? 32 : (tw < 1 ? 1 : tw);
  const fm_index_t w1 = (tw - 1) * P.s1 + P.k, w2 = w1 + (oc - 1) * P.s2;
  fm_index_t cc = FM_FWD_SMEM_FLOATS / (P.k * (w1 + w2));
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

// grid = (ceil(oW / TW), oH, N · D · nochunk), block = FM_FWD_THREADS, dynamic shared memory =
// corr_fwd_smem_elems · sizeof(A).  The f2 strip (all OC displacements of this q) is staged once per
// channel chunk and reused by every thread: one global read serves up to TW · OC products.
template <typename T, typename A>
__device__ void corr_fwd_body(const T* __restrict__ f1, const T* __restrict__ f2, T* __restrict__ out,
                              const CorrParams P, int TW, int OC, int CC, int nochunk) {
  extern __shared__ __align__(16) unsigned char fm_smem_raw[];
  A* sA = reinterpret_cast<A*>(fm_smem_raw);
  const fm_index_t j0 = fm_index_t(blockIdx.x) * TW;
  const fm_index_t i = blockIdx.y;
  const fm_index_t z = blockIdx.z;
  const fm_index_t chunk = z % nochunk, nq = z / nochunk;
  const fm_index_t q = nq % P.D, n = nq / P.D;
  const fm_index_t o0 = chunk * OC;
  const fm_index_t ocount = (P.D - o0) < OC ? (P.D - o0) : OC;
  const fm_index_t w1 = fm_index_t(TW - 1) * P.s1 + P.k, w2 = w1 + (ocount - 1) * P.s2;
  A* sB = sA + fm_index_t(CC) * P.k * w1;
  const fm_index_t x1base = corr_f1_coord(P, j0, 0), x2base = x1base + corr_shift(P, o0);
  const fm_index_t dy = corr_shift(P, q);
  const int tid = threadIdx.x;

  A acc[FM_FWD_PER_THREAD];
#pragma unroll
  for (int m = 0; m < FM_FWD_PER_THREAD; ++m) acc[m] = A(0);

  for (fm_index_t c0 = 0; c0 < P.C; c0 += CC) {
    const fm_index_t cc = (P.C - c0) < CC ? (P.C - c0) : CC;
    // Stage f1 (k rows × w1) and f2 (k rows × w2) for cc channels; zero outside the image.
    for (fm_index_t t = tid; t < cc * P.k * w1; t += blockDim.x) {
      const fm_index_t c = t / (P.k * w1), rem = t % (P.k * w1), a = rem / w1, x = x1base + rem % w1;
      const fm_index_t y = corr_f1_coord(P, i, a);
      sA[t] = (corr_inside(y, P.H) && corr_inside(x, P.W)) ? static_cast<A>(f1[corr_in_offset(P, n, c0 + c, y, x)])
                                                         : A(0);
    }
    for (fm_index_t t = tid; t < cc * P.k * w2; t += blockDim.x) {
      const fm_index_t c = t / (P.k * w2), rem = t % (P.k * w2), a = rem / w2, x = x2base + rem % w2;
      const fm_index_t y = corr_f1_coord(P, i, a) + dy;
      sB[t] = (corr_inside(y, P.H) && corr_inside(x, P.W)) ? static_cast<A>(f2[corr_in_offset(P, n, c0 + c, y, x)])
                                                         : A(0);
    }
    __syncthreads();
#pragma unroll
    for (int m = 0; m < FM_FWD_PER_THREAD; ++m) {
      const fm_index_t e = tid + fm_index_t(m) * blockDim.x;
      if (e < TW * ocount) {
        const fm_index_t jj = e % TW, ot = e / TW;
        A sum = A(0);
        for (fm_index_t c = 0; c < cc; ++c)
          for (fm_index_t a = 0; a < P.k; ++a) {
            const A* ra = sA + (c * P.k + a) * w1 + jj * P.s1;
            const A* rb = sB + (c * P.k + a) * w2 + jj * P.s1 + ot * P.s2;
            for (fm_index_t b = 0; b < P.k; ++b) sum += ra[b] * rb[b];
          }
        acc[m] += sum;
      }
    }
    __syncthreads();  // the next chunk overwrites the tiles
  }
  const A scale = A(1) / A(P.k * P.k * P.C);
#pragma unroll
  for (int m = 0; m < FM_FWD_PER_THREAD; ++m) {
    const fm_index_t e = tid + fm_index_t(m) * blockDim.x;
    if (e < TW * ocount) {
      const fm_index_t jj = e % TW, ot = e / TW, j = j0 + jj;
      if (j < P.oW) out[corr_out_offset(P, n, q, o0 + ot, i, j)] = static_cast<T>(acc[m] * scale);
    }
  }
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
