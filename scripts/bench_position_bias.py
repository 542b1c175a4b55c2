"""Measure the written-percent mode's position bias, and what removes it (issue #8).

    python scripts/bench_position_bias.py configs/lantern-iemocap-text.yaml --fields 40

Asks the same first ``--fields`` validation fields in the percent mode twice, with the class
order fixed (the first key is always the label set's first class) and rotated by one place
per field (the default), through ``lantern refine --max-fields`` (answers kept under
``benchmarks/answers/`` and committed, so the measurement rebuilds without an LLM), and
compares both with the log-probability answers of the same fields when that run has them.

Per answer mode it reports: how often an utterance's top class is the one listed first,
against 1/K (what an order-blind answer gives under rotation, where every class is listed
first equally often); the share of each class among the tops against the vanilla
references' and the gold labels'; accuracy of the mean of each utterance's answers, and how
often it agrees with the vanilla top. A third fix is scored on the rotated answers with no
more LLM calls: dividing each answer by the mean probability the mode puts on each listed
position (estimated on the same answers, so it is an in-sample upper bound).

Writes ``benchmarks/results/<dataset>-<label set>-<vanilla>-llm-position-bias-percent.json``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

ORDERS = ("fixed", "rotate")


def _overrides(order: str) -> list[str]:
    return ["prompt.answer=percent", f"prompt.class_order={order}"]


def _ensure_answers(config: str, order: str, n_fields: int, folder: Path) -> None:
    """Ask the first ``n_fields`` validation fields in this order unless they are answered."""
    from lantern.answers import AnswerFile

    path = folder / "valid.jsonl"
    have = 0
    if path.exists():
        with AnswerFile(path, {}) as store:
            have = sum(1 for a in store if not a.dialogue_id.startswith("__"))
    if have >= n_fields:
        return
    cmd = ["lantern", "refine", config, "--max-fields", str(n_fields - have), "--no-progress"]
    for o in _overrides(order):
        cmd += ["--set", o]
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=REPO)


def _answers(folder: Path) -> tuple[dict, dict]:
    from lantern.answers import AnswerFile

    with AnswerFile(folder / "valid.jsonl", {}) as store:
        return dict(store.header), {(a.dialogue_id, a.field_id): a for a in store
                                    if not a.dialogue_id.startswith("__")}


def _score(answers: dict, fields: list, rows_by_dialogue: dict, classes: list[str],
           order: str | None, position_prior: np.ndarray | None = None) -> dict:
    """Position and class statistics of one mode's answers on ``fields``."""
    from lantern.evaluation.metrics import percent_scores

    k = len(classes)
    first = tops = 0
    top_counts = np.zeros(k)
    by_utt: dict = {}
    mass_by_position = np.zeros(k)
    completion = seconds = 0.0
    for key in fields:
        a = answers[key]
        shift = (a.field_id % k) if order == "rotate" else 0
        completion += a.completion_tokens
        seconds += a.seconds
        for j, row in enumerate(np.asarray(a.probs, dtype=float)):
            listed = [(c - shift) % k for c in range(k)]      # canonical class -> listed position
            if position_prior is not None:
                row = row / position_prior[listed]
                row = row / row.sum()
            for c in range(k):
                mass_by_position[listed[c]] += row[c]
            top = int(row.argmax())
            tops += 1
            first += listed[top] == 0
            top_counts[top] += 1
            by_utt.setdefault((a.dialogue_id, a.start + j), []).append(row)
    keys = sorted(by_utt)
    rows = [rows_by_dialogue[d][i] for d, i in keys]
    labelled = [n for n, r in enumerate(rows) if r.label is not None]
    y = np.array([classes.index(rows[n].label) for n in labelled])
    mean = np.array([np.mean(by_utt[keys[n]], axis=0) for n in labelled])
    vanilla_top = np.array([int(np.argmax([rows[n].probs[c] for c in classes])) for n in labelled])
    pred = mean.argmax(1)
    scores = percent_scores(y, pred, k)
    return {"answers": tops, "utterances": len(labelled),
            # the log-probability mode lists no classes in its answer: no first key
            "top_listed_first": round(first / tops, 4) if order is not None else None,
            "class_share_of_tops": {c: round(float(top_counts[i] / tops), 4) for i, c in enumerate(classes)},
            "mean_probability_by_listed_position": [round(v / tops, 4) for v in mass_by_position],
            "accuracy": round(scores["accuracy"], 2), "weighted_f1": round(scores["weighted_f1"], 2),
            "agrees_with_vanilla_top": round(float((pred == vanilla_top).mean()), 4),
            "completion_tokens_per_field": round(completion / len(fields), 1),
            "llm_seconds_per_field": round(seconds / len(fields), 2)}


def main(argv=None) -> int:
    from lantern.config import load_config
    from lantern.evaluation.metrics import percent_scores
    from lantern.evaluation.results import build_result, save_result
    from lantern.pipeline import answers_dir, vanilla_config, vanilla_name
    from lantern.pipeline.vanilla import pinned_file
    from lantern.records import group_by_dialogue, read_pinned

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("config")
    ap.add_argument("--fields", type=int, default=40, help="validation fields asked per order")
    ap.add_argument("--results-dir", default=str(REPO / "benchmarks" / "results"))
    ap.add_argument("--no-ask", action="store_true", help="only score the answers already there")
    args = ap.parse_args(argv)

    folders = {o: answers_dir(load_config(args.config, _overrides(o))) for o in ORDERS}
    if not args.no_ask:
        for order, folder in folders.items():
            _ensure_answers(args.config, order, args.fields, folder)
    answers, header = {}, {}
    for order, folder in folders.items():
        header[order], answers[order] = _answers(folder)
    logprobs_folder = answers_dir(load_config(args.config))
    if (logprobs_folder / "valid.jsonl").exists():
        header["logprobs"], answers["logprobs"] = _answers(logprobs_folder)
    fields = sorted(set.intersection(*(set(a) for a in answers.values())))[: args.fields]
    if not fields:
        raise SystemExit("no validation field is answered in every mode yet")
    classes = list(header["fixed"]["classes"])
    rows_by_dialogue = dict(group_by_dialogue(read_pinned(pinned_file(folders["fixed"], "valid"))))

    modes = {"percent-fixed": _score(answers["fixed"], fields, rows_by_dialogue, classes, "fixed"),
             "percent-rotate": _score(answers["rotate"], fields, rows_by_dialogue, classes, "rotate")}
    prior = np.asarray(modes["percent-rotate"]["mean_probability_by_listed_position"])
    modes["percent-rotate-position-prior"] = _score(answers["rotate"], fields, rows_by_dialogue,
                                                    classes, "rotate", position_prior=prior / prior.mean())
    if "logprobs" in answers:
        modes["logprobs"] = _score(answers["logprobs"], fields, rows_by_dialogue, classes, None)
    # the references and the gold labels on the same utterances
    utts = sorted({(d, answers["fixed"][(d, f)].start + j) for d, f in fields
                   for j in range(len(answers["fixed"][(d, f)].probs))})
    rows = [rows_by_dialogue[d][i] for d, i in utts if rows_by_dialogue[d][i].label is not None]
    y = np.array([classes.index(r.label) for r in rows])
    v = np.array([int(np.argmax([r.probs[c] for c in classes])) for r in rows])
    vanilla_scores = percent_scores(y, v, len(classes))
    reference = {"vanilla_accuracy": round(vanilla_scores["accuracy"], 2),
                 "vanilla_weighted_f1": round(vanilla_scores["weighted_f1"], 2),
                 "vanilla_class_share_of_tops": {c: round(float((v == i).mean()), 4) for i, c in enumerate(classes)},
                 "gold_class_share": {c: round(float((y == i).mean()), 4) for i, c in enumerate(classes)},
                 "order_blind_top_listed_first": round(1 / len(classes), 4)}

    cfg = load_config(args.config, _overrides("rotate"))
    vcfg = vanilla_config(cfg)
    rotate = modes["percent-rotate"]
    result = build_result(
        dataset=vcfg["dataset"]["name"], label_set=vcfg["dataset"].get("label_set"), split="valid",
        n_utterances=rotate["utterances"], model=vanilla_name(vcfg), method="llm-position-bias",
        variant="percent", features=["text"], selection_split="none (no selection)", seeds=[0],
        metrics={"accuracy": {"mean": rotate["accuracy"], "std": 0.0, "per_seed": [rotate["accuracy"]]},
                 "weighted_f1": {"mean": rotate["weighted_f1"], "std": 0.0,
                                 "per_seed": [rotate["weighted_f1"]]}},
        train_seconds=0.0, config={"pipeline_config": args.config, "fields": args.fields,
                                   "orders": list(ORDERS)},
        n_fields=len(fields), modes=modes, reference=reference,
        answers_dirs={o: str(f) for o, f in folders.items()},
        llm={"model_id": header["fixed"].get("model_id")})
    path = save_result(result, args.results_dir)
    print(path)
    for mode, m in modes.items():
        print(f"{mode:30s} top listed first {m['top_listed_first']}  acc {m['accuracy']:.2f}  "
              f"agrees with vanilla {m['agrees_with_vanilla_top']:.3f}  shares {m['class_share_of_tops']}")
    print("reference", reference)
    return 0


if __name__ == "__main__":
    sys.exit(main())
