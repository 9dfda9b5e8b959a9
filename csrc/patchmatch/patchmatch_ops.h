// Host-side input validation shared by the CPU and CUDA PatchMatch kernels (cpu/, cuda/), so both reject bad
// input with the same messages (TORCH_CHECK raises a Python exception; nothing aborts).  Only
// ATen/c10 headers: .cu files include this too and must not see torch/extension.h.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

#include <cstdint>
#include <optional>

namespace flowmatch {
namespace pm {

// desc_a, desc_b: H×W×D float32/float16 of equal shape and dtype, not empty and small enough for
// int indexing; iterations >= 1; radius, window in [0, 2^20); init (optional): H×W×2 int32 on the
// descriptors' device.  Device placement of desc_b is the caller's check (CUDA only).
inline void check_inputs(const at::Tensor& desc_a, const at::Tensor& desc_b, int64_t iterations, int64_t radius,
                         int64_t window, const std::optional<at::Tensor>& init) {
  TORCH_CHECK(desc_a.dim() == 3 && desc_b.dim() == 3, "patchmatch: desc_a and desc_b must be H×W×D, got ",
              desc_a.sizes(), " and ", desc_b.sizes());
  TORCH_CHECK(desc_a.sizes() == desc_b.sizes(), "patchmatch: desc_a ", desc_a.sizes(), " and desc_b ",
              desc_b.sizes(), " differ in shape");
  TORCH_CHECK(desc_a.scalar_type() == desc_b.scalar_type(), "patchmatch: desc_a and desc_b differ in dtype");
  TORCH_CHECK(desc_a.scalar_type() == at::kFloat || desc_a.scalar_type() == at::kHalf,
              "patchmatch: descriptors must be float32 or float16, got ", desc_a.scalar_type());
  TORCH_CHECK(iterations >= 1, "patchmatch: iterations must be >= 1, got ", iterations);
  TORCH_CHECK(radius >= 0 && radius < (1 << 20), "patchmatch: radius must be in [0, 2^20), got ", radius);
  TORCH_CHECK(window >= 0 && window < (1 << 20), "patchmatch: window must be in [0, 2^20), got ", window);
  const int64_t H = desc_a.size(0), W = desc_a.size(1), D = desc_a.size(2);
  TORCH_CHECK(H >= 1 && W >= 1 && D >= 1, "patchmatch: empty descriptor field ", desc_a.sizes());
  TORCH_CHECK(H < (1 << 30) / W && D < (1 << 24), "patchmatch: descriptor field too large ", desc_a.sizes());
  if (init.has_value() && init->defined()) {
    TORCH_CHECK(init->dim() == 3 && init->size(0) == H && init->size(1) == W && init->size(2) == 2 &&
                    init->scalar_type() == at::kInt && init->device() == desc_a.device(),
                "patchmatch: init must be an H×W×2 int32 tensor on the descriptors' device, got ", init->sizes());
  }
}

}  // namespace pm
}  // namespace flowmatch
