"""Reason quality of a trained Emotion-LLaMA run (issue #12): EMER-style clue-overlap and
label-overlap scores (1-10), given by the embedded LLM judge on held-out clips, for the
model's ``[reason]`` answers and for the template-only baseline, MERR's coarse caption filled
with the same model's ``[emotion]`` label (the generated reason is a separate answer and may
conclude otherwise). The default judge is the embedded 1.5B model, which also wrote the
training reasons: it may favour text like its own.

    lantern annotate --dataset ravdess --split test --reasons none --out /tmp/ann-test
    python scripts/judge_reasons.py RUN_DIR --annotations /tmp/ann-test/merr.json \\
        [--split test] [--judge qwen2.5-coder-1.5b] [--seeds 0 1] [--limit N] [--results-dir DIR]

RUN_DIR is a ``lantern train`` output folder of an Emotion-LLaMA model (``seed*/model``,
``result.json``); its dataset is the default. The judge reads each clip's clues from the
annotation file (face, tone, words) and its gold label. Per seed: each system's mean score
over the clips the judge answered; the result holds mean ± std over seeds and a paired
bootstrap, over the clips judged for every seed and both systems, of the model's seed-averaged
score against the template's. Judge answers are cached (``lantern.llm.cache``): a rerun
resumes. A ``--limit`` run writes a result only where ``--results-dir`` says (as ``lantern
train --limit`` does), so a smoke run never lands in BENCHMARKS.md.
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
    if not hasattr(bundle.model, "explain"):
        raise SystemExit(f"{model_dir}: a {type(bundle.model).__name__} model gives no reasons (emotion-llama does)")
    ds = load_dataset(dataset, **({"data_root": data_root} if data_root else {}))
    bundle.check_classes(ds.label_set)
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
                               not any(n.startswith("no video") for n in ann.notes)) for ann, a in zip(anns, answers)]
    judged = judge_reasons(dict(zip(SYSTEMS, ([a["reason"] for a in answers], template))), refs, llm, cache)
    return {name: r.to_dict() for name, r in judged.items()} | {"template_reasons": template}


def summarise(per_seed: list[dict]) -> dict:
    """Mean ± std over seeds per system and score, and the paired bootstrap over clips."""
    import numpy as np

    from lantern.evaluation.metrics import paired_bootstrap
    from lantern.evaluation.results import seed_stats

    out = {}
    for system in SYSTEMS:
        for k in SCORES:
            vals = [s[system][k] for s in per_seed if s[system][k] is not None]
            out[f"{system}.{k}"] = seed_stats(vals) if vals else {"mean": None, "std": None, "per_seed": vals}
    deltas = {}
    for k in SCORES:
        model, template = (np.array([[c[k] for c in s[name]["per_clip"]] for s in per_seed], dtype=float)
                           for name in SYSTEMS)
        keep = ~(np.isnan(model).any(0) | np.isnan(template).any(0))   # judged for every seed and system
        if not keep.any():
            deltas[k] = {"delta": None, "low": None, "high": None, "n_clips": 0}
            continue
        mean_score = lambda _t, p: float(np.mean(p))  # noqa: E731 (the score is the clip's, not a label)
        boot = paired_bootstrap(np.zeros(int(keep.sum())), template[:, keep].mean(0), model[:, keep],
                                mean_score, n_boot=2000)
        deltas[k] = {**boot, "n_clips": int(keep.sum())}
    out["paired_bootstrap"] = deltas
    return out


def label_scores(answers: list[list[dict]], classes: list[str]) -> dict:
    """Accuracy and weighted F1 (percent, mean ± std over seeds) of the judged clips' labels."""
    from lantern.evaluation.metrics import percent_scores
    from lantern.evaluation.results import summarise_seeds

    return summarise_seeds([percent_scores([classes.index(a["gold"]) for a in seed],
                                           [classes.index(a["predicted"]) for a in seed], len(classes))
                            for seed in answers])


def main(argv=None) -> int:
    from lantern.evaluation.results import build_result, save_result
    from lantern.llm import EMBEDDED, get_llm
    from lantern.llm.cache import LLMCache

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--annotations", type=Path, required=True, help="merr.json of the split's clips")
    ap.add_argument("--dataset", help="default: the run's own dataset")
    ap.add_argument("--split", default="test")
    ap.add_argument("--data-root")
    ap.add_argument("--judge", default=None, help="embedded judge model (default: the embedded default)")
    ap.add_argument("--limit", type=int, help="only the first N clips (a smoke run)")
    ap.add_argument("--seeds", type=int, nargs="+", help="only these seeds' models (default: all)")
    ap.add_argument("--reason-tokens", type=int, default=None, help="cap of each generated reason")
    ap.add_argument("--results-dir", type=Path,
                    help="default benchmarks/results; a --limit run writes none unless given")
    args = ap.parse_args(argv)
    meta_path, models = args.run_dir / "result.json", sorted(args.run_dir.glob("seed*/model"))
    if args.seeds:
        models = [m for m in models if int(m.parent.name.removeprefix("seed")) in args.seeds]
    if not models or not meta_path.is_file():
        raise SystemExit(f"{args.run_dir}: not a `lantern train` output folder (seed*/model and result.json)")
    run_meta = json.loads(meta_path.read_text())
    dataset = args.dataset or run_meta["config"]["dataset"]["name"]
    annotations = json.loads(args.annotations.read_text(encoding="utf-8"))
    start = time.time()
    answers = [seed_answers(m, dataset, args.split, args.data_root, args.limit, args.reason_tokens)
               for m in models]
    missing = sorted({a["id"] for seed in answers for a in seed} - set(annotations))
    if missing:
        raise SystemExit(f"{args.annotations}: no annotation for {len(missing)} clips, e.g. {missing[:3]}")
    words = _label_words(dataset, args.data_root)
    llm, cache = get_llm(EMBEDDED, args.judge, n_threads=2, n_threads_batch=2), LLMCache()
    try:
        per_seed = [judge_seed(a, annotations, words, llm, cache) for a in answers]
    finally:
        llm.close()
        cache.close()
    summary = summarise(per_seed)
    metrics = {k: {"mean": v["mean"], "std": v["std"]} for k, v in summary.items() if k != "paired_bootstrap"}
    metrics |= label_scores(answers, list(words))
    judge = getattr(llm, "model_id", args.judge)
    result = build_result(
        dataset=dataset, label_set=run_meta.get("label_set"), split=args.split,
        n_utterances=len(answers[0]), model=run_meta.get("model", "emotion-llama"), method=REASON_JUDGE,
        variant=run_meta.get("variant", "emotion-llama"), features=run_meta.get("features"),
        seeds=[int(m.parent.name.removeprefix("seed")) for m in models], metrics=metrics,
        train_seconds=0.0, wall_seconds=time.time() - start, limit=args.limit,
        config={"run": run_meta.get("config"), "judge": judge, "annotations": _shown(args.annotations),
                "reason_tokens": args.reason_tokens},
        paired_bootstrap=summary["paired_bootstrap"], judge_model=judge, per_seed=per_seed,
        answers=[[{k: a[k] for k in ("id", "predicted", "reason")} for a in seed] for seed in answers])
    out = args.results_dir or (None if args.limit else REPO / "benchmarks" / "results")
    path = save_result(result, out) if out else "(not written: a --limit run without --results-dir)"
    print(json.dumps({"result": str(path), **{k: v["mean"] for k, v in metrics.items()},
                      "paired_bootstrap": summary["paired_bootstrap"]}, indent=1))
    return 0


def _shown(path: Path) -> str:
    """A path as the result records it: relative to the repository when inside it."""
    path = path.resolve()
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def _label_words(dataset: str, data_root: str | None) -> dict[str, str]:
    from lantern.data import load_dataset
    from lantern.llm.slots import Verbaliser

    ds = load_dataset(dataset, **({"data_root": data_root} if data_root else {}))
    words = Verbaliser.for_label_set(ds.label_set.classes, ds.label_set.descriptions).words
    return dict(zip(ds.label_set.classes, words))


if __name__ == "__main__":
    sys.exit(main())
