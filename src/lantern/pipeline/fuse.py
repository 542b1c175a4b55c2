"""Stage 3: mergers fitted on the validation answers, applied to test, one result each.

Reads only a run's answer folder (the pinned vanilla predictions and the LLM answers), so
every result rebuilds on any machine without an LLM, a vanilla model or the data set.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from lantern.errors import DataError
from lantern.paths import atomic_write_text
from lantern.pipeline.refine_stage import CONTENT_FREE
from lantern.config import FusionSection
from lantern.pipeline.settings import (FUSION_SPLIT, answers_dir, output_dir, refine_settings,
                                       vanilla_config, vanilla_name)
from lantern.pipeline.vanilla import pinned_file
from lantern.records import AnswersByUtterance, PredictionRow, read_pinned

COST_KEYS = ("fields", "requests", "prompt_tokens", "reused_prompt_tokens", "decode_steps",
             "completion_tokens", "seconds", "fallbacks", "low_mass_slots", "unread_slots",
             "mean_label_mass", "parse_failures", "validation_failures", "renormalised_answers",
             "prompt_tokens_per_utterance", "decode_steps_per_utterance",
             "completion_tokens_per_utterance", "seconds_per_utterance", "cost_vs_speed_check")


def answer_records(folder: Path, split: str) -> tuple[list[PredictionRow], AnswersByUtterance, dict]:
    """(vanilla rows, answer records grouped by utterance, answer-file header) rebuilt from
    the files in ``folder`` alone: no LLM, no vanilla model, no data set needed."""
    from lantern.answers import AnswerFile
    from lantern.receptive_fields import make_fields
    from lantern.records import group_by_dialogue
    from lantern.refine import field_answer_records

    path = folder / f"{split}.jsonl"
    if not path.exists():
        raise DataError("no answers for this split (run lantern refine first)", path=path)
    vanilla = read_pinned(pinned_file(folder, split))
    with AnswerFile(path, {}) as store:
        header = dict(store.header)
        by_field = {(a.dialogue_id, a.field_id): a for a in store}
    w, s_ = int(header["window"]), int(header["stride"])
    classes = list(header["classes"])
    grouped: AnswersByUtterance = {}
    missing = total = 0
    for dialogue_id, drows in group_by_dialogue(vanilla):
        for f in make_fields(len(drows), w, s_, dialogue_id):
            total += 1
            a = by_field.get((dialogue_id, f.field_id))
            if a is None:
                missing += 1
                continue
            if (a.start, a.end) != (f.start, f.end):
                raise DataError(f"field {dialogue_id}#{f.field_id} covers {a.start}..{a.end}, "
                                f"expected {f.start}..{f.end}", path=path, field="start")
            for rec in field_answer_records(a, f, drows, classes):
                grouped.setdefault(rec.key, []).append(rec)
    if missing:
        raise DataError(f"{missing} of {total} fields have no answer yet; continue the run with "
                        f"lantern refine", path=path)
    cf = [a for a in by_field.values() if a.dialogue_id == CONTENT_FREE]
    header["content_free"] = (np.mean(np.asarray(cf[0].probs), axis=0).tolist() if cf else None)
    return vanilla, grouped, header


def fusion_inputs(folder: Path, split: str):
    """The :class:`~lantern.fusion.inputs.FusionInputs` of one split's labelled utterances,
    and its answer-file header."""
    from lantern.fusion.inputs import FusionInputs

    vanilla, grouped, header = answer_records(folder, split)
    rows = [r for r in vanilla if r.has_own_label]
    foreign = sorted({r.gold_label_set for r in vanilla if r.gold_label_set})
    if not rows and foreign:
        raise DataError(f"the gold labels are another corpus's ({', '.join(foreign)}), not the vanilla "
                        f"model's classes: mergers are not fitted on them; score them with "
                        f"scripts/validate_merger.py", path=folder / f"{split}.jsonl")
    return FusionInputs.from_records(rows, grouped, classes=header["classes"]), header


def is_learned(variant: str) -> bool:
    from lantern.fusion import MERGERS
    return bool(MERGERS.get(variant).learned)


def select_on_validation(variant: str, options: dict, fit_by_cal: dict, poolings) -> dict:
    """The calibration (and, for learned mergers, the pooling) a merger uses, chosen on the
    validation split only: a fixed merger by its accuracy there; a learned one by the NLL
    of its seed-0 fit on the validation dialogues it holds out (the same dialogues for every
    candidate, since the hold-out depends on the seed alone). Ties keep the earlier candidate
    (none < batch < contextual; linear < log-linear)."""
    from lantern.evaluation.metrics import accuracy
    from lantern.fusion import make_merger

    if variant == "vanilla-only":
        return {"criterion": "none (the vanilla model)", "candidates": {},
                "chosen": {"calibration": "none"}}
    candidates: dict[str, dict] = {}
    learned = is_learned(variant)
    for cal, x in fit_by_cal.items():
        for pooling in (poolings if learned and "pooling" not in options else [None]):
            merger = make_merger(variant, **{**options, **({"pooling": pooling} if pooling else {}),
                                             **({"seed": 0} if learned else {})})
            merger.fit(x, FUSION_SPLIT)
            name = cal + (f"/{pooling}" if pooling else "")
            if learned:
                held = merger.state["guard"]["holdout"]["fused"]
                candidates[name] = {"calibration": cal, "pooling": pooling, "holdout_nll": held["nll"],
                                    "holdout_accuracy": held["accuracy"]}
            else:
                candidates[name] = {"calibration": cal, "valid_accuracy":
                                    accuracy(x.labels, merger.predict_proba(x).argmax(1))}
    if learned:
        best = min(candidates, key=lambda k: candidates[k]["holdout_nll"])
        criterion = "held-out validation NLL of the seed-0 fit"
    else:
        best = max(candidates, key=lambda k: candidates[k]["valid_accuracy"])
        criterion = "validation accuracy"
    return {"criterion": criterion, "candidates": candidates, "chosen": candidates[best]}


class _FuseRun:
    """One run's calibrated validation and test inputs, and what every result shares."""

    def __init__(self, cfg: dict, limit: int | None):
        from lantern.fusion.calibration import CALIBRATIONS, calibrate, prior_for

        self.cfg, self.limit = cfg, limit
        self.settings = refine_settings(cfg)
        self.folder = answers_dir(cfg, limit)
        fit_raw, self.header = fusion_inputs(self.folder, FUSION_SPLIT)
        test_raw, test_header = fusion_inputs(self.folder, "test")
        self.fusion = FusionSection.of(cfg)
        cals = (list(CALIBRATIONS if self.fusion.calibrations is None else self.fusion.calibrations)
                if self.header.get("mode") == "logprobs" else ["none"])
        cals = [c for c in cals if c != "contextual" or self.header.get("content_free") is not None]
        self.fit_by_cal = {c: calibrate(fit_raw, c, prior_for(c, self.header)) for c in cals}
        self.test_by_cal = {c: calibrate(test_raw, c, prior_for(c, test_header)) for c in cals}
        self.classes = list(self.header["classes"])
        self.y = np.asarray(test_raw.labels)
        self.vanilla_pred = test_raw.vanilla.argmax(1)
        summary = self.folder / "test.summary.json"
        self.test_cost = json.loads(summary.read_text()) if summary.exists() else {}
        self.vcfg = vanilla_config(cfg)
        self.seeds = [int(x) for x in self.fusion.seeds]
        self.poolings = list(self.fusion.poolings)
        self.suffix = self.settings.variant_suffix + ("" if self.settings.t == 3 else f"-t{self.settings.t}")

    def llm_block(self) -> dict:
        s, h, cost = self.settings, self.header, self.test_cost
        return {"backend": cost.get("backend"), "model": h.get("model_id"),
                "sha256": (h.get("model_id") or "").partition("@")[2] or None,
                "answer": h.get("mode"), "t": s.t, "window": s.window, "stride": s.stride,
                "include_vad": s.include_vad, "include_refs": s.include_refs,
                "template_hash": h.get("template_hash"), **{k: cost.get(k) for k in COST_KEYS}}

    def fit_variant(self, variant: str) -> dict:
        """Select on validation, fit over the seeds, predict test: one result."""
        from lantern.evaluation.metrics import classification_report, paired_bootstrap
        from lantern.evaluation.results import build_result

        start = time.perf_counter()
        learned = is_learned(variant)
        run_seeds = self.seeds if learned else [0]
        base_options = dict((self.fusion.options or {}).get(variant, {}))
        selection = select_on_validation(variant, base_options, self.fit_by_cal, self.poolings)
        chosen = selection["chosen"]
        fit_inputs, test_inputs = self.fit_by_cal[chosen["calibration"]], self.test_by_cal[chosen["calibration"]]
        preds, reports, states = [], [], []
        for seed in run_seeds:
            merger = fit_merger(variant, base_options, chosen.get("pooling"), seed, fit_inputs)
            merger.save_pretrained(output_dir(self.cfg) / "mergers" / f"{variant}{self.suffix}-seed{seed}")
            pred = merger.predict_proba(test_inputs).argmax(1)
            preds.append(pred)
            reports.append(classification_report(self.y, pred, self.classes))
            states.append(getattr(merger, "state", None))
        gain = {m: paired_bootstrap(self.y, self.vanilla_pred, np.stack(preds), m, n_boot=1000, seed=0,
                                    n_classes=len(self.classes))
                for m in ("accuracy", "weighted_f1")}
        return build_result(
            dataset=self.vcfg["dataset"]["name"], label_set=self.vcfg["dataset"].get("label_set"),
            n_utterances=len(self.y), model=vanilla_name(self.vcfg), method="lantern",
            variant=variant + self.suffix, features=self.vcfg["features"], seeds=run_seeds,
            metrics=seed_metrics(reports), gain_vs_vanilla=gain,
            calibration={"chosen": chosen["calibration"], "selection": selection},
            answers_dir=str(self.folder), llm=self.llm_block(),
            merger_state=states[0] if len(states) == 1 else states,
            train_seconds=time.perf_counter() - start, config=self.cfg, limit=self.limit,
            selection_split=FUSION_SPLIT)


def fit_merger(variant: str, base_options: dict, pooling: str | None, seed: int, inputs):
    """One merger fitted on ``inputs`` (the calibrated validation answers) as the fuse stage
    fits it: the config's options, the pooling chosen on validation, and ``seed`` when it is
    learned (unless the options fix one)."""
    from lantern.fusion import make_merger

    options = {**base_options, **({"pooling": pooling} if pooling else {})}
    if is_learned(variant):
        options.setdefault("seed", seed)
    merger = make_merger(variant, **options)
    merger.fit(inputs, FUSION_SPLIT)
    return merger


def seed_metrics(reports: list[dict]) -> dict:
    """Accuracy and weighted F1 over a merger's seeds (mean, sample std, per seed) and the
    mean per-class F1, from :func:`~lantern.evaluation.metrics.classification_report` s."""
    from lantern.evaluation.results import seed_stats

    def stat(key):
        return seed_stats([float(r[key]) for r in reports])

    per_class = {c: float(np.mean([r["per_class_f1"][c] for r in reports]))
                 for c in reports[0]["per_class_f1"]}
    return {"accuracy": stat("accuracy"), "weighted_f1": stat("weighted_f1"), "per_class_f1": per_class}


def stage_fuse(cfg: dict, predictions: Path | None = None, limit: int | None = None,
               results_dir: str | Path | None = None) -> list[dict]:
    """Fit each merger on the validation answers (learned ones over ``fusion.seeds``), apply
    to test, write one result per merger. Reads only the answer folder (vanilla predictions
    and answers), so it runs on any machine without an LLM."""
    from lantern.evaluation.results import save_result

    run = _FuseRun(cfg, limit)
    results = []
    for variant in run.fusion.variants:
        result = run.fit_variant(variant)
        if results_dir is not None:
            save_result(result, results_dir)
        results.append(result)
    atomic_write_text(output_dir(cfg) / f"fusion{run.suffix}.json", json.dumps(
        [{k: r[k] for k in ("variant", "metrics", "gain_vs_vanilla", "calibration")} for r in results],
        indent=2, default=str))
    return results
