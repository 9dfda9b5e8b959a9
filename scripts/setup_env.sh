#!/usr/bin/env bash
# Creates (or refreshes) the project's virtual environment: pinned torch, the requirements,
# and flowmatch itself in editable mode. Idempotent: a stamp file records what was installed,
# so a second run with nothing changed returns in well under a second.
#
#   FLOWMATCH_TORCH=cpu  (default) torch==2.13.0, the CPU wheel
#   FLOWMATCH_TORCH=cuda           torch==2.14.1, a CUDA 13 build (several GB)
#   FLOWMATCH_TORCH="torch==X.Y.Z" any other pin
#   unset: the torch this VENV was last set up with (the CPU wheel for a new one), so that
#          `VENV=... make build` after a CUDA set-up does not put the CPU wheel back.
#
# CUDA kernels (no GPU needed to build, nvcc 13 at /usr/local/cuda), in a checkout of its own:
# the extension is built in place, so one checkout holds the .so of one torch at a time.
#   FLOWMATCH_TORCH=cuda VENV=/tmp/cudavenv make build
# setup.py then adds csrc/**/*.cu. With no GPU visible it compiles for every architecture
# in its default TORCH_CUDA_ARCH_LIST (minutes each); set e.g. TORCH_CUDA_ARCH_LIST=8.6 for one.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
stamp="$VENV/.flowmatch-setup"
if [ -z "${FLOWMATCH_TORCH:-}" ] && [ -f "$stamp" ]; then
  FLOWMATCH_TORCH=$(cut -d' ' -f1 "$stamp")
fi
case "${FLOWMATCH_TORCH:-cpu}" in
  cpu) TORCH_SPEC="torch==2.13.0" ;;
  cuda) TORCH_SPEC="torch==2.14.1" ;;
  *) TORCH_SPEC="$FLOWMATCH_TORCH" ;;
esac
PY=${PYTHON:-python3}
# pip warns about local wheel folders this machine kind does not have: keep the log readable.
quiet() { "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2); }
key="$TORCH_SPEC $(cat requirements.txt setup.py | sha1sum | cut -c1-16)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$key" ]; then
  exit 0
fi
echo "[setup] virtual environment $VENV with $TORCH_SPEC"
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
quiet "$VENV/bin/python" -m pip install -q --disable-pip-version-check "$TORCH_SPEC"
quiet "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r requirements.txt
# Editable install for the `flowmatch` command; the extension is built separately and
# incrementally by `make build` (pip would rebuild it from scratch every time).
FLOWMATCH_NO_EXT_BUILD=1 quiet "$VENV/bin/python" -m pip install -q --disable-pip-version-check \
  --no-build-isolation --no-deps --config-settings editable_mode=compat -e .
echo "$key" > "$stamp"
