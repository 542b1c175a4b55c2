"""What a merger sees: :class:`FusionInputs`, and the answer records it is built from.

Inputs for one split are numpy arrays over n utterances, t fields per utterance (the
receptive fields the utterance lies in) and K classes: the vanilla model's probabilities
and dimension scores, and the LLM's answer from each field with where the utterance sits
in it. :meth:`FusionInputs.from_records` builds them from the vanilla prediction rows and
the per-(utterance, field) answer records (:func:`answer_record`, grouped by
:func:`group_answer_rows`).

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
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from lantern.errors import DataError

__all__ = ["FusionInputs", "answer_record", "group_answer_rows", "rescale_drifting_rows"]

_SUM_TOLERANCE = 1e-3   # probability rows may drift this much from 1 (rounding) before we object


def _as_probs(a: Any, name: str, ndim: int) -> np.ndarray:
    """Float64 array of probability rows (last axis), validated and renormalised exactly."""
    a = np.asarray(a, dtype=np.float64)
    if a.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-d; got shape {a.shape}")
    if not np.isfinite(a).all() or (a < 0).any():
        raise ValueError(f"{name} holds negative or non-finite probabilities")
    s = a.sum(axis=-1, keepdims=True)
    if a.size and np.abs(s - 1.0).max() > _SUM_TOLERANCE:
        raise ValueError(f"{name} rows must sum to 1 (within {_SUM_TOLERANCE}); "
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
    def from_records(cls, vanilla_rows: Iterable[Mapping[str, Any]],
                     answers_by_utterance: Mapping[Any, Sequence[Mapping[str, Any]]],
                     classes: Sequence[str] | None = None) -> "FusionInputs":
        """Build inputs from vanilla prediction rows and per-utterance LLM answer records.

        ``vanilla_rows``: the rows of :mod:`lantern.training.predictions` (``dialogue_id``,
        ``utterance_id``, ``label``, ``probs`` {class: p}, ``vad`` [v, a, d]).
        ``answers_by_utterance``: for each utterance, keyed by ``(dialogue_id,
        utterance_id)`` (or by ``utterance_id`` alone when that is unique), the list of
        its t answer records (see :func:`answer_record`)::

            {"field_id": 3, "relative_position": 0.5, "n_before": 1, "n_after": 1,
             "clipped": false, "probs": {"hap": 0.1, ...}, "valid": true}

        Answers are ordered by ``field_id``. ``classes`` defaults to the key order of the
        first row's ``probs``. Missing utterances, classes or keys, and utterances with a
        different number of answers, raise :class:`lantern.errors.DataError`.
        """
        rows = list(vanilla_rows)
        if not rows:
            raise DataError("no vanilla prediction rows", field="vanilla_rows")
        classes = tuple(classes) if classes is not None else tuple(rows[0]["probs"])
        k = len(classes)
        columns: dict[str, list] = {name: [] for name in (
            "vanilla", "vad", "labels", "dialogue_ids", "utterance_ids", *_ANSWER_COLUMNS)}
        t = None
        for row in rows:
            did, uid = str(row.get("dialogue_id", "")), str(row["utterance_id"])
            where = f"utterance {did}/{uid}"
            columns["vanilla"].append(_probs_in_class_order(row, classes, where))
            v = row.get("vad")
            columns["vad"].append([float(x) for x in v] if v is not None else [math.nan] * 3)
            columns["labels"].append(_label_index(row.get("label"), classes, where))
            columns["dialogue_ids"].append(did)
            columns["utterance_ids"].append(uid)
            recs = answers_by_utterance.get((did, uid))
            if recs is None:
                recs = answers_by_utterance.get(uid)
            if not recs:
                raise DataError(f"{where}: no LLM answers", field="answers")
            if t is None:
                t = len(recs)
            elif len(recs) != t:
                raise DataError(f"{where}: {len(recs)} LLM answers but earlier utterances "
                                f"have {t}; every utterance must lie in exactly t fields",
                                field="answers")
            for name, values in _answer_columns(recs, classes, where).items():
                columns[name].append(values)
        try:
            return cls(vanilla=np.array(columns["vanilla"]).reshape(-1, k),
                       vad=np.array(columns["vad"]),
                       answers=np.array(columns["answers"]).reshape(len(rows), -1, k),
                       **{name: np.array(columns[name]) for name in _ANSWER_COLUMNS[1:]},
                       labels=np.array(columns["labels"]), classes=classes,
                       dialogue_ids=tuple(columns["dialogue_ids"]),
                       utterance_ids=tuple(columns["utterance_ids"]))
        except ValueError as e:
            raise DataError(str(e), field="answers") from e


#: the per-(utterance, field) columns of :class:`FusionInputs` an answer record fills
_ANSWER_COLUMNS = ("answers", "answer_valid", "position", "n_before", "n_after", "clipped")


def _probs_in_class_order(d: Mapping[str, Any], classes: Sequence[str], where: str) -> list[float]:
    """``d["probs"]`` as a list in ``classes`` order, renormalised exactly."""
    p = d.get("probs")
    if not isinstance(p, Mapping):
        raise DataError(f"{where}: 'probs' must be a {{class: probability}} object",
                        field="probs")
    missing = [c for c in classes if c not in p]
    if missing:
        raise DataError(f"{where}: probs lack classes {missing}", field="probs")
    vals = [float(p[c]) for c in classes]
    total = sum(vals)
    if not all(math.isfinite(v) and v >= 0 for v in vals) or total <= 0:
        raise DataError(f"{where}: probs must be non-negative with a positive sum",
                        field="probs")
    return [v / total for v in vals]  # the LLM stage renormalises too; be exact


def _label_index(label: Any, classes: Sequence[str], where: str) -> int:
    if label is not None and label not in classes:
        raise DataError(f"{where}: unknown label {label!r}; classes {list(classes)}",
                        field="label")
    return classes.index(label) if label is not None else -1


def _answer_columns(recs: Sequence[Mapping[str, Any]], classes: Sequence[str],
                    where: str) -> dict[str, list]:
    """One utterance's t answer records as the per-field values of each answer column."""
    try:
        recs = sorted(recs, key=lambda r: int(r["field_id"]))
        return {"answers": [_probs_in_class_order(r, classes, f"{where}, field {r['field_id']}")
                            for r in recs],
                "position": [float(r["relative_position"]) for r in recs],
                "n_before": [int(r["n_before"]) for r in recs],
                "n_after": [int(r["n_after"]) for r in recs],
                "clipped": [bool(r["clipped"]) for r in recs],
                "answer_valid": [bool(r.get("valid", True)) for r in recs]}
    except KeyError as e:
        raise DataError(f"{where}: an answer record lacks {e.args[0]!r}",
                        field=str(e.args[0])) from None


def answer_record(membership: Any, probs: Mapping[str, float], valid: bool = True,
                  utterance_id: str | None = None) -> dict[str, Any]:
    """The per-answer record :meth:`FusionInputs.from_records` reads, from a
    :class:`lantern.receptive_fields.Membership` and the LLM's probabilities for the
    utterance in that field (``valid=False`` when they are the vanilla substitute)."""
    rec = membership.as_dict()
    rec.update(probs={c: float(p) for c, p in probs.items()}, valid=bool(valid))
    if utterance_id is not None:
        rec["utterance_id"] = utterance_id
    return rec


def group_answer_rows(rows: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], list[dict]]:
    """Group flat answer records (each with ``dialogue_id`` and ``utterance_id``, e.g. one
    JSONL line per (utterance, field)) into the mapping ``from_records`` takes."""
    out: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        out.setdefault((str(r.get("dialogue_id", "")), str(r["utterance_id"])), []).append(dict(r))
    return out
