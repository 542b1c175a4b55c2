#!/usr/bin/env bash
# Run the Lantern benchmark queue (benchmarks/lantern-queue.txt) in order, skipping runs whose
# answers are complete and fused: each run goes through scripts/bench_lantern.sh, which commits
# its answers after every chunk, so the queue survives the end of a session and continues.
#
#   bash scripts/bench_queue.sh            # run until the queue is done (or the session ends)
#   bash scripts/bench_queue.sh --list     # say what is done and what is left
set -euo pipefail
cd "$(dirname "$0")/.."
. .venv/bin/activate
status() {   # "done" when the run's result files are in benchmarks/results/ (valid-only runs:
             # when the validation split is complete)
  python - "$@" <<'PY'
import sys
from pathlib import Path
from lantern.config import FusionSection, load_config
from lantern.pipeline import answers_dir, refine_settings, vanilla_config
from lantern.pipeline.settings import vanilla_name
args = sys.argv[1:]
valid_only = args[0] == "SPLITS=valid"
args = args[1:] if valid_only else args
overrides = [a for a, prev in zip(args[1:], args) if prev == "--set"]
cfg = load_config(args[0], overrides)
settings, vcfg = refine_settings(cfg), vanilla_config(cfg)
suffix = settings.variant_suffix + ("" if settings.t == 3 else f"-t{settings.t}")
names = [f"{vcfg['dataset']['name']}-{vcfg['dataset'].get('label_set')}-{vanilla_name(vcfg)}-lantern-{v}{suffix}.json"
         for v in FusionSection.of(cfg).variants]
done = all((Path("benchmarks/results") / n).exists() for n in names)
if valid_only:
    done = (answers_dir(cfg) / "valid.summary.json").exists()
print(("done " if done else "todo ") + str(answers_dir(cfg)))
PY
}
grep -v '^\s*#' benchmarks/lantern-queue.txt | sed '/^\s*$/d' | while read -r line; do
  # shellcheck disable=SC2086
  state=$(status $line)
  if [ "${1:-}" = "--list" ]; then echo "$state  ($line)"; continue; fi
  case "$state" in
    done*) ;;
    *) echo "== $line"
       case "$line" in
         SPLITS=valid\ *) SPLITS=valid bash scripts/bench_lantern.sh ${line#SPLITS=valid } ;;
         *) bash scripts/bench_lantern.sh $line; python scripts/make_benchmarks.py ;;
       esac ;;
  esac
done
