#!/usr/bin/env bash
# Set up (scripts/setup.sh, plus the default embedded LLM Qwen2.5-Coder-1.5B) and run the main
# job on embedded defaults: `lantern predict` on the example conversation shipped in
# examples/, with the shipped vanilla model and LLM refinement, offline. It ends with
# runs/example/report.html. Extra arguments go to `lantern predict` (e.g. --llm off).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/setup_llm.sh --models 1.5b
. .venv/bin/activate
export OMP_NUM_THREADS=2 MKL_NUM_THREADS=2 TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
lantern predict examples/conversation.jsonl --out runs/example "$@"
