# flowmatch: every target sets itself up (virtual env, pinned torch, the compiled extension).
#   make demo    flow between two frames with the project's best method, written and scored
#   make test    the default test suite (slow tests excluded; `make test-all` runs them too)
#   make bench   the benchmark scripts
#   make cuda-check  compile every csrc/**/*.cu with nvcc (no GPU needed)
#   make gpu-check   on a CUDA machine: every GPU test + GPU benchmarks, one table (skips without a GPU)
# Switch to a CUDA build of torch with FLOWMATCH_TORCH=cuda (see scripts/setup_env.sh).
VENV ?= .venv
PY := $(VENV)/bin/python
export VENV

.PHONY: setup build demo test test-all bench cuda-check gpu-check clean

setup:
	@bash scripts/setup_env.sh

# flock: several shells (or helpers) may ask for a build at once; ninja makes it incremental.
build: setup
	@flock .build.lock $(PY) setup.py -q build_ext --inplace > .build.log 2>&1 || { cat .build.log; exit 1; }

demo: build
	@$(PY) -m flowmatch demo --out demo_output

test: build
	@$(PY) -m pytest -q -m "not slow" tests

test-all: build
	@$(PY) -m pytest -q tests

bench: build
	@for f in benchmarks/bench_*.py; do echo "== $$f"; $(PY) $$f || exit 1; done

cuda-check: setup
	@$(PY) scripts/check_cuda.py

gpu-check: build
	@$(PY) scripts/gpu_check.py

clean:
	rm -rf build flowmatch/_C*.so .build.log demo_output  # build/ also holds the emulated-kernel test builds
