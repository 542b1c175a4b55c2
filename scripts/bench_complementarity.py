"""How much the LLM's answers could add to the vanilla model, and one more merger that tries
to take it: a stacked logistic regression (issue #8, "report what you tried").

    python scripts/bench_complementarity.py benchmarks/answers/<run> [<run> ...]

For each committed Lantern run (its ``valid.jsonl`` / ``test.jsonl`` answers and vanilla
predictions; no LLM needed) and each split it reports, with the LLM's opinion taken as the
mean of an utterance's t answers (as ``uniform`` does):

- accuracy of the vanilla model and of the LLM alone, and how often their top classes agree;
- how often the LLM is right where the vanilla model is wrong, and wrong where it is right;
- the oracle that picks whichever of the two is right (an upper bound no merger reaches:
  it says how much complementary signal there is, not how much can be found).

The attempt, ``stacking``: a multinomial logistic regression on per-utterance features
(vanilla and mean-answer log-probabilities; each one's entropy and top-2 margin; their
agreement; the log-probabilities scaled by the vanilla entropy and margin and the LLM margin,
so the weight on each source can depend on how sure it is), standardised, fitted on the
validation split. Its inverse regularisation C is chosen by 4-fold cross-validation over
whole validation dialogues; that out-of-fold accuracy is reported next to vanilla's on the
same utterances (what a guard would judge it by). The test prediction of the fit on all of
validation is scored against vanilla with the paired bootstrap, as every merger is.

Writes ``benchmarks/results/<dataset>-<label set>-<model>-lantern-stacking.json`` (the
dataset, model, features, config and LLM cost copied from the run's ``vanilla-only`` result,
so the row sits beside the run's other mergers) with the figures above under
``complementarity``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

C_GRID = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0)
FOLDS = 4
VARIANT = "stacking"


def complementarity(vanilla: np.ndarray, llm: np.ndarray, y: np.ndarray) -> dict:
    """Percent figures of how the vanilla and LLM top classes relate to the gold labels."""
    v_right, l_right = vanilla.argmax(1) == y, llm.argmax(1) == y
    pct = lambda a: float(100 * np.mean(a)) if a.size else None   # noqa: E731
    return {"n": int(y.size), "vanilla_accuracy": pct(v_right), "llm_accuracy": pct(l_right),
            "top_class_agreement": pct(vanilla.argmax(1) == llm.argmax(1)),
            "llm_right_where_vanilla_wrong": pct(l_right[~v_right]),
            "llm_wrong_where_vanilla_right": pct(~l_right[v_right]),
            "oracle_accuracy": pct(v_right | l_right)}


def stacking_features(vanilla: np.ndarray, llm: np.ndarray) -> np.ndarray:
    """(n, F) features of one utterance's two opinions (see the module docstring)."""
    p, q = np.clip(vanilla, 1e-6, 1.0), np.clip(llm, 1e-6, 1.0)
    lp, lq = np.log(p), np.log(q)

    def entropy(a):
        return -(a * np.log(a)).sum(1, keepdims=True)

    def margin(a):
        s = np.sort(a, axis=1)
        return s[:, -1:] - s[:, -2:-1]

    agree = (p.argmax(1) == q.argmax(1)).astype(np.float64)[:, None]
    hp, mp, mq = entropy(p), margin(p), margin(q)
    return np.concatenate([lp, lq, lp * hp, lq * hp, lp * mp, lq * mq,
                           hp, mp, entropy(q), mq, agree], axis=1)


def _model(c: float):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    return make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=5000))


def choose_c(x: np.ndarray, y: np.ndarray, groups: np.ndarray) -> tuple[float, dict]:
    """The C with the best out-of-fold accuracy over whole dialogues, and every C's."""
    from sklearn.model_selection import GroupKFold

    scores = {}
    for c in C_GRID:
        pred = np.empty_like(y)
        for tr, te in GroupKFold(FOLDS).split(x, y, groups):
            pred[te] = _model(c).fit(x[tr], y[tr]).predict(x[te])
        scores[c] = float(100 * np.mean(pred == y))
    best = max(C_GRID, key=lambda c: (scores[c], -c))     # ties: the stronger regularisation
    return best, scores


def run(folder: Path, results_dir: Path) -> Path:
    from lantern.evaluation.metrics import classification_report, paired_bootstrap
    from lantern.evaluation.results import build_result, load_results, save_result
    from lantern.pipeline.fuse import fusion_inputs, seed_metrics

    start = time.perf_counter()
    base = [r for r in load_results(results_dir) if r.get("method") == "lantern"
            and r.get("variant") == "vanilla-only" and Path(r.get("answers_dir", "")) == folder]
    if len(base) != 1:
        raise SystemExit(f"{folder}: expected one vanilla-only result for this run in "
                         f"{results_dir}, found {len(base)}; run `lantern fuse` on it first")
    base = base[0]
    valid, _ = fusion_inputs(REPO / folder, "valid")
    test, _ = fusion_inputs(REPO / folder, "test")
    comp = {name: complementarity(x.vanilla, x.answers.mean(1), x.labels)
            for name, x in (("valid", valid), ("test", test))}
    xv = stacking_features(valid.vanilla, valid.answers.mean(1))
    c, oof = choose_c(xv, valid.labels, np.asarray(valid.dialogue_ids))
    pred = _model(c).fit(xv, valid.labels).predict(stacking_features(test.vanilla, test.answers.mean(1)))
    classes = list(test.classes)
    vanilla_pred = test.vanilla.argmax(1)
    gain = {m: paired_bootstrap(test.labels, vanilla_pred, pred[None, :], m, n_boot=1000, seed=0,
                                n_classes=len(classes)) for m in ("accuracy", "weighted_f1")}
    result = build_result(
        dataset=base["dataset"], label_set=base["label_set"], n_utterances=len(test.labels),
        model=base["model"], method="lantern", variant=VARIANT, features=base["features"],
        seeds=[0], metrics=seed_metrics([classification_report(test.labels, pred, classes)]),
        gain_vs_vanilla=gain, answers_dir=str(folder), llm=base.get("llm"),
        calibration={"chosen": "none", "selection": {"criterion": "none (uncalibrated answers)"}},
        complementarity=comp,
        merger_state={"C": c, "folds": FOLDS, "grouped_by": "dialogue",
                      "oof_valid_accuracy_by_C": {str(k): v for k, v in oof.items()},
                      "oof_valid_accuracy": oof[c],
                      "vanilla_valid_accuracy": comp["valid"]["vanilla_accuracy"],
                      "n_features": int(xv.shape[1]), "fit_split": "valid"},
        train_seconds=time.perf_counter() - start,
        config={"script": "scripts/bench_complementarity.py", "C_grid": list(C_GRID),
                "lantern_config": base.get("config")})
    return save_result(result, results_dir)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path, help="answer folders under benchmarks/answers/")
    ap.add_argument("--results", type=Path, default=Path("benchmarks/results"))
    args = ap.parse_args(argv)
    for folder in args.runs:
        path = run(folder, args.results)
        r = json.loads(path.read_text())
        c, s = r["complementarity"]["test"], r["merger_state"]
        print(f"{path.name}: test vanilla {c['vanilla_accuracy']:.2f} llm {c['llm_accuracy']:.2f} "
              f"agree {c['top_class_agreement']:.1f} oracle {c['oracle_accuracy']:.2f} | stacking "
              f"{r['metrics']['accuracy']['mean']:.2f} (Δ {r['gain_vs_vanilla']['accuracy']['delta']:+.2f}); "
              f"valid out of fold {s['oof_valid_accuracy']:.2f} vs vanilla {s['vanilla_valid_accuracy']:.2f}",
              flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
