"""Validate a Lantern run's mergers on other corpora (issue #8: the merger `lantern predict`
ships must hold up beyond IEMOCAP).

    python scripts/validate_merger.py configs/lantern-iemocap-text.yaml --corpus dailydialog --corpus meld

Every merger is fitted as ``lantern fuse`` fits it (on the run's IEMOCAP validation answers,
with the calibration and pooling chosen there; learned ones over the run's seeds), then
applied to the validation answers of the same vanilla model and LLM on each other corpus
(``lantern refine CONFIG --set vanilla.overrides=[dataset.name=CORPUS] --split valid``),
scored against that corpus's gold labels on the classes both label sets share
(:mod:`lantern.data.label_mapping`), with a paired bootstrap against the vanilla model.
``batch`` calibration divides by the IEMOCAP validation prior, as the shipped merger does.
Writes one result per (corpus, merger): ``<corpus>-shared-<model>-lantern-<variant>.json``
with ``train_dataset`` and ``scored_classes``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))


def corpus_config(config: str, corpus: str) -> dict:
    from lantern.config import load_config
    return load_config(config, [f"vanilla.overrides=[dataset.name={corpus}]"])


def corpus_inputs(cfg: dict, classes: list[str]):
    """(inputs with unknown labels, gold labels, their label set) of a corpus's validation split."""
    from lantern.fusion.inputs import FusionInputs
    from lantern.pipeline import answers_dir
    from lantern.pipeline.fuse import answer_records

    vanilla, grouped, _ = answer_records(answers_dir(cfg), "valid")
    rows = [r for r in vanilla if r.label is not None]
    sets = {r.gold_label_set for r in rows}
    if len(sets) != 1 or None in sets:
        raise SystemExit(f"{answers_dir(cfg)}: expected another corpus's labels, got label sets {sets}")
    return FusionInputs.from_records(rows, grouped, classes=classes), [r.label for r in rows], sets.pop()


def main(argv=None) -> int:
    from lantern.config import FusionSection, load_config
    from lantern.data.label_mapping import project_labels, project_probs, shared_classes
    from lantern.evaluation.metrics import paired_bootstrap, percent_scores
    from lantern.evaluation.results import build_result, load_results, save_result
    from lantern.fusion import make_merger
    from lantern.fusion.calibration import batch_prior, calibrate, prior_for
    from lantern.pipeline import FUSION_SPLIT, answers_dir, fusion_inputs, vanilla_config
    from lantern.pipeline.fuse import is_learned

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("config")
    ap.add_argument("--corpus", action="append", required=True)
    ap.add_argument("--results-dir", default=str(REPO / "benchmarks" / "results"))
    args = ap.parse_args(argv)

    cfg = load_config(args.config)
    vcfg = vanilla_config(cfg)
    model_set = vcfg["model_label_set"]
    folder = answers_dir(cfg)
    fit_raw, header = fusion_inputs(folder, FUSION_SPLIT)
    classes = list(header["classes"])
    fusion = FusionSection.of(cfg)
    chosen = {r["variant"]: r["calibration"] for r in load_results(args.results_dir)
              if r.get("method") == "lantern" and r.get("answers_dir") == str(folder)}
    missing = [v for v in fusion.variants if v not in chosen]
    if missing:
        raise SystemExit(f"no result files for {missing} of {folder}; run lantern fuse first")

    mergers: dict[str, list] = {}
    for variant in fusion.variants:
        start = time.perf_counter()
        sel = chosen[variant]
        cal = sel["chosen"]
        pooling = ((sel.get("selection") or {}).get("chosen") or {}).get("pooling")
        fit = calibrate(fit_raw, cal, prior_for(cal, header))
        seeds = [int(s) for s in fusion.seeds] if is_learned(variant) else [0]
        fitted = []
        for seed in seeds:
            options = dict((fusion.options or {}).get(variant, {}))
            options.update({"pooling": pooling} if pooling else {})
            if is_learned(variant):
                options["seed"] = seed
            m = make_merger(variant, **options)
            m.fit(fit, FUSION_SPLIT)
            fitted.append(m)
        # the prior batch calibration divides by: IEMOCAP validation's, as the shipped merger
        prior = batch_prior(fit_raw) if cal == "batch" else prior_for(cal, header)
        mergers[variant] = [fitted, cal, prior, seeds, time.perf_counter() - start]

    for corpus in args.corpus:
        ccfg = corpus_config(args.config, corpus)
        raw, labels, data_set = corpus_inputs(ccfg, classes)
        target = shared_classes(model_set, data_set)
        y_all = project_labels(labels, data_set, target)
        keep = y_all >= 0
        y = y_all[keep]
        project = lambda p: project_probs(p, classes, model_set, target)[keep].argmax(1)  # noqa: E731
        vanilla_pred = project(raw.vanilla)
        for variant, (fitted, cal, prior, seeds, seconds) in mergers.items():
            x = calibrate(raw, cal, prior)
            preds = np.stack([project(m.predict_proba(x)) for m in fitted])
            per_seed = [percent_scores(y, p, len(target)) for p in preds]
            metrics = {k: {"mean": float(np.mean([s[k] for s in per_seed])),
                           "std": float(np.std([s[k] for s in per_seed], ddof=1)) if len(seeds) > 1 else 0.0,
                           "per_seed": [s[k] for s in per_seed]} for k in ("accuracy", "weighted_f1")}
            gain = {k: paired_bootstrap(y, vanilla_pred, preds, k, n_boot=1000, seed=0, n_classes=len(target))
                    for k in ("accuracy", "weighted_f1")}
            result = build_result(
                dataset=corpus, label_set=f"shared{len(target)}", split="valid",
                n_utterances=int(keep.sum()), model=vcfg["model"]["name"], method="lantern",
                variant=variant, features=vcfg["features"], seeds=seeds, metrics=metrics,
                gain_vs_vanilla=gain, calibration={"chosen": cal, "prior": "iemocap valid"},
                train_dataset=vcfg["dataset"]["name"], scored_classes=list(target),
                left_out=int((~keep).sum()), gold_label_set=data_set,
                answers_dir=str(answers_dir(ccfg)), fitted_on=str(folder),
                train_seconds=seconds, config={"pipeline_config": args.config, "corpus": corpus},
                selection_split=f"{FUSION_SPLIT} ({vcfg['dataset']['name']})")
            path = save_result(result, args.results_dir)
            print(f"{corpus:12s} {variant:14s} acc {metrics['accuracy']['mean']:6.2f}  "
                  f"wF1 {metrics['weighted_f1']['mean']:6.2f}  Δacc {gain['accuracy']['delta']:+.2f} "
                  f"[{gain['accuracy']['low']:+.2f}, {gain['accuracy']['high']:+.2f}]  -> {path.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
