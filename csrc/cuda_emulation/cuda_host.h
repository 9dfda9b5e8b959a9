// cuda_host.h: run CUDA kernel source, unchanged, on the CPU with a host compiler (tests only).
//
// Usage (one include, one launch call):
//
//   #include <torch/library.h>                // other headers first (the layer defines __shared__,
//   #include "cuda_emulation/cuda_host.h"     //  __global__, threadIdx, ...), then the layer; g++ -std=c++20
//   #include "myop/myop_kernels.cuh"           // the very file the .cu includes
//   CUDA_HOST_DYNAMIC_SHARED(unsigned char, smem_raw)  // once per `extern __shared__` name, at the
//                                                       // namespace of the function declaring it
//   cuda_host::launch(my_kernel<float>, dim3(gx, gy), dim3(256), smem_bytes, arg1, arg2, ...);
//
// Compile with g++ -std=c++20 -fno-extern-tls-init (without it g++ calls a TLS init function that
// does not exist for `extern __shared__` arrays); tests/ops/emulated.py shows the build.
//
// What it emulates, and how:
// - __global__/__device__/__host__/__forceinline__/__launch_bounds__ vanish; __ldg(p) is *p;
//   __restrict__ is the host compiler's own.  dim3, uint3; threadIdx/blockIdx/blockDim/gridDim are
//   thread-locals that the scheduler sets for the CUDA thread that runs.
// - A block runs as blockDim.x·y·z fibers (own stacks with a guard page; a 20-instruction context
//   switch on x86-64, ucontext elsewhere) on one OS thread;
//   blocks are spread over a few OS threads (CUDA_HOST_WORKERS, default 2), so atomics really race.
//   A fiber runs until it finishes or waits at a barrier; fibers start in a shuffled order (seeded
//   per block).  A kernel that reads shared memory another thread has not yet written, because a
//   __syncthreads() is missing, therefore reads garbage here too.
// - __syncthreads(): a barrier over the block's live threads (threads that returned do not count,
//   as on sm_70+).  Waiting threads of a block that can never all arrive: cuda_host::Error.
// - __shared__ is thread_local: one copy per OS thread = per block in flight, shared by its fibers.
//   `extern __shared__ T name[]` needs CUDA_HOST_DYNAMIC_SHARED(T, name) in the test source; the
//   launcher fills the first smem_bytes with 0xFF before every block (uninitialised reads show as
//   NaN / -1) and rejects smem_bytes above the 48 KiB a launch without opt-in gets.  Under
//   AddressSanitizer the bytes past smem_bytes are poisoned: any overrun is reported.
// - Warp intrinsics (__shfl_sync, __shfl_up/down/xor_sync, __ballot_sync, __any/__all_sync,
//   __syncwarp): lanes of a warp exchange values through a per-warp board with two warp barriers,
//   so a lane sees exactly what the hardware would give it (own value for out-of-segment sources).
// - atomicAdd/Sub/Max/Min/Exch/CAS on int, unsigned, long long, unsigned long long, float, double:
//   std::atomic_ref, sequentially consistent.
// Not emulated: streams, cooperative groups, textures, __constant__, device-side printf formatting
// differences, timing.  Kernels must not rely on warp-synchronous execution without *_sync intrinsics
// (they would not be correct on Volta+ either).
#pragma once

#if defined(__CUDACC__) || defined(__CUDACC_RTC__)
#error "cuda_host.h is for host compilers; nvcc compiles the kernels natively"
#endif

#include <ucontext.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <functional>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#define CUDA_HOST_ASAN 1
#endif

#define CUDA_HOST_EMULATION 1
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
#define __shared__ thread_local

struct uint3 {
  unsigned x, y, z;
};
struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};

inline thread_local uint3 threadIdx{0, 0, 0};
inline thread_local uint3 blockIdx{0, 0, 0};
inline thread_local dim3 blockDim{1, 1, 1};
inline thread_local dim3 gridDim{1, 1, 1};
constexpr int warpSize = 32;

template <typename T>
inline T __ldg(const T* p) {
  return *p;
}

namespace cuda_host {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

constexpr size_t kMaxDynamicSharedBytes = 48 * 1024;

namespace detail {

// ---- execution contexts: switch stacks without a system call ------------------------------------
#if defined(__x86_64__)
// cuda_host_switch(save, to): saves the callee-saved registers, MXCSR and the x87 control word on
// the current stack, stores the stack pointer in *save, and resumes the context saved at `to`.
// Weak, so that several test sources may include this header.
asm(R"(
  .text
  .weak cuda_host_switch
  .hidden cuda_host_switch
  .type cuda_host_switch,@function
cuda_host_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  subq $8, %rsp
  stmxcsr (%rsp)
  fnstcw 4(%rsp)
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  ldmxcsr (%rsp)
  fldcw 4(%rsp)
  addq $8, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size cuda_host_switch, .-cuda_host_switch
)");
extern "C" void cuda_host_switch(void** save, void* to);

struct Context {
  void* sp = nullptr;
};
// A fresh context that starts fn() (which must never return) on [stack, stack + bytes).
inline void make_context(Context& c, void* stack, size_t bytes, void (*fn)()) {
  auto top = reinterpret_cast<uintptr_t>(stack) + bytes;
  top &= ~uintptr_t(15);
  auto* w = reinterpret_cast<uint64_t*>(top);
  *--w = 0;                                  // fn's (unused) return address: fn sees rsp ≡ 8 mod 16
  *--w = reinterpret_cast<uint64_t>(fn);     // popped by the final `ret` of cuda_host_switch
  for (int r = 0; r < 6; ++r) *--w = 0;      // rbp rbx r12 r13 r14 r15
  *--w = 0x037F00001F80ull;                  // MXCSR default, x87 control word default
  c.sp = w;
}
inline void swap_context(Context& from, Context& to) { cuda_host_switch(&from.sp, to.sp); }
#else
struct Context {
  ucontext_t uc;
};
inline void make_context(Context& c, void* stack, size_t bytes, void (*fn)()) {
  getcontext(&c.uc);
  c.uc.uc_stack.ss_sp = stack;
  c.uc.uc_stack.ss_size = bytes;
  c.uc.uc_link = nullptr;
  makecontext(&c.uc, fn, 0);
}
inline void swap_context(Context& from, Context& to) { swapcontext(&from.uc, &to.uc); }
#endif

// Accessors of the thread_local buffers behind `extern __shared__` names (CUDA_HOST_DYNAMIC_SHARED).
inline std::vector<unsigned char* (*)()>& dynamic_shared_buffers() {
  static std::vector<unsigned char* (*)()> v;
  return v;
}
struct RegisterDynamicShared {
  explicit RegisterDynamicShared(unsigned char* (*get)()) { dynamic_shared_buffers().push_back(get); }
};

enum class State { kReady, kBlockWait, kWarpWait, kDone };

struct Fiber {
  Context ctx;
  void* stack = nullptr;  // mmap'ed, lowest page is a guard
  size_t stack_bytes = 0;
  State state = State::kReady;
  uint3 tid{0, 0, 0};
};

// Warp exchange board: one 64-bit slot per lane, plus the barrier bookkeeping of the warp.
struct Warp {
  uint64_t slot[32];
  unsigned arrived = 0;  // lanes waiting at the warp barrier
  unsigned mask = 0;     // lanes the waiting ones named
};

inline size_t stack_size() {
  const char* env = std::getenv("CUDA_HOST_STACK_KB");
  size_t kb = env ? std::strtoul(env, nullptr, 10) : 0;
#if defined(CUDA_HOST_ASAN)
  if (kb == 0) kb = 512;
#endif
  if (kb == 0) kb = 128;
  return kb * 1024;
}

// Runs the blocks handed to one OS thread.  Fibers and their stacks are reused across blocks.
class BlockRunner {
 public:
  ~BlockRunner() {
    for (Fiber& f : fibers_) {
      if (!f.stack) continue;
#if defined(CUDA_HOST_ASAN)
      ASAN_UNPOISON_MEMORY_REGION(f.stack, f.stack_bytes);  // the region may be mapped again for other data
#endif
      munmap(f.stack, f.stack_bytes);
    }
  }

  void run(const std::function<void()>& body, dim3 block, uint3 bidx, size_t smem_bytes) {
    const unsigned n = block.x * block.y * block.z;
    ensure_fibers(n);
    body_ = &body;
    live_ = n;
    block_waiting_ = 0;
    warps_.assign((n + 31) / 32, Warp{});
    reset_dynamic_shared(smem_bytes);
    blockIdx = bidx;
    blockDim = block;
    // Shuffled start order (deterministic per block): no reliance on thread 0 running first.
    order_.resize(n);
    for (unsigned t = 0; t < n; ++t) order_[t] = t;
    uint64_t h = 0x9E3779B97F4A7C15ull * (1 + bidx.x + 65536ull * (bidx.y + 65536ull * bidx.z));
    for (unsigned t = n; t > 1; --t) {
      h ^= h >> 33;
      h *= 0xFF51AFD7ED558CCDull;
      h ^= h >> 29;
      std::swap(order_[t - 1], order_[h % t]);
    }
    for (unsigned t = 0; t < n; ++t) {
      Fiber& f = fibers_[t];
      f.tid = uint3{t % block.x, (t / block.x) % block.y, t / (block.x * block.y)};
      f.state = State::kReady;
#if defined(CUDA_HOST_ASAN)
      // The previous fiber on this stack never returned from entry(): clear its stale redzones.
      ASAN_UNPOISON_MEMORY_REGION(static_cast<char*>(f.stack) + f.stack_bytes - 16384, 16384);
#endif
      make_context(f.ctx, static_cast<char*>(f.stack) + page(), f.stack_bytes - page(), &BlockRunner::entry);
    }
    while (live_ > 0) {
      bool ran = false;
      for (unsigned t : order_) {
        if (fibers_[t].state != State::kReady) continue;
        ran = true;
        resume(t);
        if (error_) std::rethrow_exception(std::exchange(error_, nullptr));
      }
      if (!ran && !release()) throw Error("cuda_host: deadlock: threads of block (" + std::to_string(bidx.x) + "," +
                                          std::to_string(bidx.y) + "," + std::to_string(bidx.z) +
                                          ") wait at barriers that can never complete (divergent __syncthreads "
                                          "or *_sync mask?)");
    }
#if defined(CUDA_HOST_ASAN)
    unpoison_dynamic_shared();
#endif
  }

  // Called on a fiber: wait until every live thread of the block arrives.
  void block_barrier() {
    fibers_[current_].state = State::kBlockWait;
    ++block_waiting_;
    yield();
  }

  // Called on a fiber: wait until every live lane named in `mask` of this warp arrives.
  void warp_barrier(unsigned mask) {
    Warp& w = warps_[current_ / 32];
    w.arrived |= 1u << (current_ % 32);
    w.mask |= mask;
    fibers_[current_].state = State::kWarpWait;
    yield();
  }

  Warp& warp() { return warps_[current_ / 32]; }
  unsigned lane() const { return current_ % 32; }

  static BlockRunner& self() {
    static thread_local BlockRunner runner;
    return runner;
  }

 private:
  static size_t page() { return size_t(sysconf(_SC_PAGESIZE)); }

  void ensure_fibers(unsigned n) {
    if (fibers_.size() >= n) return;
    const size_t bytes = stack_size() + page();
    const size_t old = fibers_.size();
    fibers_.resize(n);
    for (size_t t = old; t < n; ++t) {
      void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
      if (p == MAP_FAILED) throw Error("cuda_host: cannot map a fiber stack");
      mprotect(p, page(), PROT_NONE);  // stack overflow faults instead of corrupting memory
      fibers_[t].stack = p;
      fibers_[t].stack_bytes = bytes;
    }
  }

  void reset_dynamic_shared(size_t smem_bytes) {
    for (auto get : dynamic_shared_buffers()) {
      unsigned char* buf = get();
#if defined(CUDA_HOST_ASAN)
      ASAN_UNPOISON_MEMORY_REGION(buf, kMaxDynamicSharedBytes);
#endif
      std::memset(buf, 0xFF, smem_bytes);
#if defined(CUDA_HOST_ASAN)
      ASAN_POISON_MEMORY_REGION(buf + smem_bytes, kMaxDynamicSharedBytes - smem_bytes);
#endif
    }
  }
#if defined(CUDA_HOST_ASAN)
  void unpoison_dynamic_shared() {
    for (auto get : dynamic_shared_buffers()) ASAN_UNPOISON_MEMORY_REGION(get(), kMaxDynamicSharedBytes);
  }
#endif

  // Releases the barriers whose threads have all arrived; false when none could be released.
  bool release() {
    bool any = false;
    for (size_t w = 0; w < warps_.size(); ++w) {
      Warp& wp = warps_[w];
      if (!wp.arrived) continue;
      unsigned live_lanes = 0;
      for (unsigned l = 0; l < 32 && w * 32 + l < order_.size(); ++l)
        if (fibers_[w * 32 + l].state != State::kDone) live_lanes |= 1u << l;
      if ((wp.mask & live_lanes & ~wp.arrived) == 0) {
        for (unsigned l = 0; l < 32; ++l)
          if (wp.arrived & (1u << l)) fibers_[w * 32 + l].state = State::kReady;
        wp.arrived = wp.mask = 0;
        any = true;
      }
    }
    if (!any && block_waiting_ > 0 && block_waiting_ == live_) {
      for (unsigned t = 0; t < order_.size(); ++t)
        if (fibers_[t].state == State::kBlockWait) fibers_[t].state = State::kReady;
      block_waiting_ = 0;
      any = true;
    }
    return any;
  }

  void resume(unsigned t) {
    current_ = t;
    threadIdx = fibers_[t].tid;
#if defined(CUDA_HOST_ASAN)
    void* fake = nullptr;
    __sanitizer_start_switch_fiber(&fake, static_cast<char*>(fibers_[t].stack) + page(),
                                   fibers_[t].stack_bytes - page());
#endif
    swap_context(sched_, fibers_[t].ctx);
#if defined(CUDA_HOST_ASAN)
    __sanitizer_finish_switch_fiber(fake, nullptr, nullptr);
#endif
  }

  void yield() {
#if defined(CUDA_HOST_ASAN)
    void* fake = nullptr;
    __sanitizer_start_switch_fiber(&fake, sched_bottom_, sched_size_);
#endif
    swap_context(fibers_[current_].ctx, sched_);
#if defined(CUDA_HOST_ASAN)
    __sanitizer_finish_switch_fiber(fake, nullptr, nullptr);
#endif
    threadIdx = fibers_[current_].tid;
  }

  static void entry() {
    BlockRunner& r = self();
#if defined(CUDA_HOST_ASAN)
    __sanitizer_finish_switch_fiber(nullptr, &r.sched_bottom_, &r.sched_size_);
#endif
    try {
      (*r.body_)();
    } catch (...) {
      if (!r.error_) r.error_ = std::current_exception();
    }
    r.fibers_[r.current_].state = State::kDone;
    --r.live_;
#if defined(CUDA_HOST_ASAN)
    __sanitizer_start_switch_fiber(nullptr, r.sched_bottom_, r.sched_size_);
#endif
    swap_context(r.fibers_[r.current_].ctx, r.sched_);  // never resumed: the block is done with it
  }

  std::vector<Fiber> fibers_;
  std::vector<unsigned> order_;
  std::vector<Warp> warps_;
  Context sched_;
  const std::function<void()>* body_ = nullptr;
  unsigned current_ = 0, live_ = 0, block_waiting_ = 0;
  std::exception_ptr error_;
#if defined(CUDA_HOST_ASAN)
  const void* sched_bottom_ = nullptr;
  size_t sched_size_ = 0;
#endif
};

inline unsigned workers() {
  const char* env = std::getenv("CUDA_HOST_WORKERS");
  const long n = env ? std::strtol(env, nullptr, 10) : 2;
  return unsigned(std::max(1L, std::min(n, 64L)));
}

template <typename T>
inline uint64_t to_bits(T v) {
  static_assert(sizeof(T) <= 8 && std::is_trivially_copyable_v<T>, "warp shuffles move at most 8 bytes");
  uint64_t b = 0;
  std::memcpy(&b, &v, sizeof(T));
  return b;
}
template <typename T>
inline T from_bits(uint64_t b) {
  T v;
  std::memcpy(&v, &b, sizeof(T));
  return v;
}

// Lane `src` of this lane's warp gets read, or the own value when `src` < 0.
template <typename T>
inline T warp_exchange(unsigned mask, T var, int src) {
  BlockRunner& r = BlockRunner::self();
  r.warp().slot[r.lane()] = to_bits(var);
  r.warp_barrier(mask);  // every lane has written
  const T out = src < 0 ? var : from_bits<T>(r.warp().slot[src]);
  r.warp_barrier(mask);  // every lane has read: slots may be reused
  return out;
}

}  // namespace detail

// Runs kernel<<<grid, block, smem_bytes>>>(args...) to completion (synchronously).  Arguments are
// copied once, as a launch does; exceptions thrown on a CUDA thread are rethrown here.
template <typename... KArgs, typename... Args>
void launch(void (*kernel)(KArgs...), dim3 grid, dim3 block, size_t smem_bytes, Args&&... args) {
  static_assert(sizeof...(KArgs) == sizeof...(Args), "cuda_host::launch: wrong number of kernel arguments");
  if (block.x * block.y * block.z == 0 || block.x * block.y * block.z > 1024 || block.z > 64)
    throw Error("cuda_host::launch: invalid block size");
  if (grid.y > 65535 || grid.z > 65535) throw Error("cuda_host::launch: grid.y/grid.z above 65535");
  if (smem_bytes > kMaxDynamicSharedBytes) throw Error("cuda_host::launch: dynamic shared memory above 48 KiB");
  const std::tuple<std::decay_t<KArgs>...> packed(std::forward<Args>(args)...);
  const std::function<void()> body = [&] { std::apply(kernel, packed); };
  const uint64_t nblocks = uint64_t(grid.x) * grid.y * grid.z;
  std::atomic<uint64_t> next{0};
  std::exception_ptr first_error;
  std::mutex error_mutex;
  auto work = [&] {
    try {
      gridDim = grid;
      for (uint64_t b; (b = next.fetch_add(1)) < nblocks;) {
        const uint3 bidx{unsigned(b % grid.x), unsigned((b / grid.x) % grid.y), unsigned(b / (uint64_t(grid.x) * grid.y))};
        detail::BlockRunner::self().run(body, block, bidx, smem_bytes);
      }
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mutex);
      if (!first_error) first_error = std::current_exception();
      next.store(nblocks);
    }
  };
  const unsigned nw = unsigned(std::min<uint64_t>(detail::workers(), nblocks));
  std::vector<std::thread> pool;
  for (unsigned w = 1; w < nw; ++w) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
  if (first_error) std::rethrow_exception(first_error);
}

}  // namespace cuda_host

// Defines the per-block buffer behind `extern __shared__ T name[]` (at the namespace of the function
// that declares it).
#define CUDA_HOST_DYNAMIC_SHARED(T, name)                                                             \
  alignas(64) thread_local T name[::cuda_host::kMaxDynamicSharedBytes / sizeof(T)];                   \
  static const ::cuda_host::detail::RegisterDynamicShared cuda_host_register_##name(                 \
      +[]() -> unsigned char* { return reinterpret_cast<unsigned char*>(name); })

// ---- device functions -------------------------------------------------------------------------
inline void __syncthreads() { cuda_host::detail::BlockRunner::self().block_barrier(); }
inline void __syncwarp(unsigned mask = 0xFFFFFFFFu) { cuda_host::detail::BlockRunner::self().warp_barrier(mask); }
inline void __threadfence() { std::atomic_thread_fence(std::memory_order_seq_cst); }
inline void __threadfence_block() { std::atomic_thread_fence(std::memory_order_seq_cst); }

template <typename T>
inline T __shfl_sync(unsigned mask, T var, int src_lane, int width = warpSize) {
  const int lane = int(cuda_host::detail::BlockRunner::self().lane());
  return cuda_host::detail::warp_exchange(mask, var, (lane & ~(width - 1)) + (src_lane & (width - 1)));
}
template <typename T>
inline T __shfl_up_sync(unsigned mask, T var, unsigned delta, int width = warpSize) {
  const int lane = int(cuda_host::detail::BlockRunner::self().lane());
  const int src = lane - int(delta);
  return cuda_host::detail::warp_exchange(mask, var, src < (lane & ~(width - 1)) ? -1 : src);
}
template <typename T>
inline T __shfl_down_sync(unsigned mask, T var, unsigned delta, int width = warpSize) {
  const int lane = int(cuda_host::detail::BlockRunner::self().lane());
  const int src = lane + int(delta);
  return cuda_host::detail::warp_exchange(mask, var, src >= (lane & ~(width - 1)) + width ? -1 : src);
}
template <typename T>
inline T __shfl_xor_sync(unsigned mask, T var, int lane_mask, int width = warpSize) {
  const int lane = int(cuda_host::detail::BlockRunner::self().lane());
  const int src = lane ^ lane_mask;
  return cuda_host::detail::warp_exchange(mask, var, src >= (lane & ~(width - 1)) + width ? -1 : src);
}
inline unsigned __ballot_sync(unsigned mask, int pred) {
  auto& r = cuda_host::detail::BlockRunner::self();
  r.warp().slot[r.lane()] = pred != 0;
  r.warp_barrier(mask);
  unsigned out = 0;
  for (unsigned l = 0; l < 32; ++l)
    if ((mask & (1u << l)) && r.warp().slot[l]) out |= 1u << l;
  r.warp_barrier(mask);
  return out;
}
inline int __any_sync(unsigned mask, int pred) { return __ballot_sync(mask, pred) != 0; }
inline int __all_sync(unsigned mask, int pred) { return (__ballot_sync(mask, pred) & mask) == mask; }

template <typename T>
inline T atomicAdd(T* address, T val) {
  return std::atomic_ref<T>(*address).fetch_add(val);
}
template <typename T>
inline T atomicSub(T* address, T val) {
  return std::atomic_ref<T>(*address).fetch_sub(val);
}
template <typename T>
inline T atomicExch(T* address, T val) {
  return std::atomic_ref<T>(*address).exchange(val);
}
template <typename T>
inline T atomicCAS(T* address, T compare, T val) {
  std::atomic_ref<T>(*address).compare_exchange_strong(compare, val);
  return compare;  // the old value either way
}
template <typename T>
inline T atomicMax(T* address, T val) {
  std::atomic_ref<T> a(*address);
  T old = a.load();
  while (old < val && !a.compare_exchange_weak(old, val)) {
  }
  return old;
}
template <typename T>
inline T atomicMin(T* address, T val) {
  std::atomic_ref<T> a(*address);
  T old = a.load();
  while (val < old && !a.compare_exchange_weak(old, val)) {
  }
  return old;
}
