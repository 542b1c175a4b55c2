#!/usr/bin/env bash
# A full Lantern benchmark run that survives the end of a session: LLM answers are asked in
# chunks (`lantern refine --max-fields N`), and after every chunk the run's answer folder under
# benchmarks/answers/ is committed, so the next session (or another machine) continues from
# what is committed. When every split is answered, `lantern fuse` writes the result files.
#
#   bash scripts/bench_lantern.sh configs/lantern-iemocap.yaml [--set KEY=VALUE ...]
#
# Environment: CHUNK (new answers per chunk, default 150), NO_COMMIT=1 (do not commit),
# SPLITS (default "valid test"; "valid" answers only the validation split and skips the fuse:
# the other-corpus answers a shipped merger is validated on, scripts/validate_merger.py).
# Run it alone: two processes on two cores slow each other, and the cost figures (LLM time
# against a prompt-speed check taken at the start of every chunk) would show it.
set -euo pipefail
cd "$(dirname "$0")/.."
CONFIG="$1"; shift
CHUNK="${CHUNK:-150}"
SPLITS="${SPLITS:-valid test}"
SPLIT_ARGS=(); for s in $SPLITS; do SPLIT_ARGS+=(--split "$s"); done
N_SPLITS=$(echo $SPLITS | wc -w)
. .venv/bin/activate
export OMP_NUM_THREADS=2 MKL_NUM_THREADS=2 TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
FOLDER=$(python -c "
import sys
from lantern.config import load_config
from lantern.pipeline import answers_dir
print(answers_dir(load_config(sys.argv[1], sys.argv[2:])))" "$CONFIG" $(printf '%s\n' "$@" | sed -n 's/^--set=//p;/^--set$/d;/^[^-]/p'))
echo "answers: $FOLDER"
commit() {
  [ "${NO_COMMIT:-0}" = 1 ] && return 0
  git add "$FOLDER" >/dev/null 2>&1 || return 0
  for _ in 1 2 3 4 5; do   # the index may be locked by a commit in another shell
    if git commit -q -m "benchmarks: LLM answers so far ($(basename "$FOLDER"))" -- "$FOLDER"; then return 0; fi
    git diff --cached --quiet -- "$FOLDER" && return 0
    sleep 3
  done
}
while true; do
  out=$(lantern refine "$CONFIG" "$@" "${SPLIT_ARGS[@]}" --max-fields "$CHUNK" --no-progress 2>&1 | grep -E '^(valid|test):' || true)
  echo "$(date +%H:%M:%S) $out"
  commit
  if [ "$(printf '%s\n' "$out" | grep -c 'fields (')" -ge "$N_SPLITS" ]; then break; fi
  if ! printf '%s\n' "$out" | grep -qE 'stopped after|fields \('; then
    echo "refine failed; see: lantern refine $CONFIG $*" >&2; exit 1
  fi
done
case " $SPLITS " in *" test "*) lantern fuse "$CONFIG" "$@" ;; esac
