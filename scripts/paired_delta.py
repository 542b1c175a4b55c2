"""Paired bootstrap of two trained runs on the same split (``lantern train`` output folders):
B's seeds against A's seed-averaged prediction, accuracy and weighted F1 in points.

    python scripts/paired_delta.py RUN_A RUN_B [--split test] [--into RESULT.json --key NAME]

``--into`` also records the comparison in B's result file, under ``paired_bootstrap[NAME]``
(the interval then travels with the result that claims it).

A's prediction per utterance is the argmax of its seeds' mean probabilities (``--a-seeds
each``: A is scored like B); B's score is the mean over its seeds in every replicate
(lantern.evaluation.metrics.paired_bootstrap). ``scores`` holds each run's per-seed accuracy and
weighted F1 on these utterances. ``--b-corpus NAME`` reads B's predictions on
corpus NAME from its ``evaluate_on:`` scoring (``seed*/cross_corpus/NAME/``): a model trained on
a mix of corpora against one trained on NAME alone.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def _load(run: Path, split: str, corpus: str | None = None):
    pattern = f"seed*/cross_corpus/{corpus}" if corpus else "seed*/predictions"
    seeds = sorted(run.glob(pattern))
    if not seeds:
        raise SystemExit(f"{run}: no {pattern} folders")
    rows = [[json.loads(line) for line in (s / f"{split}.jsonl").read_text().splitlines()] for s in seeds]
    classes = list(rows[0][0]["probs"])
    ids = [r["utterance_id"] for r in rows[0]]
    probs = np.array([[[r["probs"][c] for c in classes] for r in seed] for seed in rows])
    gold = [classes.index(r["label"]) for r in rows[0]]
    return ids, classes, probs, np.array(gold)


def main(argv=None) -> int:
    from lantern.evaluation.metrics import paired_bootstrap, percent_scores
    from lantern.evaluation.results import summarise_seeds

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_a", type=Path)
    ap.add_argument("run_b", type=Path)
    ap.add_argument("--split", default="test")
    ap.add_argument("--a-seeds", choices=("ensemble", "each"), default="ensemble",
                    help="score A by its seeds' mean probabilities (default) or, like B, as the mean "
                         "of its seeds' scores (for a run that continues A seed by seed)")
    ap.add_argument("--b-corpus", help="B's predictions on this corpus of its evaluate_on: list")
    ap.add_argument("--into", type=Path, help="B's result file, to record the comparison in")
    ap.add_argument("--key", help="the comparison's name in that file (e.g. 'vs text-only')")
    args = ap.parse_args(argv)
    if bool(args.into) != bool(args.key):
        raise SystemExit("--into and --key go together")
    ids_a, classes, pa, y = _load(args.run_a, args.split)
    ids_b, classes_b, pb, _ = _load(args.run_b, args.split, args.b_corpus)
    if ids_a != ids_b or classes != classes_b:
        raise SystemExit("the runs do not score the same utterances in the same classes")
    a = pa.mean(axis=0).argmax(axis=1) if args.a_seeds == "ensemble" else pa.argmax(axis=2)
    b = pb.argmax(axis=2)
    out = {m: paired_bootstrap(y, a, b, m, n_classes=len(classes))
           for m in ("accuracy", "weighted_f1")}
    comparison = {"a": str(args.run_a), "b": str(args.run_b), "split": args.split,
                  "n": int(len(y)), "a_scored_as": args.a_seeds,
                  **({"b_corpus": args.b_corpus} if args.b_corpus else {}),
                  "scores": {name: summarise_seeds([percent_scores(y, p, len(classes))
                                                    for p in probs.argmax(axis=2)])
                             for name, probs in (("a", pa), ("b", pb))}, **out}
    print(json.dumps(comparison, indent=1))
    if args.into:
        from lantern.paths import atomic_write_text

        result = json.loads(args.into.read_text())
        result.setdefault("paired_bootstrap", {})[args.key] = comparison
        atomic_write_text(args.into, json.dumps(result, indent=2, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
