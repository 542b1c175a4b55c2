"""Choose the dev-selected IEMOCAP 6-way vanilla model by cross-validation over the
recording sessions of the train+valid dialogues (issue #11), instead of the 12 validation
dialogues alone, on which candidates a point apart swap places with the seed.

    python scripts/cv_select.py --data-root ../shared/data --out /tmp/cv [--max-minutes 40]
    cp /tmp/cv/iemocap-6way-cv-selection.json benchmarks/results/   # then make_benchmarks
    python scripts/cv_select.py --report          # print the ranking, run nothing
    python scripts/cv_select.py ... --skip NAME   # leave a candidate out of this run

Candidates: every IEMOCAP 6-way ``vanilla`` result in benchmarks/results, by its own recorded
config; results whose training configs are the same (``xc-*`` repeat other variants) run once,
under the first name.

Per candidate and fold: the config with ``cv: {fold, folds: 4, group: '^Ses\\d+'}``
(``lantern.data.folds``: fold k holds out one of sessions 1-4, trains on the other sessions'
train dialogues and stops early on their valid dialogues), its seeds, no cross-corpus scoring.
Each seed's confusion matrix on the held-out session goes into the selection result file
(``benchmarks/results/iemocap-6way-cv-selection.json``), written after every fold, so an
interrupted run resumes where it stopped (folds are reused only for the same training config
and fold scheme). The choice: the highest pooled CV weighted F1
(``lantern.evaluation.cv_selection``). Test scores are read from each candidate's own result
file and printed; they play no part in the choice.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

FOLDS, GROUP = 4, r"^Ses\d+"
SCHEME = {"folds": FOLDS, "group": GROUP, "scored": "heldout"}   # what makes old folds reusable
OUT_NAME = "iemocap-6way-cv-selection"
#: keys of a recorded config that do not change what is trained
NOT_TRAINING = ("name", "variant", "method", "output_dir", "config_dir", "evaluate_on", "threads")


def training_fingerprint(cfg: dict) -> str:
    core = {k: v for k, v in cfg.items() if k not in NOT_TRAINING}
    core["dataset"] = {k: v for k, v in core["dataset"].items() if k != "data_root"}
    return hashlib.sha256(json.dumps(core, sort_keys=True, default=str).encode()).hexdigest()[:16]


def find_candidates(results: list[dict]) -> dict[str, dict]:
    out, seen = {}, {}
    for r in sorted(results, key=lambda r: r["_file"]):
        cfg = r.get("config") or {}
        if (r.get("dataset"), r.get("label_set"), r.get("method")) != ("iemocap", "6way", "vanilla") \
                or "model" not in cfg or "dataset" not in cfg:
            continue
        fp = training_fingerprint(cfg)
        if fp in seen:
            out[seen[fp]]["same_as"].append(r["variant"])
            continue
        name = r["variant"] if r["variant"] not in out else f"{r['variant']} ({r['model']})"
        seen[fp] = name
        out[name] = {"fingerprint": fp, "model": r["model"], "features": r["features"],
                     "result_file": r["_file"], "config": cfg, "same_as": [], "folds": {},
                     "valid_weighted_f1": (r.get("valid_weighted_f1") or {}).get("mean"),
                     "train_seconds": r.get("train_seconds_total") or r.get("train_seconds"),
                     "test": {m: r["metrics"][m]["mean"] for m in ("accuracy", "weighted_f1")}}
    return out


def resume(state: dict[str, dict], old: dict | None) -> None:
    """Folds of an earlier run of the same scheme, by training config (not by name)."""
    if not old or any(old.get(k) != v for k, v in SCHEME.items()):
        return
    done = {c.get("fingerprint"): c.get("folds") or {} for c in (old.get("candidates") or {}).values()}
    for cand in state.values():
        cand["folds"] = dict(done.get(cand["fingerprint"], {}))


def run_fold(cand: dict, fold: int, data_root: str) -> dict:
    """Train the candidate's seeds on the fold; each seed's held-out confusion matrix."""
    import numpy as np

    from lantern.config import validate_config
    from lantern.data.folds import HELD_OUT
    from lantern.evaluation.metrics import classification_report
    from lantern.models.inference import label_arrays
    from lantern.records import read_predictions
    from lantern.training.experiment import run_experiment

    cfg = json.loads(json.dumps(cand["config"]))
    cfg["dataset"]["data_root"] = data_root
    cfg.pop("evaluate_on", None)
    cfg["cv"] = {"fold": fold, "folds": FOLDS, "group": GROUP}
    cfg["output_dir"] = str(REPO / "runs" / "cv" / cand["fingerprint"] / f"fold{fold}")
    validate_config(cfg, f"{cand['result_file']} (fold {fold})")
    start = time.time()
    result = run_experiment(cfg, progress=False)
    confusion = {}
    for seed in result["seeds"]:
        rows = read_predictions(Path(result["output_dir"]) / f"seed{seed}" / "predictions" / f"{HELD_OUT}.jsonl")
        classes = tuple(rows[0].probs)
        y, p, _, _ = label_arrays(rows, classes)
        confusion[str(seed)] = classification_report(y, np.asarray(p).argmax(1), list(classes))["confusion_matrix"]
    return {"confusion": confusion, "seconds": time.time() - start, "git_commit": result["git_commit"],
            "n_utterances": int(np.sum(confusion[str(result["seeds"][0])]))}


def write(state: dict, results_dir: Path) -> None:
    from lantern.evaluation.cv_selection import CV_SELECTION, ranked
    from lantern.evaluation.results import build_result, write_result

    order = ranked(state, FOLDS)
    for name, score in order:
        state[name]["cv"] = score
    complete = all(len(c["folds"]) == FOLDS for c in state.values())
    best_name, best = order[0] if order and complete else (None, None)
    chosen = state[best_name] if best_name else None
    some = next((c for c in state.values() if len(c["folds"]) == FOLDS), None)
    zero = {"mean": 0.0, "std": 0.0}
    result = build_result(
        dataset="iemocap", label_set="6way", split="train+valid",
        n_utterances=sum(f["n_utterances"] for f in some["folds"].values()) if some else 0,
        model=chosen["model"] if chosen else "—", method=CV_SELECTION, variant=f"sessions-cv{FOLDS}",
        features=chosen["features"] if chosen else {}, seeds=best["seeds"] if best else [],
        metrics={m: best[m] if best else zero for m in ("accuracy", "weighted_f1")},
        train_seconds=sum(f["seconds"] for c in state.values() for f in c["folds"].values()),
        selection_split=f"cv{FOLDS}", complete=complete, chosen=best_name, **SCHEME,
        candidates=state, config={**SCHEME, "candidates": sorted(state)})
    write_result(result, results_dir, name=OUT_NAME)


def main(argv=None) -> int:
    from lantern.evaluation.cv_selection import ranked
    from lantern.evaluation.results import load_results

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--results-dir", type=Path, default=REPO / "benchmarks" / "results")
    ap.add_argument("--data-root", default=str(REPO.parent / "shared" / "data"))
    ap.add_argument("--out", type=Path, default=None,
                    help="write the selection file here (default --results-dir); from a clean worktree "
                         "use a folder outside it, else the file itself makes the commit -dirty")
    ap.add_argument("--max-minutes", type=float, default=None, help="start no fold after this long")
    ap.add_argument("--report", action="store_true", help="print the ranking; run nothing")
    ap.add_argument("--skip", nargs="+", default=[], metavar="CANDIDATE",
                    help="run no folds of these candidates now (e.g. one whose features are not cached "
                         "and would take an hour to extract); they stay in the file, incomplete")
    args = ap.parse_args(argv)
    results = load_results(args.results_dir)
    state = find_candidates(results)
    out = args.out or args.results_dir
    earlier = out / f"{OUT_NAME}.json"
    resume(state, json.loads(earlier.read_text()) if earlier.is_file() else
           next((r for r in results if r["_file"] == f"{OUT_NAME}.json"), None))
    start = time.time()
    # the cheapest candidates first (recorded training time; a fine-tuned encoder last), so a
    # run cut short by --max-minutes completes as many candidates as it can
    cost = {n: (bool(c["config"].get("text_encoder")), c["train_seconds"] or 0.0) for n, c in state.items()}
    unknown = sorted(set(args.skip) - set(state))
    if unknown:
        ap.error(f"--skip: no candidate {', '.join(unknown)}; candidates: {', '.join(sorted(state))}")
    todo = [] if args.report else [(n, k) for n in sorted(state, key=lambda n: (cost[n], n))
                                   if n not in args.skip
                                   for k in range(FOLDS) if str(k) not in state[n]["folds"]]
    for name, fold in todo:
        if args.max_minutes is not None and time.time() - start > 60 * args.max_minutes:
            print(f"time is up with {len(todo) - todo.index((name, fold))} folds to go; rerun to go on",
                  file=sys.stderr)
            break
        state[name]["folds"][str(fold)] = run_fold(state[name], fold, args.data_root)
        write(state, out)
        print(f"{name} fold {fold}: {state[name]['folds'][str(fold)]['seconds']:.0f} s", file=sys.stderr)
    print(f"{'candidate':50s} {'folds':>5s} {'CV wF1':>14s} {'valid wF1':>9s} {'test wF1 (unused)':>17s}")
    scores = dict(ranked(state, FOLDS))
    for name in sorted(state, key=lambda n: -scores[n]["weighted_f1"]["mean"] if n in scores else 0):
        c, s = state[name], scores.get(name)
        cv = f"{s['weighted_f1']['mean']:6.2f} ± {s['weighted_f1']['std']:4.2f}" if s else "—"
        print(f"{name[:50]:50s} {len(c['folds']):5d} {cv:>14s} {c['valid_weighted_f1'] or 0:9.2f} "
              f"{c['test']['weighted_f1']:17.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
