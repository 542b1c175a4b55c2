#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run the main job on embedded defaults: train and evaluate
# the vanilla multi-task model on IEMOCAP 6-way from the data root, over 3 seeds, selected on
# the validation split. Extra arguments go to `lantern train` (e.g. --limit 2 for a smoke run).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
export OMP_NUM_THREADS=2 MKL_NUM_THREADS=2 TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
lantern train "${LANTERN_MAIN_CONFIG:-configs/iemocap-context.yaml}" "$@"
