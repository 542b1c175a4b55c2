"""Per-utterance prediction export (probabilities + VAD) that the LLM refinement stage reads.

One JSON object per line::

    {"dialogue_id": ..., "utterance_id": ..., "turn": 0, "speaker": "F", "text": "...",
     "label": "neu" | null, "vad_true": [v, a, d] | null,
     "probs": {"hap": 0.1, ...}, "vad": [v, a, d]}   # VAD on the dataset's scale
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from lantern.data.records import Dialogue, LabelSet
from lantern.models.base import denormalise_vad
from lantern.paths import atomic_write_text
from lantern.training.trainer import predict_dialogues


def prediction_rows(model, dialogues: list[Dialogue], spec, label_set: LabelSet, vad_scale):
    scale = vad_scale or (-1.0, 1.0)
    for d, probs, vad in predict_dialogues(model, dialogues, spec, vad_scale):
        vad = denormalise_vad(torch.from_numpy(vad), scale).numpy()
        for turn, (u, p, v) in enumerate(zip(d, probs, vad)):
            yield {"dialogue_id": d.id, "utterance_id": u.id, "turn": turn, "speaker": u.speaker,
                   "text": u.text,
                   "label": label_set.classes[u.label] if u.label is not None else None,
                   "vad_true": list(u.vad) if u.vad is not None else None,
                   "probs": {c: round(float(x), 6) for c, x in zip(label_set.classes, p)},
                   "vad": [round(float(x), 4) for x in v]}


def write_predictions(path: str | Path, rows) -> Path:
    lines = [json.dumps(r, ensure_ascii=False) for r in rows]
    atomic_write_text(path, "\n".join(lines) + "\n")
    return Path(path)


def read_predictions(path: str | Path) -> list[dict]:
    from lantern.data.io import read_jsonl
    return [row for _, row in read_jsonl(path)]


def arrays_from_rows(rows: list[dict], classes: tuple[str, ...]):
    """(y_true, probs, vad_true, vad_pred) for the labelled rows."""
    rows = [r for r in rows if r["label"] is not None]
    y = np.array([classes.index(r["label"]) for r in rows])
    p = np.array([[r["probs"][c] for c in classes] for r in rows])
    vt = np.array([r["vad_true"] if r["vad_true"] is not None else [np.nan] * 3 for r in rows], float)
    vp = np.array([r["vad"] for r in rows], float)
    return y, p, vt, vp
