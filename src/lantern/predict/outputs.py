"""The prediction document (``docs/predict-output.md``) and its three files: JSON, CSV, HTML."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from lantern.paths import atomic_write_text

# Readable names of the short IEMOCAP class codes; other label sets already use words.
READABLE = {"hap": "happy", "sad": "sad", "neu": "neutral", "ang": "angry", "exc": "excited",
            "fru": "frustrated"}


def build_document(rows: list[dict], inp, label_set, vad_scale, model_info: dict,
                   refined: dict | None, llm_summary: dict | None, timings: dict,
                   input_path) -> dict:
    """Assemble the document from the vanilla rows (``prediction_rows``) and LLM answers."""
    import lantern

    classes = list(label_set.classes)
    media = {(d.id, u.id): u for d in inp.dialogues for u in d}
    utterances = []
    for r in rows:
        u = media[(r["dialogue_id"], r["utterance_id"])]
        vanilla_label = max(r["probs"], key=r["probs"].get)
        item = {"dialogue_id": r["dialogue_id"], "utterance_id": r["utterance_id"], "turn": r["turn"],
                "speaker": r["speaker"], "text": r["text"], "start": u.start, "end": u.end,
                "media": dict(u.media), "label": r["label"],
                "vanilla": {"label": vanilla_label, "probs": r["probs"]},
                "vad": dict(zip(("valence", "arousal", "dominance"), r["vad"])),
                "refined": None}
        if refined is not None:
            ref = refined[(r["dialogue_id"], r["utterance_id"])]
            probs = {c: round(p, 6) for c, p in ref["probs"].items()}
            item["refined"] = {"label": max(probs, key=probs.get), "probs": probs,
                               "fields": ref["fields"], "valid_fields": ref["valid_fields"]}
        item["final"] = (item["refined"] or item["vanilla"])["label"]
        utterances.append(item)
    llm = None
    if llm_summary is not None:
        keys = ("t", "window", "stride", "calls", "requests", "prompt_tokens", "completion_tokens",
                "seconds", "cache_hits", "validation_failures", "parse_failures", "fallbacks",
                "renormalised_answers", "template_hash")
        llm = {"backend": llm_summary.get("backend"), "model": llm_summary.get("model_id"),
               **{k: llm_summary.get(k) for k in keys}}
    return {
        "lantern_version": lantern.__version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "input": {"path": str(input_path), "kind": inp.kind},
        "classes": classes,
        "class_names": {c: READABLE.get(c, c) for c in classes},
        "vad_scale": list(vad_scale) if vad_scale else None,
        "model": model_info,
        "llm": llm,
        "transcription": inp.transcription,
        "timings": timings,
        "utterances": utterances,
        "scores": scores(utterances, classes),
    }


def scores(utterances: list[dict], classes: list[str]) -> dict | None:
    """Accuracy, weighted F1 and confusion matrices over the utterances with a gold label."""
    from lantern.evaluation.metrics import accuracy, confusion_matrix, weighted_f1

    labelled = [u for u in utterances if u["label"] is not None]
    if not labelled:
        return None
    y = np.array([classes.index(u["label"]) for u in labelled])
    out = {"n_labelled": len(labelled)}
    for prefix, key in (("", "vanilla"), ("refined_", "refined")):
        if key == "refined" and labelled[0]["refined"] is None:
            continue
        pred = np.array([classes.index(u[key]["label"]) for u in labelled])
        out[prefix + "accuracy"] = round(float(accuracy(y, pred)), 4)
        out[prefix + "weighted_f1"] = round(float(weighted_f1(y, pred, len(classes))), 4)
        out[prefix + "confusion"] = confusion_matrix(y, pred, len(classes)).tolist()
    return out


def to_csv(document: dict) -> str:
    classes = document["classes"]
    header = ["dialogue_id", "utterance_id", "turn", "speaker", "start", "end", "text", "label",
              "vanilla_label", "refined_label", "final", "valence", "arousal", "dominance",
              *[f"p_{c}" for c in classes], *[f"refined_p_{c}" for c in classes]]
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(header)
    for u in document["utterances"]:
        ref = u["refined"] or {}
        writer.writerow([u["dialogue_id"], u["utterance_id"], u["turn"], u["speaker"],
                         _blank(u["start"]), _blank(u["end"]), u["text"], _blank(u["label"]),
                         u["vanilla"]["label"], ref.get("label", ""), u["final"],
                         *(round(u["vad"][k], 4) for k in ("valence", "arousal", "dominance")),
                         *(u["vanilla"]["probs"][c] for c in classes),
                         *((ref["probs"][c] for c in classes) if ref else [""] * len(classes))])
    return buf.getvalue()


def _blank(value):
    return "" if value is None else value


def write_outputs(document: dict, out_dir: str | Path, report: bool = True):
    """Write predictions.json, predictions.csv and (unless ``report=False``) report.html."""
    out_dir = Path(out_dir)
    json_path, csv_path = out_dir / "predictions.json", out_dir / "predictions.csv"
    atomic_write_text(json_path, json.dumps(document, indent=2, ensure_ascii=False, default=str))
    atomic_write_text(csv_path, to_csv(document))
    report_path = None
    if report:
        from lantern.evaluation.html_report import write_report
        report_path = write_report(document, out_dir / "report.html")
    return json_path, csv_path, report_path
