"""Reason quality of a trained Emotion-LLaMA run (issue #12): EMER-style clue-overlap and
label-overlap scores (1-10), given by the embedded LLM judge on held-out clips, for the
model's ``[reason]`` answers and for the template-only baseline, MERR's coarse caption filled
with the same model's predicted label (so the two differ in how they explain, not in what they
conclude).

    lantern annotate --dataset ravdess --split test --reasons none --out /tmp/ann-test
    python scripts/judge_reasons.py RUN_DIR --annotations /tmp/ann-test/merr.json \\
        [--split test] [--judge qwen2.5-coder-1.5b] [--limit N] [--results-dir DIR]

RUN_DIR is a ``lantern train`` output folder (``seed*/model``). The judge reads each clip's
clues from the annotation file (face, tone, words) and its gold label. Per seed: both systems'
mean scores; the result holds mean ± std over seeds and a paired bootstrap over clips of the
model's seed-averaged score against the template's (clips the judge failed on are counted and
left out of both). Judge answers are cached (``lantern.llm.cache``): a rerun resumes.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from lantern.evaluation.reason_scores import REASON_JUDGE, SCORES, SYSTEMS  # noqa: E402


def seed_answers(model_dir: Path, dataset: str, split: str, data_root: str | None, limit: int | None,
                 max_tokens: int | None) -> list[dict]:
    """Per clip of ``split``: its id, gold label, the model's label and the model's reason."""
    from lantern.data import load_dataset
    from lantern.features import attach_features
    from lantern.features.normalise import normalise_for_model
    from lantern.models.bundle import ModelBundle
    from lantern.models.emotion_llama import explain_dialogues

    bundle = ModelBundle.load(model_dir)
    ds = load_dataset(dataset, **({"data_root": data_root} if data_root else {}))
    dialogues = ds.dialogues(split)
    optional = [bundle.spec.modalities[m] for m in bundle.spec.optional]
    attach_features(dialogues, bundle.feature_names, options=bundle.feature_options_for(bundle.feature_names),
                    progress=False, optional=optional)
    normalise_for_model(bundle.spec, [u for d in dialogues for u in d.utterances])  # every clip, as trained
    if limit:
        dialogues = _first_clips(dialogues, limit)
    rows = {r.utterance_id: r for r in bundle.prediction_rows(dialogues, gold=ds.label_set)}
    reasons = explain_dialogues(bundle, dialogues, max_tokens)
    return [{"id": u.id, "gold": ds.label_set.classes[u.label], "predicted": rows[u.id].top,
             "reason": reasons[(d.id, u.id)]} for d in dialogues for u in d.utterances]


def _first_clips(dialogues, n: int):
    import copy

    out, left = [], n
    for d in dialogues:
        if left <= 0:
            break
        d = copy.copy(d)
        d.utterances = d.utterances[:left]
        left -= len(d.utterances)
        out.append(d)
    return out


def judge_seed(answers: list[dict], annotations: dict, words: dict[str, str], llm, cache) -> dict:
    """Both systems' judge scores for one seed's answers."""
    from lantern.annotate.judge import judge_reasons
    from lantern.annotate.merr import ClipAnnotation, clue_text, coarse_caption

    anns = [ClipAnnotation.from_dict({"name": a["id"], **annotations[a["id"]]}) for a in answers]
    refs = [(clue_text(ann), words[a["gold"]]) for ann, a in zip(anns, answers)]
    template = [coarse_caption(words[a["predicted"]], ann.visual_prior_list, ann.audio_prior_list, ann.text,
                               any(n.startswith("video:") for n in ann.notes)) for ann, a in zip(anns, answers)]
    judged = judge_reasons(dict(zip(SYSTEMS, ([a["reason"] for a in answers], template))), refs, llm, cache)
    return {name: r.to_dict() for name, r in judged.items()} | {"template_reasons": template}


def summarise(per_seed: list[dict]) -> dict:
    """Mean ± std over seeds per system and score, and the paired bootstrap over clips."""
    import numpy as np

    from lantern.evaluation.metrics import paired_bootstrap

    out = {}
    for system in SYSTEMS:
        for k in SCORES:
            vals = [s[system][k] for s in per_seed if s[system][k] is not None]
            out[f"{system}.{k}"] = {"mean": float(np.mean(vals)) if vals else 0.0,
                                    "std": float(np.std(vals)) if vals else 0.0, "per_seed": vals}
    deltas = {}
    for k in SCORES:
        model, template = (np.array([[c[k] for c in s[name]["per_clip"]] for s in per_seed], dtype=float)
                           for name in SYSTEMS)
        keep = ~(np.isnan(model).any(0) | np.isnan(template).any(0))   # judged for every seed and system
        mean_score = lambda _t, p: float(np.mean(p))  # noqa: E731 (the score is the clip's, not a label)
        boot = paired_bootstrap(np.zeros(int(keep.sum())), template[:, keep].mean(0), model[:, keep],
                                mean_score, n_boot=2000)
        deltas[k] = {**boot, "n_clips": int(keep.sum())}
    out["paired_bootstrap"] = deltas
    return out


def label_scores(answers: list[list[dict]], classes: list[str]) -> dict:
    """Accuracy and weighted F1 (percent, mean ± std over seeds) of the judged clips' labels."""
    import numpy as np

    from lantern.evaluation.metrics import accuracy, weighted_f1

    per = {"accuracy": [], "weighted_f1": []}
    for seed in answers:
        y = np.array([classes.index(a["gold"]) for a in seed])
        p = np.array([classes.index(a["predicted"]) for a in seed])
        per["accuracy"].append(100.0 * accuracy(y, p))
        per["weighted_f1"].append(100.0 * weighted_f1(y, p, len(classes)))
    return {k: {"mean": float(np.mean(v)), "std": float(np.std(v)), "per_seed": v} for k, v in per.items()}


def main(argv=None) -> int:
    from lantern.evaluation.results import build_result, save_result
    from lantern.llm import EMBEDDED, get_llm
    from lantern.llm.cache import LLMCache

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--annotations", type=Path, required=True, help="merr.json of the split's clips")
    ap.add_argument("--dataset", default="ravdess")
    ap.add_argument("--split", default="test")
    ap.add_argument("--data-root")
    ap.add_argument("--judge", default=None, help="embedded judge model (default: the embedded default)")
    ap.add_argument("--limit", type=int, help="only the first N clips (a smoke run)")
    ap.add_argument("--reason-tokens", type=int, default=None, help="cap of each generated reason")
    ap.add_argument("--results-dir", type=Path, default=REPO / "benchmarks" / "results")
    args = ap.parse_args(argv)
    annotations = json.loads(args.annotations.read_text(encoding="utf-8"))
    models = sorted(args.run_dir.glob("seed*/model"))
    if not models:
        raise SystemExit(f"{args.run_dir}: no seed*/model folders (a `lantern train` output folder)")
    start = time.time()
    answers = [seed_answers(m, args.dataset, args.split, args.data_root, args.limit, args.reason_tokens)
               for m in models]
    missing = sorted({a["id"] for seed in answers for a in seed} - set(annotations))
    if missing:
        raise SystemExit(f"{args.annotations}: no annotation for {len(missing)} clips, e.g. {missing[:3]}")
    run_meta = json.loads((args.run_dir / "result.json").read_text())
    words = _label_words(args.dataset, args.data_root)
    llm, cache = get_llm(EMBEDDED, args.judge, n_threads=2, n_threads_batch=2), LLMCache()
    try:
        per_seed = [judge_seed(a, annotations, words, llm, cache) for a in answers]
    finally:
        llm.close()
        cache.close()
    summary = summarise(per_seed)
    seeds = [int(m.parent.name.removeprefix("seed")) for m in models]
    metrics = {k: {"mean": v["mean"], "std": v["std"]} for k, v in summary.items() if k != "paired_bootstrap"}
    metrics |= label_scores(answers, list(words))
    result = build_result(
        dataset=args.dataset, label_set=run_meta.get("label_set"), split=args.split,
        n_utterances=len(answers[0]), model=run_meta.get("model", "emotion-llama"), method=REASON_JUDGE,
        variant=run_meta.get("variant", "emotion-llama"), features=run_meta.get("features"), seeds=seeds,
        metrics=metrics, train_seconds=time.time() - start, limit=args.limit,
        config={"run": run_meta.get("config"), "judge": getattr(llm, "model_id", args.judge),
                "annotations": args.annotations.name, "reason_tokens": args.reason_tokens},
        paired_bootstrap=summary["paired_bootstrap"], judge_model=getattr(llm, "model_id", args.judge),
        per_seed=per_seed,
        answers=[[{k: a[k] for k in ("id", "predicted", "reason")} for a in seed] for seed in answers])
    path = save_result(result, args.results_dir)
    print(json.dumps({"result": str(path), **{k: round(v["mean"], 2) for k, v in metrics.items()},
                      "paired_bootstrap": summary["paired_bootstrap"]}, indent=1))
    return 0


def _label_words(dataset: str, data_root: str | None) -> dict[str, str]:
    from lantern.data import load_dataset
    from lantern.llm.slots import Verbaliser

    ds = load_dataset(dataset, **({"data_root": data_root} if data_root else {}))
    words = Verbaliser.for_label_set(ds.label_set.classes, ds.label_set.descriptions).words
    return dict(zip(ds.label_set.classes, words))


if __name__ == "__main__":
    sys.exit(main())
