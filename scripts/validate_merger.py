"""Choose the merger `lantern predict` ships on the validation splits of several corpora
(issue #8: a merger fitted on IEMOCAP alone cannot see when the LLM's own opinion is worth
more than the references).

    python scripts/validate_merger.py configs/lantern-iemocap-text.yaml --corpus dailydialog [--held-out meld]

Candidates: every merger ``lantern fuse`` fitted for the run (on its IEMOCAP validation
answers, with the calibration and pooling chosen there; learned ones over the run's seeds),
and the fixed geometric mix P ∝ p^w · (mean answer)^(1-w) for w in 0, 0.1, ..., 1 with the
answers uncalibrated or batch-calibrated by the IEMOCAP validation prior (as predict would
use it). Each is scored on IEMOCAP validation (weighted F1, 6-way; a learned merger by its
out-of-fold guard score, since it was fitted there) and on the validation answers of the same
vanilla model and LLM on each other corpus (``bash scripts/bench_lantern.sh CONFIG --set
vanilla.overrides=[dataset.name=CORPUS]`` with ``SPLITS=valid``), against that corpus's gold
labels on the classes both label sets share (:mod:`lantern.data.label_mapping`).

The rule, on validation only: among the candidates at least as good as the vanilla model on
IEMOCAP validation (so that refining is not worse by design where the merger was fitted), the
highest mean weighted F1 over the other corpora; ties go to the better IEMOCAP score.
``--held-out`` corpora are scored the same way but take no part in the choice: they say how
the chosen merger does on a corpus it was not chosen on.

Writes one result per (other corpus, candidate shown): ``<corpus>-shared<K>-<model>-lantern-
<variant>.json``, and the chosen candidate on IEMOCAP test with the whole selection table:
``...-lantern-cross-corpus.json``, which ``scripts/ship_merger.py --variant cross-corpus``
ships.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

WEIGHTS = tuple(round(0.1 * i, 1) for i in range(11))
SELECTED = "cross-corpus"


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


class Candidate:
    """A merger as predict would use it: fitted mergers (one per seed), a calibration and
    the prior it divides by (IEMOCAP validation's for ``batch``)."""

    def __init__(self, name, mergers, calibration, prior, seeds, seconds=0.0, valid_score=None,
                 spec=None):
        self.name, self.mergers, self.calibration, self.prior = name, mergers, calibration, prior
        self.seeds, self.seconds, self.spec = seeds, seconds, spec
        self.valid_score = valid_score          # IEMOCAP validation wF1 when it is out of fold

    def predict(self, x) -> np.ndarray:
        """(seeds, n, K) probabilities."""
        from lantern.fusion.calibration import calibrate
        xc = calibrate(x, self.calibration, self.prior)
        return np.stack([m.predict_proba(xc) for m in self.mergers])


def fused_candidates(cfg, fusion, fit_raw, header, results) -> list[Candidate]:
    from lantern.fusion.calibration import calibrate, prior_for, shipped_prior
    from lantern.pipeline.fuse import fit_merger, is_learned

    out = []
    for variant in fusion.variants:
        start = time.perf_counter()
        sel = results[variant]["calibration"]
        cal = sel["chosen"]
        pooling = ((sel.get("selection") or {}).get("chosen") or {}).get("pooling")
        fit = calibrate(fit_raw, cal, prior_for(cal, header))
        learned = is_learned(variant)
        seeds = [int(s) for s in fusion.seeds] if learned else [0]
        base_options = dict((fusion.options or {}).get(variant, {}))
        mergers = [fit_merger(variant, base_options, pooling, seed, fit) for seed in seeds]
        oof = None
        if learned:   # fitted on IEMOCAP validation: judge it there by its out-of-fold score
            oof = float(np.mean([100 * m.state["guard"]["holdout"]["fused"]["weighted_f1"] for m in mergers]))
        out.append(Candidate(variant, mergers, cal, shipped_prior(cal, fit_raw, header), seeds,
                             time.perf_counter() - start, oof))
    return out


def mix_candidates(fit_raw, header) -> list[Candidate]:
    from lantern.fusion import make_merger
    from lantern.fusion.calibration import shipped_prior

    return [Candidate(f"product-w{w:.1f}-{cal}", [make_merger("product", vanilla_weight=w)], cal,
                      shipped_prior(cal, fit_raw, header), [0],
                      spec={"type": "product", "options": {"vanilla_weight": w}, "calibration": cal})
            for cal in ("none", "batch") for w in WEIGHTS]


def main(argv=None) -> int:
    from lantern.config import FusionSection, load_config
    from lantern.data.label_mapping import project_labels, project_probs, shared_classes
    from lantern.evaluation.metrics import classification_report, paired_bootstrap, percent_scores
    from lantern.evaluation.results import build_result, load_results, save_result, summarise_seeds
    from lantern.pipeline import FUSION_SPLIT, answers_dir, fusion_inputs, vanilla_config, vanilla_name
    from lantern.pipeline.fuse import seed_metrics

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("config")
    ap.add_argument("--corpus", action="append", required=True, help="chooses the merger")
    ap.add_argument("--held-out", action="append", default=[], help="scored, not used to choose")
    ap.add_argument("--results-dir", default=str(REPO / "benchmarks" / "results"))
    args = ap.parse_args(argv)

    cfg = load_config(args.config)
    vcfg = vanilla_config(cfg)
    model_set = vcfg["model_label_set"]
    folder = answers_dir(cfg)
    fit_raw, header = fusion_inputs(folder, FUSION_SPLIT)
    test_raw, _ = fusion_inputs(folder, "test")
    classes = list(header["classes"])
    fusion = FusionSection.of(cfg)
    results = {r["variant"]: r for r in load_results(args.results_dir)
               if r.get("method") == "lantern" and r.get("answers_dir") == str(folder)}
    missing = [v for v in fusion.variants if v not in results]
    if missing:
        raise SystemExit(f"no result files for {missing} of {folder}; run lantern fuse first")
    fused = fused_candidates(cfg, fusion, fit_raw, header, results)
    candidates = fused + mix_candidates(fit_raw, header)

    corpora = {}
    for corpus in [*args.corpus, *args.held_out]:
        ccfg = corpus_config(args.config, corpus)
        raw, labels, data_set = corpus_inputs(ccfg, classes)
        target = shared_classes(model_set, data_set)
        y = project_labels(labels, data_set, target)
        corpora[corpus] = (raw, y, y >= 0, target, data_set, str(answers_dir(ccfg)))

    def native(pred_probs, x):
        return [percent_scores(x.labels, p.argmax(1), len(classes)) for p in pred_probs]

    def shared(pred_probs, corpus):
        raw, y, keep, target, *_ = corpora[corpus]
        preds = [project_probs(p, classes, model_set, target)[keep].argmax(1) for p in pred_probs]
        return preds, [percent_scores(y[keep], p, len(target)) for p in preds]

    table = {}
    for c in candidates:
        iem = c.valid_score if c.valid_score is not None else float(
            np.mean([s["weighted_f1"] for s in native(c.predict(fit_raw), fit_raw)]))
        others = {k: float(np.mean([s["weighted_f1"] for s in shared(c.predict(corpora[k][0]), k)[1]]))
                  for k in corpora}
        table[c.name] = {"iemocap_valid_weighted_f1": round(iem, 2),
                         **{f"{k}_valid_weighted_f1": round(v, 2) for k, v in others.items()},
                         "other_corpora_mean": round(float(np.mean([others[k] for k in args.corpus])), 2),
                         "out_of_fold": c.valid_score is not None}
    floor = table["vanilla-only"]["iemocap_valid_weighted_f1"]
    eligible = [c for c in candidates if table[c.name]["iemocap_valid_weighted_f1"] >= floor]
    best = max(eligible, key=lambda c: (table[c.name]["other_corpora_mean"],
                                        table[c.name]["iemocap_valid_weighted_f1"]))
    for name, row in table.items():
        print(f"{name:20s} " + "  ".join(f"{k.replace('_valid_weighted_f1', '')} {v:6.2f}"
                                         for k, v in row.items() if k.endswith("f1")) +
              f"  others {row['other_corpora_mean']:6.2f}" + ("  <- chosen" if name == best.name else ""))

    # results on every other corpus: the fused mergers and the chosen candidate
    for c in fused + ([best] if best not in fused else []):
        variant = c.name if c in fused else SELECTED
        for corpus, (raw, y, keep, target, data_set, cdir) in corpora.items():
            preds, per_seed = shared(c.predict(raw), corpus)
            vanilla_pred = project_probs(raw.vanilla, classes, model_set, target)[keep].argmax(1)
            metrics = summarise_seeds(per_seed)
            gain = {k: paired_bootstrap(y[keep], vanilla_pred, np.stack(preds), k, n_boot=1000, seed=0,
                                        n_classes=len(target)) for k in ("accuracy", "weighted_f1")}
            save_result(build_result(
                dataset=corpus, label_set=f"shared{len(target)}", split="valid",
                n_utterances=int(keep.sum()), model=vanilla_name(vcfg), method="lantern",
                variant=variant, features=vcfg["features"], seeds=c.seeds, metrics=metrics,
                gain_vs_vanilla=gain, calibration={"chosen": c.calibration, "prior": "iemocap valid"},
                train_dataset=vcfg["dataset"]["name"], scored_classes=list(target),
                left_out=int((~keep).sum()), gold_label_set=data_set, answers_dir=cdir,
                fitted_on=str(folder), candidate=c.name, train_seconds=c.seconds,
                config={"pipeline_config": args.config, "corpus": corpus},
                selection_split=f"{FUSION_SPLIT} ({vcfg['dataset']['name']})"), args.results_dir)

    # the chosen candidate on IEMOCAP test, with the selection that chose it
    probs = best.predict(test_raw)
    metrics = seed_metrics([classification_report(test_raw.labels, p.argmax(1), classes) for p in probs])
    gain = {k: paired_bootstrap(test_raw.labels, test_raw.vanilla.argmax(1), probs.argmax(-1), k,
                                n_boot=1000, seed=0, n_classes=len(classes)) for k in ("accuracy", "weighted_f1")}
    base = results["vanilla-only"]
    path = save_result(build_result(
        dataset=base["dataset"], label_set=base["label_set"], n_utterances=len(test_raw.labels),
        model=base["model"], method="lantern", variant=SELECTED, features=base["features"],
        seeds=best.seeds, metrics=metrics, gain_vs_vanilla=gain,
        calibration={"chosen": best.calibration, "prior": "iemocap valid"},
        answers_dir=str(folder), llm=base.get("llm"), candidate=best.name,
        shipped_merger=best.spec or {"variant": best.name},
        selection={"rule": "among candidates with IEMOCAP validation weighted F1 >= the vanilla "
                           "model's, the highest mean validation weighted F1 over the other corpora "
                           "(shared classes); learned mergers scored on IEMOCAP out of fold",
                   "corpora": sorted(args.corpus), "held_out": sorted(args.held_out),
                   "candidates": table, "chosen": best.name},
        train_seconds=0.0, config={"pipeline_config": args.config, "corpora": sorted(corpora)},
        selection_split=f"valid ({', '.join(['iemocap', *sorted(corpora)])})"), args.results_dir)
    print(f"chosen {best.name}: IEMOCAP test accuracy {metrics['accuracy']['mean']:.2f} "
          f"(Δ {gain['accuracy']['delta']:+.2f} [{gain['accuracy']['low']:+.2f}, {gain['accuracy']['high']:+.2f}]), "
          f"weighted F1 {metrics['weighted_f1']['mean']:.2f} -> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
