"""Scores of a model on a corpus labelled in another label set, on the classes both share
(the mapping is :mod:`lantern.data.label_mapping`)."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from lantern.data.label_mapping import project_labels, project_probs, shared_classes
from lantern.evaluation.metrics import percent_scores

__all__ = ["cross_corpus_scores"]


def cross_corpus_scores(probs: np.ndarray, model_classes: Sequence[str], model_set: str,
                        labels: Sequence[str | None], data_set: str) -> dict:
    """Accuracy and weighted F1 (percent) of a model's probabilities against gold labels of
    another label set, on their shared classes, with how many utterances were scored."""
    target = shared_classes(model_set, data_set)
    y = project_labels(labels, data_set, target)
    keep = y >= 0
    p = project_probs(probs, model_classes, model_set, target)[keep]
    scores = percent_scores(y[keep], p.argmax(axis=1), len(target)) if keep.any() else \
        {"accuracy": float("nan"), "weighted_f1": float("nan")}
    return {**scores, "classes": list(target), "scored": int(keep.sum()),
            "left_out": int((~keep).sum())}
