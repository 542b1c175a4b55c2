#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run the whole test suite. With CI=true, tests that need the
# real data under $LANTERN_DATA_ROOT (default ../shared/data) fail instead of skipping.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
export OMP_NUM_THREADS=2 MKL_NUM_THREADS=2 TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
python -m pytest "$@"
