"""Model selection by cross-validation: a candidate's held-out predictions over every fold,
pooled, scored per seed (``scripts/cv_select.py`` runs the folds; this module scores them).

Each (candidate, fold, seed) keeps the confusion matrix of its held-out fold. Summing a
seed's matrices over the folds gives the confusion matrix of predicting every pooled
train+valid utterance once, by a model that did not train on it; accuracy and weighted F1
of that matrix are the seed's score, and the candidate's is their mean ± std over seeds.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

CV_SELECTION = "cv-selection"   # the ``method`` of a selection result file


def confusion_scores(confusion: Sequence[Sequence[int]]) -> dict[str, float]:
    """Accuracy and support-weighted F1 (percent) of a confusion matrix (row = true class).

    >>> s = confusion_scores([[1, 1], [0, 2]])
    >>> s["accuracy"], round(s["weighted_f1"], 2)
    (75.0, 73.33)
    """
    cm = np.asarray(confusion, dtype=float)
    total = cm.sum()
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1] or total <= 0:
        raise ValueError(f"a confusion matrix must be square with counts, got shape {cm.shape}")
    tp, support, predicted = np.diag(cm), cm.sum(1), cm.sum(0)
    denominator = support + predicted
    f1 = np.divide(2 * tp, denominator, out=np.zeros_like(tp), where=denominator > 0)
    return {"accuracy": float(100.0 * tp.sum() / total), "weighted_f1": 100.0 * float((f1 * support).sum() / total)}


def candidate_score(folds: dict[str, dict], n_folds: int) -> dict | None:
    """Pooled scores of one candidate from ``{fold: {"confusion": {seed: matrix}}}``, or None
    until all ``n_folds`` folds are done. Seeds are those every fold has."""
    if len(folds) < n_folds:
        return None
    seeds = sorted(set.intersection(*(set(f["confusion"]) for f in folds.values())), key=int)
    if not seeds:
        return None
    per_seed = [confusion_scores(sum(np.asarray(f["confusion"][s]) for f in folds.values()))
                for s in seeds]
    return {metric: {"mean": float(np.mean([p[metric] for p in per_seed])),
                     "std": float(np.std([p[metric] for p in per_seed])),
                     "per_seed": [p[metric] for p in per_seed]}
            for metric in ("accuracy", "weighted_f1")} | {"seeds": [int(s) for s in seeds]}


def ranked(candidates: dict[str, dict], n_folds: int) -> list[tuple[str, dict]]:
    """(name, score) of the candidates with every fold done, best pooled weighted F1 first
    (ties: better accuracy, then name)."""
    done = [(name, candidate_score(c["folds"], n_folds)) for name, c in candidates.items()]
    done = [(n, s) for n, s in done if s is not None]
    return sorted(done, key=lambda x: (-round(x[1]["weighted_f1"]["mean"], 6),
                                       -round(x[1]["accuracy"]["mean"], 6), x[0]))
