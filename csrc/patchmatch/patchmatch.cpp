// Schema of the PatchMatch op.  Kernels: cpu/patchmatch_kernel.cpp, cuda/patchmatch_kernel.cu (both
// built from the per-pixel stages of patchmatch_kernels.cuh); fake kernel:
// flowmatch/ops/patchmatch_registration.py.
#include <torch/library.h>

TORCH_LIBRARY_FRAGMENT(flowmatch, m) {
  // desc_a, desc_b: H×W×D float32 or float16 (same shape, dtype and device).
  // Returns flow H×W×2 float32 (u, v in pixels: A(x, y) matches B(x+u, y+v)) and cost H×W float32
  // (squared L2 distance of the matched descriptors, at the integer match).
  // init: optional H×W×2 int32 initial guess; the random initialisation is drawn around it.
  m.def("patchmatch(Tensor desc_a, Tensor desc_b, int iterations, int radius, int window, int seed, "
        "bool subpixel=False, Tensor? init=None) -> (Tensor, Tensor)");
}
