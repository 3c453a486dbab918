#!/usr/bin/env bash
# Install Avengers Lab into the current Python (use a venv if you like).
#   bash scripts/setup.sh          # the app and the command line
#   bash scripts/setup.sh --test   # also the real engine (llama-cpp-python + SmolLM2) and
#                                  # Chromium for the browser test (Debian/Ubuntu, as root)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
export PIP_ROOT_USER_ACTION=ignore

# torch first, pinned: a CPU build; otherwise sentence-transformers pulls a multi-GB CUDA build.
"$PY" -m pip install --quiet "torch==2.13.0" || {
  echo "torch 2.13.0 not found; trying PyTorch's CPU index" >&2
  "$PY" -m pip install --quiet "torch==2.13.0" --index-url https://download.pytorch.org/whl/cpu
}
"$PY" -m pip install --quiet "setuptools>=68" -r requirements.txt
"$PY" -m pip install --quiet --no-deps --no-build-isolation -e .

if [ "${1:-}" = "--test" ]; then
  # the real engine of the tests; pip builds llama.cpp from source once (~9 min on 2 cores),
  # then reuses its cached wheel. A native build segfaults on CPUs that advertise AMX.
  echo "installing the real engine (llama-cpp-python builds from source the first time)..." >&2
  CMAKE_ARGS="-DGGML_NATIVE=OFF" "$PY" -m pip install --quiet -r requirements-engine.txt
fi

if [ "${1:-}" = "--test" ] && ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq chromium chromium-driver >/dev/null
  else
    echo "The browser test needs Debian's chromium: sudo apt-get install chromium chromium-driver" >&2
    exit 1
  fi
fi
echo "setup done: $("$PY" -c 'import avengers_core; print("avengers_core", avengers_core.__version__)')"
