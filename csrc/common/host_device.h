// FM_HD marks functions compiled for both the host and the device, and FM_DEVICE_CODE says whether
// the kernel bodies (__global__ functions, __syncthreads, shared memory) are being compiled: by nvcc,
// by NVRTC (the cupy backend inlines this file) or by a host compiler against the CUDA emulation
// layer of the tests (csrc/cuda_emulation/cuda_host.h).  No includes: NVRTC reads this as text.
#pragma once

#if defined(__CUDACC__) || defined(__CUDACC_RTC__)
#define FM_HD __host__ __device__ __forceinline__
#else
#define FM_HD inline
#endif

#if defined(__CUDACC__) || defined(__CUDACC_RTC__) || defined(CUDA_HOST_EMULATION)
#define FM_DEVICE_CODE 1
#endif
