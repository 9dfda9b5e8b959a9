// A kernel that exercises the emulation layer itself (tests/ops/test_cuda_emulated.py checks it
// against numpy): dynamic shared memory, __syncthreads, warp shuffles, __ballot_sync, atomicAdd.
// Plain CUDA: it would give the same results on a GPU.  blockDim.x must be a multiple of 32.
#pragma once

namespace flowmatch {
namespace selftest {

// sums[block] = Σ x over the block, total += Σ x (atomicAdd), ballots[warp] = __ballot_sync(x > 0),
// shuffled[0/1/2][i] = x of lane +1 (down), lane −2 (up), lane ^ 5 (xor) within its warp.
__global__ void selftest_kernel(const float* __restrict__ x, int n, float* sums, float* total, int64_t* ballots,
                                float* shuffled) {
  extern __shared__ float selftest_smem[];
  const unsigned tid = threadIdx.x, i = blockIdx.x * blockDim.x + tid;
  const float v = i < unsigned(n) ? __ldg(x + i) : 0.f;
  const unsigned full = 0xFFFFFFFFu;
  const float down = __shfl_down_sync(full, v, 1), up = __shfl_up_sync(full, v, 2), xr = __shfl_xor_sync(full, v, 5);
  if (i < unsigned(n)) {
    shuffled[i] = down;
    shuffled[n + i] = up;
    shuffled[2 * n + i] = xr;
  }
  const unsigned ballot = __ballot_sync(full, v > 0.f);
  if (tid % 32 == 0) ballots[blockIdx.x * (blockDim.x / 32) + tid / 32] = int64_t(ballot);
  selftest_smem[tid] = v;
  __syncthreads();
  for (unsigned s = blockDim.x / 2; s >= 32; s /= 2) {  // tree in shared memory down to one warp
    if (tid < s) selftest_smem[tid] += selftest_smem[tid + s];
    __syncthreads();
  }
  if (tid < 32) {
    float w = selftest_smem[tid];
    for (int off = 16; off > 0; off /= 2) w += __shfl_down_sync(full, w, off);
    if (tid == 0) {
      sums[blockIdx.x] = w;
      atomicAdd(total, w);
    }
  }
}

}  // namespace selftest
}  // namespace flowmatch
