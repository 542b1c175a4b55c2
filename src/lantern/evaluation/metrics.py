"""Evaluation metrics in pure numpy: classification (accuracy, F1, confusion matrix),
dimensional emotion (MAE, Lin's CCC) and a paired bootstrap for comparing two systems.

Conventions (identical to scikit-learn with ``labels=range(n_classes)`` and
``zero_division=0``): a class that never occurs in ``y_true`` and is never predicted
gets F1 0; weighted F1 weights each class by its support in ``y_true``.

The functions :func:`accuracy`, :func:`weighted_f1` and :func:`per_class_f1` return
fractions in [0, 1]; :func:`classification_report` reports percentages.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

__all__ = ["accuracy", "weighted_f1", "per_class_f1", "confusion_matrix", "mae", "ccc",
           "classification_report", "vad_report", "paired_bootstrap", "average_precision",
           "mean_average_precision"]

VAD_NAMES = ("valence", "arousal", "dominance")


# ----------------------------------------------------------------------------- helpers

def _labels(y_true, y_pred, n_classes: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Validate two label vectors: same non-zero length, integers, within range(n_classes)."""
    t = np.asarray(y_true)
    p = np.asarray(y_pred)
    if t.ndim != 1 or p.ndim != 1:
        raise ValueError(f"labels must be 1-d; got shapes {t.shape} and {p.shape}")
    if t.size == 0:
        raise ValueError("empty input: y_true and y_pred contain no labels")
    if t.shape != p.shape:
        raise ValueError(f"y_true and y_pred differ in length: {t.size} != {p.size}")
    for name, a in (("y_true", t), ("y_pred", p)):
        if not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.bool_)):
            if not np.issubdtype(a.dtype, np.floating) or not np.all(np.mod(a, 1) == 0):
                raise ValueError(f"{name} must hold integer class indices; got dtype {a.dtype}")
    t = t.astype(np.int64)
    p = p.astype(np.int64)
    if n_classes is not None:
        if n_classes < 1:
            raise ValueError(f"n_classes must be >= 1; got {n_classes}")
        for name, a in (("y_true", t), ("y_pred", p)):
            bad = (a < 0) | (a >= n_classes)
            if bad.any():
                raise ValueError(f"{name} holds labels outside range({n_classes}): "
                                 f"{sorted(set(a[bad].tolist()))[:10]}")
    return t, p


def _pairs(a, b) -> tuple[np.ndarray, np.ndarray]:
    """Validate two real-valued arrays of the same shape, 1-d (n,) or 2-d (n, d)."""
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"shapes differ: {x.shape} != {y.shape}")
    if x.ndim not in (1, 2):
        raise ValueError(f"expected a 1-d (n,) or 2-d (n, d) array; got shape {x.shape}")
    if x.shape[0] == 0:
        raise ValueError("empty input: no rows to compare")
    return x, y


def _scalar_or_array(v: np.ndarray, ndim: int):
    return float(v[0]) if ndim == 1 else v


# ----------------------------------------------------------------------- classification

def confusion_matrix(y_true, y_pred, n_classes: int) -> np.ndarray:
    """(n_classes, n_classes) int matrix; row = true class, column = predicted class.

    >>> confusion_matrix([0, 0, 1, 2], [0, 1, 1, 2], 3)
    array([[1, 1, 0],
           [0, 1, 0],
           [0, 0, 1]])
    """
    t, p = _labels(y_true, y_pred, n_classes)
    flat = np.bincount(t * n_classes + p, minlength=n_classes * n_classes)
    return flat.reshape(n_classes, n_classes).astype(np.int64)


def accuracy(y_true, y_pred) -> float:
    """Fraction of exact matches.

    >>> accuracy([0, 1, 2, 2], [0, 1, 1, 2])
    0.75
    """
    t, p = _labels(y_true, y_pred)
    return float(np.mean(t == p))


def _f1_from_cm(cm: np.ndarray) -> np.ndarray:
    tp = np.diag(cm).astype(np.float64)
    fp = cm.sum(axis=0) - tp
    fn = cm.sum(axis=1) - tp
    denom = 2 * tp + fp + fn
    # F1 = 2PR/(P+R) = 2TP/(2TP+FP+FN); it is 0 whenever TP = 0 (zero_division=0).
    return np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)


def per_class_f1(y_true, y_pred, n_classes: int) -> np.ndarray:
    """F1 of each class in range(n_classes); classes with no true or predicted example get 0.

    >>> per_class_f1([0, 0, 1, 1], [0, 1, 1, 1], 3).round(4)
    array([0.6667, 0.8   , 0.    ])
    """
    return _f1_from_cm(confusion_matrix(y_true, y_pred, n_classes))


def weighted_f1(y_true, y_pred, n_classes: int) -> float:
    """Per-class F1 averaged with weights = support of each class in ``y_true``.

    >>> round(weighted_f1([0, 0, 1, 1], [0, 1, 1, 1], 3), 4)
    0.7333
    """
    cm = confusion_matrix(y_true, y_pred, n_classes)
    support = cm.sum(axis=1).astype(np.float64)
    return float(np.sum(_f1_from_cm(cm) * support) / support.sum())


def percent_scores(y_true, y_pred, n_classes: int) -> dict[str, float]:
    """Accuracy and weighted F1 in percent (the unit of every score lantern reports).

    >>> s = percent_scores([0, 0, 1, 1], [0, 1, 1, 1], 2)
    >>> s["accuracy"], round(s["weighted_f1"], 2)
    (75.0, 73.33)
    """
    return {"accuracy": 100 * float(accuracy(y_true, y_pred)),
            "weighted_f1": 100 * float(weighted_f1(y_true, y_pred, n_classes))}


def classification_report(y_true, y_pred, class_names: Sequence[str]) -> dict:
    """Everything a result file needs about a classifier, percentages for the scores.

    Keys: ``n``, ``accuracy`` and ``weighted_f1`` (percent), ``uar`` (unweighted average
    recall: the mean recall of the classes present; percent) and ``war`` (weighted average
    recall, which equals accuracy; kept under the name speech papers use), ``per_class_f1``
    (percent, by class name), ``support`` (true count by class name), ``confusion_matrix``
    (nested lists; row = true class, column = predicted class).

    >>> r = classification_report([0, 0, 1, 1], [0, 1, 1, 1], ["neu", "ang"])
    >>> r["accuracy"], round(r["weighted_f1"], 2), r["support"], r["uar"]
    (75.0, 73.33, {'neu': 2, 'ang': 2}, 75.0)
    >>> r["per_class_f1"]["ang"], r["confusion_matrix"]
    (80.0, [[1, 1], [0, 2]])
    """
    names = [str(c) for c in class_names]
    if not names:
        raise ValueError("class_names is empty")
    if len(set(names)) != len(names):
        raise ValueError(f"class_names has duplicates: {names}")
    k = len(names)
    cm = confusion_matrix(y_true, y_pred, k)
    f1 = _f1_from_cm(cm)
    support = cm.sum(axis=1)
    n = int(support.sum())
    present = support > 0
    recall = np.diag(cm)[present] / support[present]
    return {
        "n": n,
        "accuracy": 100.0 * float(np.trace(cm)) / n,
        "weighted_f1": 100.0 * float(np.sum(f1 * support) / n),
        "uar": 100.0 * float(recall.mean()),
        "war": 100.0 * float(np.sum(recall * support[present]) / n),
        "per_class_f1": {name: 100.0 * float(v) for name, v in zip(names, f1)},
        "support": {name: int(s) for name, s in zip(names, support)},
        "confusion_matrix": cm.tolist(),
    }


# --------------------------------------------------------------------------- multi-label

def average_precision(y_true, scores) -> float:
    """Average precision of one class (a fraction): the mean, over the positives ranked by
    score, of the precision at each positive's rank; tied scores count as one threshold
    (scikit-learn's ``average_precision_score``). NaN without positives.

    >>> round(average_precision([1, 0, 1, 0], [0.9, 0.8, 0.7, 0.1]), 4)
    0.8333
    """
    y = np.asarray(y_true, dtype=bool).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    if y.shape != s.shape:
        raise ValueError(f"y_true has {y.size} values, scores {s.size}")
    if not y.any():
        return float("nan")
    order = np.argsort(-s, kind="mergesort")
    y, s = y[order], s[order]
    last = np.r_[np.flatnonzero(np.diff(s)), y.size - 1]   # the last index of each distinct score
    tp = np.cumsum(y)[last]
    precision = tp / (last + 1)
    recall = tp / y.sum()
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def mean_average_precision(y_true, scores) -> dict:
    """mAP over the columns of ``(n, K)`` 0/1 targets and scores (EMOTIC's 26 categories), in
    percent; classes without a positive are left out of the mean and listed.

    >>> r = mean_average_precision([[1, 0], [0, 1], [1, 0]], [[0.9, 0.2], [0.3, 0.8], [0.6, 0.5]])
    >>> r["map"], r["classes_scored"]
    (100.0, 2)
    """
    y = np.asarray(y_true)
    s = np.asarray(scores, dtype=np.float64)
    if y.ndim != 2 or y.shape != s.shape:
        raise ValueError(f"targets {y.shape} and scores {s.shape} must be the same (n, K) shape")
    ap = [average_precision(y[:, k], s[:, k]) for k in range(y.shape[1])]
    scored = [a for a in ap if not np.isnan(a)]
    return {"map": 100.0 * float(np.mean(scored)) if scored else float("nan"),
            "per_class_ap": [None if np.isnan(a) else 100.0 * a for a in ap],
            "classes_scored": len(scored), "classes_without_positives": [k for k, a in enumerate(ap) if np.isnan(a)]}


# --------------------------------------------------------------------------- dimensional

def mae(a, b):
    """Mean absolute error: a float for 1-d input, one value per column for (n, d) input.

    >>> mae([1.0, 2.0, 3.0], [1.0, 2.5, 2.0])
    0.5
    >>> mae([[1, 2], [3, 4]], [[2, 2], [3, 6]])
    array([0.5, 1. ])
    """
    x, y = _pairs(a, b)
    x2 = x.reshape(len(x), -1)
    y2 = y.reshape(len(y), -1)
    return _scalar_or_array(np.mean(np.abs(x2 - y2), axis=0), x.ndim)


def ccc(a, b):
    """Lin's concordance correlation coefficient (population moments), per column.

    ``2 cov(a, b) / (var(a) + var(b) + (mean(a) - mean(b))**2)``; 1 is perfect agreement,
    -1 perfect disagreement. Undefined (NaN) when both inputs are the same constant.
    A float for 1-d input, one value per column for (n, d) input.

    >>> ccc([1.0, 2.0, 3.0], [1.0, 2.0, 3.0])
    1.0
    >>> ccc([-1.0, 0.0, 1.0], [1.0, 0.0, -1.0])
    -1.0
    >>> round(ccc([1.0, 2.0, 3.0], [2.0, 3.0, 4.0]), 4)   # perfectly correlated, but shifted
    0.5714
    >>> ccc([[1, 1], [2, 3], [3, 2]], [[1, 2], [2, 3], [3, 1]]).round(4)
    array([1. , 0.5])
    """
    x, y = _pairs(a, b)
    x2 = x.reshape(len(x), -1)
    y2 = y.reshape(len(y), -1)
    mx, my = x2.mean(axis=0), y2.mean(axis=0)
    vx, vy = x2.var(axis=0), y2.var(axis=0)
    cov = np.mean((x2 - mx) * (y2 - my), axis=0)
    denom = vx + vy + (mx - my) ** 2
    out = np.divide(2 * cov, denom, out=np.full_like(cov, np.nan), where=denom > 0)
    return _scalar_or_array(out, x.ndim)


def vad_report(true, pred, names: Sequence[str] = VAD_NAMES) -> dict:
    """MAE and CCC per dimension; rows whose truth is NaN in a dimension are skipped there.

    Returns ``{name: {"mae", "ccc", "n"}}``; an undefined CCC is reported as None so the
    dict stays valid JSON.

    >>> t = [[1.0, 2.0, 3.0], [2.0, 3.0, 4.0], [float("nan")] * 3, [3.0, 3.0, 5.0]]
    >>> p = [[1.5, 2.0, 3.0], [2.0, 3.5, 4.0], [9.0, 9.0, 9.0], [3.0, 3.0, 4.0]]
    >>> r = vad_report(t, p)
    >>> r["valence"]["n"], round(r["valence"]["mae"], 4), round(r["dominance"]["ccc"], 4)
    (3, 0.1667, 0.6667)
    """
    t = np.asarray(true, dtype=np.float64)
    p = np.asarray(pred, dtype=np.float64)
    names = tuple(names)
    if t.ndim != 2 or t.shape != p.shape:
        raise ValueError(f"true and pred must both be (n, {len(names)}); "
                         f"got {t.shape} and {p.shape}")
    if t.shape[1] != len(names):
        raise ValueError(f"{t.shape[1]} columns but {len(names)} names {names}")
    if t.shape[0] == 0:
        raise ValueError("empty input: no rows to compare")
    known = np.isfinite(t)
    if not known.any():
        raise ValueError("no row has a finite ground-truth value in any dimension")
    out: dict[str, dict] = {}
    for j, name in enumerate(names):
        rows = known[:, j]
        if not rows.any():
            out[name] = {"mae": None, "ccc": None, "n": 0}
            continue
        if not np.isfinite(p[rows, j]).all():
            raise ValueError(f"predictions for {name!r} contain NaN/inf where the truth is known")
        c = ccc(t[rows, j], p[rows, j])
        out[name] = {"mae": mae(t[rows, j], p[rows, j]),
                     "ccc": None if np.isnan(c) else c,
                     "n": int(rows.sum())}
    return out


# ---------------------------------------------------------------------------- bootstrap

def _percent_metric(name: str, n_classes: int | None) -> Callable[[np.ndarray, np.ndarray], float]:
    if name == "accuracy":
        return lambda t, p: 100.0 * accuracy(t, p)
    if name == "weighted_f1":
        if n_classes is None:
            raise ValueError("metric 'weighted_f1' needs n_classes")
        return lambda t, p: 100.0 * weighted_f1(t, p, n_classes)
    raise ValueError(f"unknown metric {name!r}; pass a callable or 'accuracy'/'weighted_f1'")


def paired_bootstrap(y_true, pred_a, pred_b, metric: Callable | str, n_boot: int = 1000,
                     seed: int = 0, *, n_classes: int | None = None) -> dict:
    """Paired bootstrap over utterances: is system B better than system A?

    ``metric(y_true, y_pred) -> float``, or the name ``"accuracy"`` / ``"weighted_f1"``
    (these give percentage points; ``"weighted_f1"`` needs ``n_classes``). Each of the
    ``n_boot`` replicates resamples the same utterance indices with replacement for both
    systems. ``pred_b`` (and ``pred_a``) may hold one row of predictions per seed
    (``(seeds, n)``): that system's score is then the mean over its seeds, in every replicate. Returns ``delta`` = metric(B) - metric(A) on the full data, ``low``/``high``
    = the 2.5/97.5 percentiles of the replicate deltas, and a two-sided ``p_value`` =
    ``min(1, 2 * min(P(delta* <= 0), P(delta* >= 0)))`` with add-one smoothing.

    >>> y = [0, 1, 1, 0, 1, 0, 1, 1]
    >>> r = paired_bootstrap(y, [0, 0, 1, 1, 1, 0, 0, 1], y, "accuracy", n_boot=200)
    >>> r["delta"], r["low"] > 0, r["p_value"] < 0.05
    (37.5, True, True)
    >>> paired_bootstrap(y, y, y, "accuracy", n_boot=50)
    {'delta': 0.0, 'low': 0.0, 'high': 0.0, 'p_value': 1.0}
    >>> paired_bootstrap(y, [0, 0, 1, 1, 1, 0, 0, 1], [y, y], "accuracy", n_boot=50)["delta"]
    37.5
    >>> paired_bootstrap(y, [[0, 0, 1, 1, 1, 0, 0, 1], y], [y, y], "accuracy", n_boot=50)["delta"]
    18.75
    """
    fn = _percent_metric(metric, n_classes) if isinstance(metric, str) else metric
    t = np.asarray(y_true)
    a = np.asarray(pred_a)
    b = np.asarray(pred_b)
    n = len(t)
    if n == 0:
        raise ValueError("empty input: y_true contains no utterances")
    # either may be (seeds, n): that system is then scored as the mean over its seeds.
    as_, bs = (x if x.ndim == 2 else x[None, :] for x in (a, b))
    if as_.shape[1] != n or bs.shape[1] != n:
        raise ValueError(f"lengths differ: y_true {n}, pred_a {as_.shape[1]}, pred_b {bs.shape[1]}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1; got {n_boot}")

    def score(rows, idx):
        return float(np.mean([fn(t[idx], row[idx]) for row in rows]))

    everything = np.arange(n)
    delta = score(bs, everything) - score(as_, everything)
    rng = np.random.default_rng(seed)
    deltas = np.empty(n_boot, dtype=np.float64)
    for i in range(n_boot):
        idx = rng.integers(0, n, size=n)
        deltas[i] = score(bs, idx) - score(as_, idx)
    low, high = np.percentile(deltas, [2.5, 97.5])
    le = (np.count_nonzero(deltas <= 0) + 1) / (n_boot + 1)
    ge = (np.count_nonzero(deltas >= 0) + 1) / (n_boot + 1)
    return {"delta": delta, "low": float(low), "high": float(high),
            "p_value": float(min(1.0, 2.0 * min(le, ge)))}
