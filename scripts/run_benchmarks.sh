#!/usr/bin/env bash
# Re-run the vanilla benchmarks behind BENCHMARKS.md (3 seeds each, selected on valid) and
# regenerate the table. Usage: bash scripts/run_benchmarks.sh [iemocap|meld|all]
set -euo pipefail
cd "$(dirname "$0")/.."
. .venv/bin/activate
export OMP_NUM_THREADS=2 TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
which="${1:-all}"
run() { echo "== lantern train $*"; lantern train "$@" --no-progress; }
if [ "$which" = meld ] || [ "$which" = all ]; then
  for model in context sdt corect; do run "configs/meld-$model.yaml"; done
fi
if [ "$which" = iemocap ] || [ "$which" = all ]; then
  run configs/iemocap-context.yaml
  for model in context sdt corect; do
    for labels in 6way 4way-merge 4way-drop; do
      run "configs/iemocap-$model-ft.yaml" --set "dataset.label_set=$labels"
    done
  done
fi
python scripts/make_benchmarks.py
