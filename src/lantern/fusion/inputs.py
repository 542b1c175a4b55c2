"""What a merger sees: :class:`FusionInputs`, built from :mod:`lantern.records`.

Inputs for one split are numpy arrays over n utterances, t fields per utterance (the
receptive fields the utterance lies in) and K classes: the vanilla model's probabilities
and dimension scores, and the LLM's answer from each field with where the utterance sits
in it. :meth:`FusionInputs.from_records` builds them from the vanilla prediction rows and
the per-(utterance, field) :class:`~lantern.records.AnswerRecord` s grouped by utterance.

>>> import numpy as np
>>> x = FusionInputs(vanilla=np.array([[0.6, 0.4]]), vad=np.array([[3.0, 3.0, 3.0]]),
...                  answers=np.array([[[0.2, 0.8], [0.4, 0.6]]]),
...                  position=np.array([[1.0, 0.0]]), n_before=np.array([[1, 0]]),
...                  n_after=np.array([[0, 1]]), clipped=np.array([[False, False]]))
>>> (x.n, x.t, x.n_classes)
(1, 2, 2)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields as dataclass_fields
from typing import Any, Iterable, Sequence

import numpy as np

from lantern.errors import DataError
from lantern.records import (SUM_TOLERANCE, AnswerRecord, AnswersByUtterance, PredictionRow,
                             check_probs)

__all__ = ["FusionInputs", "rescale_drifting_rows"]



def _as_probs(a: Any, name: str, ndim: int) -> np.ndarray:
    """Float64 array of probability rows (last axis), validated and renormalised exactly."""
    a = np.asarray(a, dtype=np.float64)
    if a.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-d; got shape {a.shape}")
    if not np.isfinite(a).all() or (a < 0).any():
        raise ValueError(f"{name} holds negative or non-finite probabilities")
    s = a.sum(axis=-1, keepdims=True)
    if a.size and np.abs(s - 1.0).max() > SUM_TOLERANCE:
        raise ValueError(f"{name} rows must sum to 1 (within {SUM_TOLERANCE}); "
                         f"worst row sums to {float(s.flat[np.abs(s - 1).argmax()]):.4f}")
    return rescale_drifting_rows(a)



def rescale_drifting_rows(a: np.ndarray) -> np.ndarray:
    """Rows of ``a`` divided by their sum, where that sum is off 1 by more than rounding."""
    # Rescale only rows whose sum is off by more than rounding, so that normalising is
    # idempotent: validated inputs, their subsets and vanilla-only outputs keep exact values.
    s = a.sum(axis=-1, keepdims=True)
    return np.where(np.abs(s - 1.0) > 1e-12, a / np.where(s > 0, s, 1.0), a)


@dataclass
class FusionInputs:
    """Everything a merger sees for one split: n utterances, t fields each, K classes.

    vanilla (n, K): vanilla class probabilities p_i. vad (n, 3): vanilla dimension scores
    d_i on the dataset's scale (None: unknown; the mergers normalise them). answers
    (n, t, K): the LLM's adjusted probabilities q_{i,r} from each of the t receptive fields
    of the utterance, ordered by field id. answer_valid (n, t): False where the LLM failed
    and the vanilla probabilities were substituted (still a usable answer). position,
    n_before, n_after, clipped (n, t): the utterance's relative position in [0, 1] in that
    field, the context before/after it there, and whether the field was clipped.
    labels (n,): gold class index, -1 where unknown (None: all unknown).
    classes, dialogue_ids, utterance_ids: optional names (length K, n, n).
    """

    vanilla: np.ndarray
    vad: np.ndarray | None
    answers: np.ndarray
    position: np.ndarray
    n_before: np.ndarray
    n_after: np.ndarray
    clipped: np.ndarray
    answer_valid: np.ndarray | None = None
    labels: np.ndarray | None = None
    classes: tuple[str, ...] = ()
    dialogue_ids: tuple[str, ...] = ()
    utterance_ids: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self.vanilla = _as_probs(self.vanilla, "vanilla", 2)
        n, k = self.vanilla.shape
        self.answers = _as_probs(self.answers, "answers", 3)
        if self.answers.shape[0] != n or self.answers.shape[2] != k:
            raise ValueError(f"answers must be (n={n}, t, K={k}); got {self.answers.shape}")
        t = self.answers.shape[1]
        if t < 1:
            raise ValueError("every utterance needs at least one LLM answer (t >= 1)")
        if self.vad is None:
            self.vad = np.full((n, 3), np.nan)
        self.vad = np.asarray(self.vad, dtype=np.float64)
        if self.vad.shape != (n, 3):
            raise ValueError(f"vad must be (n={n}, 3); got {self.vad.shape}")
        if self.answer_valid is None:
            self.answer_valid = np.ones((n, t), dtype=bool)
        for name in ("position", "n_before", "n_after", "clipped", "answer_valid"):
            a = np.asarray(getattr(self, name))
            if a.shape != (n, t):
                raise ValueError(f"{name} must be (n={n}, t={t}); got {a.shape}")
            dtype = bool if name in ("clipped", "answer_valid") else np.float64
            setattr(self, name, a.astype(dtype))
        if not np.isfinite(self.position).all() or (self.position < 0).any() \
                or (self.position > 1).any():
            raise ValueError("position (relative position in the field) must lie in [0, 1]")
        if (self.n_before < 0).any() or (self.n_after < 0).any():
            raise ValueError("n_before and n_after count utterances and cannot be negative")
        labels = np.full(n, -1) if self.labels is None else np.asarray(self.labels)
        if labels.shape != (n,):
            raise ValueError(f"labels must be (n={n},); got {labels.shape}")
        self.labels = labels.astype(np.int64)
        if ((self.labels < -1) | (self.labels >= k)).any():
            raise ValueError(f"labels must be class indices in range({k}) or -1 (unknown)")
        self.classes = tuple(self.classes)
        if self.classes and len(self.classes) != k:
            raise ValueError(f"{len(self.classes)} class names for {k} classes")
        for name in ("dialogue_ids", "utterance_ids"):
            ids = tuple(getattr(self, name))
            if ids and len(ids) != n:
                raise ValueError(f"{name} has {len(ids)} entries for {n} utterances")
            setattr(self, name, ids)

    @property
    def n(self) -> int:
        return self.vanilla.shape[0]

    @property
    def t(self) -> int:
        return self.answers.shape[1]

    @property
    def n_classes(self) -> int:
        return self.vanilla.shape[1]

    def subset(self, index: Sequence[int] | np.ndarray) -> "FusionInputs":
        """The utterances at ``index`` (integer positions), as new inputs."""
        idx = np.asarray(index, dtype=np.int64)
        kw = {}
        for f in dataclass_fields(self):
            v = getattr(self, f.name)
            if f.name == "classes":
                kw[f.name] = v
            elif isinstance(v, tuple):
                kw[f.name] = tuple(v[i] for i in idx) if v else ()
            else:
                kw[f.name] = v[idx]
        return FusionInputs(**kw)

    @classmethod
    def from_records(cls, vanilla_rows: Iterable[PredictionRow], answers: AnswersByUtterance,
                     classes: Sequence[str] | None = None) -> "FusionInputs":
        """Inputs from :class:`~lantern.records.PredictionRow` s and, for each of them under
        its ``(dialogue_id, utterance_id)``, its t :class:`~lantern.records.AnswerRecord` s
        (ordered here by field id). ``classes`` defaults to the first row's class order.
        A missing utterance or class, or a different number of answers, is a
        :class:`lantern.errors.DataError`."""
        rows = list(vanilla_rows)
        if not rows:
            raise DataError("no vanilla prediction rows", field="vanilla_rows")
        classes = tuple(classes) if classes is not None else rows[0].classes
        columns: dict[str, list] = {name: [] for name in (
            "vanilla", "vad", "labels", "dialogue_ids", "utterance_ids", *_ANSWER_COLUMNS)}
        t = None
        for row in rows:
            where = f"utterance {row.dialogue_id}/{row.utterance_id}"
            columns["vanilla"].append(list(check_probs(row.probs, classes, where=where).values()))
            columns["vad"].append(list(row.vad) if row.vad is not None else [math.nan] * 3)
            # another corpus's gold labels (gold_label_set) are not the model's: unknown here
            columns["labels"].append(_label_index(row.label if row.gold_label_set is None else None,
                                                  classes, where))
            columns["dialogue_ids"].append(row.dialogue_id)
            columns["utterance_ids"].append(row.utterance_id)
            recs = answers.get(row.key)
            if not recs:
                raise DataError(f"{where}: no LLM answers", field="answers")
            t = len(recs) if t is None else t
            if len(recs) != t:
                raise DataError(f"{where}: {len(recs)} LLM answers but earlier utterances "
                                f"have {t}; every utterance must lie in exactly t fields",
                                field="answers")
            for name, values in _answer_columns(recs, classes, where).items():
                columns[name].append(values)
        try:
            return cls(vanilla=np.array(columns["vanilla"]), vad=np.array(columns["vad"]),
                       answers=np.array(columns["answers"]),
                       **{name: np.array(columns[name]) for name in _ANSWER_COLUMNS[1:]},
                       labels=np.array(columns["labels"]), classes=classes,
                       dialogue_ids=tuple(columns["dialogue_ids"]),
                       utterance_ids=tuple(columns["utterance_ids"]))
        except ValueError as e:
            raise DataError(str(e), field="answers") from e


#: the per-(utterance, field) columns of :class:`FusionInputs` an answer record fills
_ANSWER_COLUMNS = ("answers", "answer_valid", "position", "n_before", "n_after", "clipped")


def _label_index(label: Any, classes: Sequence[str], where: str) -> int:
    if label is not None and label not in classes:
        raise DataError(f"{where}: unknown label {label!r}; classes {list(classes)}",
                        field="label")
    return classes.index(label) if label is not None else -1


def _answer_columns(recs: Sequence[AnswerRecord], classes: Sequence[str], where: str) -> dict[str, list]:
    """One utterance's t answer records as the per-field values of each answer column."""
    recs = sorted(recs, key=lambda r: r.field_id)
    return {"answers": [list(check_probs(r.probs, classes, where=f"{where}, field {r.field_id}").values())
                        for r in recs],
            "position": [r.relative_position for r in recs],
            "n_before": [r.n_before for r in recs],
            "n_after": [r.n_after for r in recs],
            "clipped": [r.clipped for r in recs],
            "answer_valid": [r.valid for r in recs]}
