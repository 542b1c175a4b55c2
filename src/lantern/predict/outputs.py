"""The prediction document (``docs/predict-output.md``) and its three files: JSON, CSV, HTML.

The files of one run are written as one set: each goes to a temporary file first, then all
are renamed into place and ``manifest.json`` (their sizes and sha256) is written last. The
old manifest is removed before the first rename, so a folder whose ``manifest.json`` exists
and matches its files holds one complete run (:func:`read_manifest` checks this), whatever
moment a previous run was killed at. Temporary files a killed run left are removed by the
next run into the same folder.

>>> spreadsheet_safe("=SUM(A1:A9)"), spreadsheet_safe("-1"), spreadsheet_safe("Hi"), spreadsheet_safe(-1.5)
("'=SUM(A1:A9)", "'-1", 'Hi', -1.5)
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

import lantern
from lantern.records import PredictionRow

OUTPUT_FILES = ("predictions.json", "predictions.csv", "report.html")
MANIFEST = "manifest.json"
#: Leading characters that make a spreadsheet read a cell as a formula (OWASP, "CSV Injection").
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")

# Readable names of the short IEMOCAP class codes; other label sets already use words.
READABLE = {"hap": "happy", "sad": "sad", "neu": "neutral", "ang": "angry", "exc": "excited",
            "fru": "frustrated"}


MULTI_LABEL_THRESHOLD = 0.5


def build_document(rows: list[PredictionRow], inp, label_set, vad_scale, model_info: dict,
                   refined: dict | None, llm_summary: dict | None, timings: dict,
                   input_path, reasons: dict | None = None, system: str = "lantern",
                   descriptions: dict | None = None) -> dict:
    """Assemble the document from the vanilla :class:`~lantern.records.PredictionRow` s and
    the refined probabilities by (dialogue id, utterance id); ``reasons`` (Emotion-LLaMA)
    gives each utterance a ``reason``, ``descriptions`` (context) a ``description``."""
    import lantern

    classes = list(label_set.classes)
    media = {(d.id, u.id): u for d in inp.dialogues for u in d}
    utterances = []
    for r in rows:
        u = media[r.key]
        item = {"dialogue_id": r.dialogue_id, "utterance_id": r.utterance_id, "turn": r.turn,
                "speaker": r.speaker, "text": r.text, "start": u.start, "end": u.end,
                "media": dict(u.media), "label": r.label,
                "vanilla": {"label": r.top, "probs": dict(r.probs)},
                "vad": dict(zip(("valence", "arousal", "dominance"), r.vad)),
                "refined": None, "reason": (reasons or {}).get(r.key)}
        if r.multi_label:   # a person may feel several: every class whose sigmoid passes 0.5
            item["vanilla"]["labels"] = [c for c, p in r.probs.items() if p >= MULTI_LABEL_THRESHOLD]
        if descriptions is not None:
            item["description"] = descriptions.get(r.key)
        if refined is not None:
            ref = refined[r.key]
            probs = {c: round(p, 6) for c, p in ref["probs"].items()}
            item["refined"] = {"label": max(probs, key=probs.get), "probs": probs,
                               "fields": ref["fields"], "valid_fields": ref["valid_fields"]}
        item["final"] = (item["refined"] or item["vanilla"])["label"]
        utterances.append(item)
    llm = None
    if llm_summary is not None:
        keys = ("answer", "answer_note", "t", "window", "stride", "calls", "requests", "prompt_tokens",
                "reused_prompt_tokens", "decode_steps", "completion_tokens", "seconds", "cache_hits",
                "validation_failures", "parse_failures", "fallbacks", "low_mass_slots",
                "mean_label_mass", "renormalised_answers", "template_hash", "merger")
        llm = {"backend": llm_summary.get("backend"), "model": llm_summary.get("model_id"),
               **{k: llm_summary.get(k) for k in keys}}
    return {
        "lantern_version": lantern.__version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "system": system,
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


def spreadsheet_safe(value):
    """A text cell that no spreadsheet runs as a formula: one starting with ``= + - @``, tab or
    carriage return gets a leading ``'`` (what OWASP recommends; spreadsheets hide it).
    Numbers are left alone: they are written by us, not taken from the input."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def to_csv(document: dict) -> str:
    classes = document["classes"]
    header = ["dialogue_id", "utterance_id", "turn", "speaker", "start", "end", "text", "label",
              "vanilla_label", "refined_label", "final", "valence", "arousal", "dominance",
              *[f"p_{c}" for c in classes], *[f"refined_p_{c}" for c in classes], "reason"]
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(header)
    for u in document["utterances"]:
        ref = u["refined"] or {}
        safe = spreadsheet_safe
        writer.writerow([safe(u["dialogue_id"]), safe(u["utterance_id"]), u["turn"],
                         safe(u["speaker"]), _blank(u["start"]), _blank(u["end"]),
                         safe(u["text"]), _blank(u["label"]),
                         u["vanilla"]["label"], ref.get("label", ""), u["final"],
                         *(round(u["vad"][k], 4) for k in ("valence", "arousal", "dominance")),
                         *(u["vanilla"]["probs"][c] for c in classes),
                         *((ref["probs"][c] for c in classes) if ref else [""] * len(classes)),
                         safe(u.get("reason") or "")])
    return buf.getvalue()


def _blank(value):
    return "" if value is None else value


def render_outputs(document: dict, report: bool = True) -> dict[str, bytes]:
    """The bytes of every output file, by name (report.html only with ``report``)."""
    files = {"predictions.json": json.dumps(document, indent=2, ensure_ascii=False,
                                            default=str).encode("utf-8"),
             "predictions.csv": to_csv(document).encode("utf-8")}
    if report:
        from lantern.report import render_report
        files["report.html"] = render_report(document).encode("utf-8")
    return files


def write_outputs(document: dict, out_dir: str | Path, report: bool = True,
                  files: dict[str, bytes] | None = None):
    """Write predictions.json, predictions.csv, (unless ``report=False``) report.html and last
    manifest.json as one set (see the module docstring). ``files``: already rendered bytes.
    A report.html of an earlier run is removed when this run writes none."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(out_dir)
    files = files if files is not None else render_outputs(document, report)
    temporaries = {}
    try:
        for name, data in files.items():
            temporaries[name] = _temporary(out_dir / name)
            temporaries[name].write_bytes(data)
        (out_dir / MANIFEST).unlink(missing_ok=True)   # from here until the end: no complete set
        for name, tmp in temporaries.items():
            os.replace(tmp, out_dir / name)
    except BaseException:
        for tmp in temporaries.values():
            tmp.unlink(missing_ok=True)
        raise
    for name in OUTPUT_FILES:
        if name not in files:
            (out_dir / name).unlink(missing_ok=True)
    manifest = {"lantern_version": lantern.__version__, "created": document.get("created"),
                "files": {name: {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
                          for name, data in files.items()}}
    from lantern.paths import atomic_write_text
    atomic_write_text(out_dir / MANIFEST, json.dumps(manifest, indent=2) + "\n")
    report_path = out_dir / "report.html" if "report.html" in files else None
    return out_dir / "predictions.json", out_dir / "predictions.csv", report_path


def read_manifest(out_dir: str | Path) -> dict | None:
    """The manifest of ``out_dir`` when it and every file it lists are complete and match
    (sizes and sha256), else None: then the folder holds no complete run."""
    out_dir = Path(out_dir)
    try:
        manifest = json.loads((out_dir / MANIFEST).read_text(encoding="utf-8"))
        for name, entry in manifest["files"].items():
            if name not in OUTPUT_FILES:
                return None
            data = (out_dir / name).read_bytes()
            if len(data) != entry["bytes"] or hashlib.sha256(data).hexdigest() != entry["sha256"]:
                return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return manifest


def _temporary(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


_TEMPORARY_RE = re.compile(r"\.(?P<name>[\w.]+)\.(?P<pid>\d+)\.tmp")


def remove_stale_temporaries(out_dir: Path) -> list[Path]:
    """Remove the ``.<output>.<pid>.tmp`` files that runs killed while writing left behind
    (those of a process still running are kept: it may be writing them now)."""
    removed = []
    for path in out_dir.glob(".*.tmp"):
        m = _TEMPORARY_RE.fullmatch(path.name)
        if not m or m["name"] not in (*OUTPUT_FILES, MANIFEST) or path.is_symlink():
            continue
        pid = int(m["pid"])
        if pid != os.getpid() and _process_alive(pid):
            continue
        path.unlink(missing_ok=True)
        removed.append(path)
    return removed


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True   # someone else's process (or an odd pid): do not touch its files
    return True
