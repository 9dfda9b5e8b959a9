// Run-time CPU feature selection for the SIMD kernels, one place for every op.
//
// The extension is built without -march flags; each SIMD variant carries its own target attribute
// or pragma and is called only when level() says the CPU has it.  Off x86 every query answers
// kNone and no intrinsic header is needed.  FLOWMATCH_SIMD=none|avx2|avx512 caps the level (tests
// and benchmarks of the fallbacks; avx512 = AVX-512 without its BF16 dot products); the old name
// FLOWMATCH_CORR_SIMD is read too.
#pragma once

#include <cstdlib>
#include <cstring>

namespace flowmatch {
namespace cpu {

enum class Simd { kNone = 0, kAvx2 = 1, kAvx512 = 2 };

// AVX2 means AVX2 + FMA + F16C; AVX-512 means F, BW, VL and DQ.
inline Simd hardware_level() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
    return Simd::kAvx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c"))
    return Simd::kAvx2;
#endif
  return Simd::kNone;
}

// The level the kernels use: the hardware's, capped by the environment.  Fixed at first call.
inline Simd level() {
  static const Simd lvl = [] {
    const Simd hw = hardware_level();
    const char* env = std::getenv("FLOWMATCH_SIMD");
    if (env == nullptr) env = std::getenv("FLOWMATCH_CORR_SIMD");
    if (env != nullptr) {
      if (std::strcmp(env, "none") == 0) return Simd::kNone;
      if (std::strcmp(env, "avx2") == 0 && hw != Simd::kNone) return Simd::kAvx2;
    }
    return hw;
  }();
  return lvl;
}

// AVX-512 BF16 (vdpbf16ps) on top of the AVX-512 level: false whenever level() is below kAvx512 (the
// CPU has no AVX-512, or FLOWMATCH_SIMD caps it), and when FLOWMATCH_SIMD=avx512 asks for plain
// AVX-512 without it.  Fixed at first call.
inline bool has_avx512_bf16() {
  static const bool has = [] {
#if defined(__x86_64__) || defined(__i386__)
    if (level() != Simd::kAvx512) return false;
    const char* env = std::getenv("FLOWMATCH_SIMD");
    if (env != nullptr && std::strcmp(env, "avx512") == 0) return false;
    __builtin_cpu_init();
    return bool(__builtin_cpu_supports("avx512bf16"));
#else
    return false;
#endif
  }();
  return has;
}

}  // namespace cpu
}  // namespace flowmatch
