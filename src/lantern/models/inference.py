"""Running a trained vanilla model: per-dialogue probabilities and dimension scores, and the
:class:`~lantern.records.PredictionRow` s the later stages read. Used by training (to select
and export), ``lantern evaluate``/``export``, the pipeline and ``lantern predict`` alike."""

from __future__ import annotations

from typing import Iterator

import numpy as np
import torch

from lantern.data.dialogues import Dialogue, LabelSet
from lantern.models.base import VanillaModel, denormalise_vad
from lantern.models.batching import FeatureSpec, collate
from lantern.records import PredictionRow


@torch.no_grad()
def predict_dialogues(model: VanillaModel, dialogues: list[Dialogue], spec: FeatureSpec,
                      vad_scale, batch_size: int = 16,
                      multi_label: bool = False) -> Iterator[tuple[Dialogue, np.ndarray, np.ndarray]]:
    """Yield (dialogue, probabilities (n, K), normalised VAD (n, 3)) per dialogue; with
    ``multi_label`` each class's own sigmoid (they do not sum to 1), else a softmax."""
    model.eval()
    for i in range(0, len(dialogues), batch_size):
        chunk = dialogues[i:i + batch_size]
        batch = collate(chunk, spec, vad_scale)
        out = model(batch)
        probs = torch.sigmoid(out.logits) if multi_label else torch.softmax(out.logits, -1)
        for b, d in enumerate(chunk):
            n = len(d)
            yield d, probs[b, :n].numpy(), out.vad[b, :n].numpy()


def prediction_rows(model: VanillaModel, dialogues: list[Dialogue], spec: FeatureSpec,
                    label_set: LabelSet, vad_scale,
                    gold: LabelSet | None = None) -> Iterator[PredictionRow]:
    """One row per utterance: probabilities over ``label_set`` rounded to 6 decimals, VAD
    (on the dataset's scale, or [-1, 1] when it has none) to 4. Gold labels are named in
    ``gold``, the data's own label set (default: the model's), so a model run on a corpus
    of another label set keeps that corpus's labels (and says whose they are)."""
    scale = vad_scale or (-1.0, 1.0)
    foreign = gold is not None and tuple(gold.classes) != tuple(label_set.classes)
    gold_classes = gold.classes if foreign else label_set.classes
    gold_name = gold.name if foreign else None
    multi = label_set.multi_label
    for d, probs, vad in predict_dialogues(model, dialogues, spec, vad_scale, multi_label=multi):
        vad = denormalise_vad(torch.from_numpy(vad), scale).numpy()
        for turn, (u, p, v) in enumerate(zip(d, probs, vad)):
            yield PredictionRow(
                d.id, u.id, turn, {c: round(float(x), 6) for c, x in zip(label_set.classes, p)},
                tuple(round(float(x), 4) for x in v),
                gold_classes[u.label] if u.label is not None else None,
                tuple(u.vad) if u.vad is not None else None, u.speaker, u.text, gold_name, multi,
                tuple(gold_classes[k] for k in u.labels) if multi and u.labels is not None else None)


def multi_label_arrays(rows: list[PredictionRow], classes: tuple[str, ...]):
    """(multi-hot targets (n, K), probabilities (n, K)) over the rows with gold ``labels``."""
    rows = [r for r in rows if r.labels is not None]
    y = np.array([[c in r.labels for c in classes] for r in rows], dtype=np.int64).reshape(-1, len(classes))
    p = np.array([[r.probs[c] for c in classes] for r in rows]).reshape(-1, len(classes))
    return y, p


def label_arrays(rows: list[PredictionRow], classes: tuple[str, ...]):
    """(y_true, probs, vad_true, vad_pred) over the labelled rows."""
    rows = [r for r in rows if r.has_own_label]
    y = np.array([classes.index(r.label) for r in rows])
    p = np.array([[r.probs[c] for c in classes] for r in rows])
    vt = np.array([r.vad_true if r.vad_true is not None else [np.nan] * 3 for r in rows], float)
    vp = np.array([r.vad if r.vad is not None else [np.nan] * 3 for r in rows], float)
    return y, p, vt, vp
