"""Score a saved or shipped vanilla model on every dialogue corpus (issue #11's cross-corpus
table), as `lantern train` does for a config with ``evaluate_on:``.

    python scripts/score_cross_corpus.py iemocap-6way-text      # the model predict ships today
    python scripts/score_cross_corpus.py runs/NAME/seed0/model --corpora iemocap meld

Writes ``<dataset>-<label set>-<model>-vanilla-shipped-<name>.json``: the model's scores on its
own corpus's test split (``metrics``) and, on the classes its label set shares with each
corpus's, on each corpus's valid and test splits (``cross_corpus``), for the one seed the
folder holds.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))


def main(argv=None) -> int:
    from lantern.data import load_dataset
    from lantern.data.mix import DEFAULT_CORPORA
    from lantern.evaluation.metrics import classification_report
    from lantern.evaluation.results import build_result, save_result, summarise_seeds
    from lantern.features import attach_features
    from lantern.models.inference import label_arrays
    from lantern.predict.pretrained import load_bundle, model_dir
    from lantern.training.experiment import (cross_corpus_seed, load_evaluation_corpora,
                                             summarise_cross_corpus)

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", help="a shipped model name or a saved model folder")
    ap.add_argument("--corpora", nargs="+", default=list(DEFAULT_CORPORA))
    ap.add_argument("--data-root")
    ap.add_argument("--results-dir", default=str(REPO / "benchmarks" / "results"))
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(2)
    folder = model_dir(args.model)
    bundle = load_bundle(args.model)
    names = bundle.feature_names
    options = bundle.feature_options_for(names)
    cfg = {"features": dict(bundle.spec.modalities), "evaluate_on": args.corpora,
           "dataset": {"data_root": args.data_root}}
    corpora = load_evaluation_corpora(cfg, options, None, progress=False)
    own = corpora.get(bundle.dataset)
    if own is None or tuple(own.label_set.classes) != bundle.classes:
        own = load_dataset(bundle.dataset, label_set=bundle.label_set.name, data_root=args.data_root)
        attach_features(own, names, options=options, splits=["test"], progress=False)
    rows = list(bundle.prediction_rows(own.dialogues("test")))
    y, p, _, _ = label_arrays(rows, bundle.classes)
    report = classification_report(y, p.argmax(1), list(bundle.classes))
    cross = summarise_cross_corpus([cross_corpus_seed(bundle, corpora)])
    training = json.loads((folder / "training.json").read_text()) if (folder / "training.json").is_file() else {}
    seed = training.get("shipped_seed", 0)
    result = build_result(
        dataset=bundle.dataset, label_set=bundle.label_set.name,
        n_utterances=len(y), model=bundle.model.model_type, method="vanilla",
        variant=f"shipped-{folder.name}", features=dict(bundle.spec.modalities), seeds=[seed],
        metrics=summarise_seeds([{"accuracy": report["accuracy"], "weighted_f1": report["weighted_f1"]}]),
        train_dataset=bundle.dataset, cross_corpus=cross, train_seconds=float("nan"),
        config={"model": args.model, "corpora": args.corpora}, model_dir=str(folder.relative_to(REPO))
        if folder.is_relative_to(REPO) else str(folder), selection_split="valid")
    path = save_result(result, args.results_dir)
    for corpus, splits in cross.items():
        t = splits["test"]
        print(f"{corpus:12s} test wF1 {t['weighted_f1']['mean']:.2f} acc {t['accuracy']['mean']:.2f} "
              f"({', '.join(t['classes'])}; {t['scored']} scored)")
    print(f"-> {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
