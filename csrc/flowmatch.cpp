// The flowmatch._C extension module.
//
// Importing flowmatch._C from Python loads this shared object, which runs the static
// TORCH_LIBRARY initialisers of every op folder. The library itself is declared here;
// each op adds its own schemas with TORCH_LIBRARY_FRAGMENT in its own folder
// (csrc/<op>/<op>.cpp) and its kernels with TORCH_LIBRARY_IMPL per device (csrc/<op>/cpu/,
// csrc/<op>/cuda/; an Autocast registration would go in csrc/<op>/autocast/).
#include <Python.h>
#include <torch/library.h>

extern "C" {
// An empty Python module: it exists only so that `import flowmatch._C` loads the library.
PyObject* PyInit__C(void) {
  static struct PyModuleDef module_def = {
      PyModuleDef_HEAD_INIT, "_C", "flowmatch compiled ops (registered under torch.ops.flowmatch)", -1, nullptr,
  };
  return PyModule_Create(&module_def);
}
}

TORCH_LIBRARY(flowmatch, m) {
  // Schemas live with their ops (TORCH_LIBRARY_FRAGMENT in csrc/<op>/<op>.cpp).
}

// Test-only ops (the per-element CPU paths the tests compare against): a library of their own,
// torch.ops.flowmatch_testing, so that they are not part of the public schema.
TORCH_LIBRARY(flowmatch_testing, m) {
  // Fragments: csrc/<op>/cpu/<op>_testing.cpp.
}
