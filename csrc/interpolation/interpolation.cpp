// Schema of the edge-aware interpolation op.  Kernel: cpu/interpolation_kernel.cpp (CPU only);
// fake kernel: flowmatch/ops/interpolation_registration.py.
#include <torch/library.h>

TORCH_LIBRARY_FRAGMENT(flowmatch, m) {
  // seeds_xy M×2 int32 (x, y) pixel positions in image 1; seeds_flow M×2 float32 (u, v) pixels;
  // cost_map H×W float32 >= 0 (step cost of the geodesic distance).  Returns the dense flow
  // H×W×2 float32 and an M bool mask of the seeds kept by the prefilter.
  m.def("edge_aware_interpolate(Tensor seeds_xy, Tensor seeds_flow, Tensor cost_map, int nn, float coef_kernel, "
        "bool affine, int pref_nn, float pref_th) -> (Tensor, Tensor)");
}
