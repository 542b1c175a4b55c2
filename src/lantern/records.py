"""The records that flow between the stages, each with one typed home and its JSONL I/O.

* :class:`PredictionRow`: one utterance as the vanilla model saw it (its class probabilities
  and dimension scores). Written by training and ``lantern predict``, read by refine, fusion
  and evaluation (``predictions/<split>.jsonl``; the text-free ``vanilla-<split>.jsonl.gz``
  pinned beside committed LLM answers).
* :class:`AnswerRecord`: the LLM's probabilities for one utterance inside one of its receptive
  fields, with where it sat in that field. Made by refine from an answer file, read by fusion.

Probabilities are fractions in [0, 1] summing to 1 (the unit convention of every record and
result file; reports print percents). :func:`check_probs` is the one validator.

>>> row = PredictionRow("d1", "u1", 0, {"neu": 0.75, "hap": 0.25}, label="neu", speaker="A")
>>> PredictionRow.from_json(row.to_json()) == row
True
>>> row.top
'neu'
"""

from __future__ import annotations

import gzip
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from lantern.errors import DataError
from lantern.paths import atomic_write_bytes, atomic_write_text

#: a probability vector whose sum is this far from 1 is an error, not rounding
SUM_TOLERANCE = 1e-3
#: what the pinned vanilla file keeps of a prediction row (no text or speaker: corpus licences)
PINNED_KEYS = ("dialogue_id", "utterance_id", "turn", "label", "probs", "vad")


def check_probs(probs: Mapping[str, Any], classes: Sequence[str] | None = None, *,
                where: str = "", path: str | Path | None = None, line: int | None = None,
                renormalise: bool = True, multi_label: bool = False) -> dict[str, float]:
    """``{class: probability}`` as floats, in ``classes`` order (default: the mapping's).

    Values must be finite and non-negative with a positive sum. With ``renormalise`` the
    vector is divided by its sum (exact fractions for fusion); without it, a sum further than
    :data:`SUM_TOLERANCE` from 1 is an error. With ``multi_label`` (each class's own sigmoid)
    every value must lie in [0, 1] and the sum is free.
    """
    prefix = f"{where}: " if where else ""
    if not isinstance(probs, Mapping) or (multi_label and not probs):
        raise DataError(f"{prefix}'probs' must be a {{class: probability}} object",
                        path=path, line=line, field="probs")
    classes = tuple(probs) if classes is None else tuple(classes)
    missing = [c for c in classes if c not in probs]
    if missing:
        raise DataError(f"{prefix}probs lack classes {missing}", path=path, line=line, field="probs")
    try:
        values = [float(probs[c]) for c in classes]
    except (TypeError, ValueError):
        raise DataError(f"{prefix}probs must be numbers", path=path, line=line, field="probs") from None
    if multi_label:
        if not all(math.isfinite(v) and 0.0 <= v <= 1.0 for v in values):
            raise DataError(f"{prefix}multi-label probs must each lie in [0, 1]", path=path, line=line,
                            field="probs")
        return dict(zip(classes, values))
    total = sum(values)
    if not all(math.isfinite(v) and v >= 0 for v in values) or total <= 0:
        raise DataError(f"{prefix}probs must be non-negative with a positive sum",
                        path=path, line=line, field="probs")
    if renormalise:
        return {c: v / total for c, v in zip(classes, values)}
    if abs(total - 1.0) > SUM_TOLERANCE:
        raise DataError(f"{prefix}probs sum to {total:.6f}, not 1", path=path, line=line, field="probs")
    return dict(zip(classes, values))


def _triple(value: Any, name: str, path, line) -> tuple[float, float, float] | None:
    if value is None:
        return None
    try:
        out = tuple(float(x) for x in value)
    except (TypeError, ValueError):
        out = ()
    if len(out) != 3:
        raise DataError(f"{name} must be [valence, arousal, dominance]", path=path, line=line, field=name)
    return out  # type: ignore[return-value]


@dataclass(frozen=True)
class PredictionRow:
    """One utterance's vanilla prediction: ``probs`` (fractions summing to 1) and ``vad``
    (valence, arousal, dominance on the dataset's scale); ``label``/``vad_true`` are the
    gold annotations when known. ``speaker``/``text`` are absent in pinned vanilla files.
    ``gold_label_set`` names the label set ``label`` belongs to when it is another corpus's
    (a model run on a corpus it was not trained for); None: the model's own classes.
    ``multi_label``: ``probs`` are each class's own sigmoid (they need not sum to 1) and
    ``labels`` the gold classes of a multi-label target (EMOTIC, BoLD)."""

    dialogue_id: str
    utterance_id: str
    turn: int
    probs: dict[str, float]
    vad: tuple[float, float, float] | None = None
    label: str | None = None
    vad_true: tuple[float, float, float] | None = None
    speaker: str | None = None
    text: str | None = None
    gold_label_set: str | None = None
    multi_label: bool = False
    labels: tuple[str, ...] | None = None

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(self.probs)

    @property
    def top(self) -> str:
        """The vanilla model's label (highest probability; ties go to the earlier class)."""
        return max(self.probs, key=self.probs.__getitem__)

    @property
    def key(self) -> tuple[str, str]:
        return (self.dialogue_id, self.utterance_id)

    @property
    def has_own_label(self) -> bool:
        """A gold label among the model's classes (one that fitting and scoring can use)."""
        return self.label is not None and self.gold_label_set is None

    def to_json(self) -> dict[str, Any]:
        """The JSONL object (key order as written since the first release;
        ``gold_label_set`` only where it is set)."""
        out = {"dialogue_id": self.dialogue_id, "utterance_id": self.utterance_id,
               "turn": self.turn, "speaker": self.speaker, "text": self.text, "label": self.label,
               "vad_true": list(self.vad_true) if self.vad_true is not None else None,
               "probs": dict(self.probs), "vad": list(self.vad) if self.vad is not None else None}
        if self.gold_label_set is not None:
            out["gold_label_set"] = self.gold_label_set
        if self.multi_label:
            out["multi_label"] = True
            out["labels"] = list(self.labels) if self.labels is not None else None
        return out

    def pinned_json(self) -> dict[str, Any]:
        full = self.to_json()
        return {k: full[k] for k in (*PINNED_KEYS, "gold_label_set") if k in full}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any], *, path: str | Path | None = None,
                  line: int | None = None) -> "PredictionRow":
        for key in ("dialogue_id", "utterance_id", "probs"):
            if key not in obj:
                raise DataError(f"a prediction row needs {key!r}", path=path, line=line, field=key)
        where = f"utterance {obj['dialogue_id']}/{obj['utterance_id']}"
        multi = bool(obj.get("multi_label"))
        probs = check_probs(obj["probs"], path=path, line=line, renormalise=False, where=where,
                            multi_label=multi)
        label, gold_set = obj.get("label"), obj.get("gold_label_set")
        gold_classes = _label_set_classes(gold_set, path, line) if gold_set is not None else probs
        if label is not None and label not in gold_classes:
            raise DataError(f"unknown label {label!r}; classes {list(gold_classes)}", path=path,
                            line=line, field="label")
        return cls(str(obj["dialogue_id"]), str(obj["utterance_id"]), int(obj.get("turn") or 0),
                   {c: float(obj["probs"][c]) for c in probs},
                   _triple(obj.get("vad"), "vad", path, line), label,
                   _triple(obj.get("vad_true"), "vad_true", path, line),
                   obj.get("speaker"), obj.get("text"), gold_set, multi,
                   _gold_labels(obj.get("labels"), probs, path, line) if multi else None)

    def with_pinned(self, pinned: "PredictionRow") -> "PredictionRow":
        """This row's text and speaker with a pinned row's prediction, label and turn."""
        return PredictionRow(self.dialogue_id, self.utterance_id, pinned.turn, dict(pinned.probs),
                             pinned.vad, pinned.label, self.vad_true, self.speaker, self.text,
                             pinned.gold_label_set)


def _gold_labels(labels: Any, classes, path, line) -> tuple[str, ...] | None:
    if labels is None:
        return None
    if not isinstance(labels, list) or any(c not in classes for c in labels):
        raise DataError(f"labels must be a list of classes among {list(classes)}", path=path,
                        line=line, field="labels")
    return tuple(labels)


def _label_set_classes(name: Any, path, line) -> tuple[str, ...]:
    from lantern.data.labels import LABEL_SETS

    if name not in LABEL_SETS:
        raise DataError(f"unknown gold_label_set {name!r}; known: {', '.join(sorted(LABEL_SETS))}",
                        path=path, line=line, field="gold_label_set")
    return LABEL_SETS[name].classes


def write_predictions(path: str | Path, rows: Iterable[PredictionRow]) -> Path:
    """``predictions/<split>.jsonl``, written atomically."""
    lines = [json.dumps(r.to_json(), ensure_ascii=False) for r in rows]
    atomic_write_text(path, "\n".join(lines) + "\n")
    return Path(path)


def read_predictions(path: str | Path) -> list[PredictionRow]:
    from lantern.data.io import read_jsonl

    return [PredictionRow.from_json(obj, path=path, line=n) for n, obj in read_jsonl(path)]


def write_pinned(path: str | Path, rows: Iterable[PredictionRow]) -> None:
    """The text-free gzipped copy committed beside LLM answers (same rows, same bytes)."""
    lines = [json.dumps(r.pinned_json(), separators=(",", ":")) for r in rows]
    # mtime=0: the same predictions give the same bytes (no spurious diffs when committed)
    atomic_write_bytes(path, gzip.compress(("\n".join(lines) + "\n").encode("utf-8"), mtime=0))


def read_pinned(path: str | Path) -> list[PredictionRow]:
    try:
        text = gzip.decompress(Path(path).read_bytes()).decode("utf-8")
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise DataError(f"not a gzipped JSONL file ({exc})", path=path) from None
    rows = []
    for n, raw in enumerate(text.split("\n"), start=1):
        if raw.strip():
            try:
                obj = json.loads(raw)
            except ValueError as exc:
                raise DataError(f"not JSON ({exc})", path=path, line=n) from None
            rows.append(PredictionRow.from_json(obj, path=path, line=n))
    return rows


def group_by_dialogue(rows: Iterable[PredictionRow]) -> list[tuple[str, list[PredictionRow]]]:
    """Rows grouped by dialogue in first-appearance order, each sorted by turn."""
    groups: dict[str, list[PredictionRow]] = {}
    for r in rows:
        groups.setdefault(r.dialogue_id, []).append(r)
    return [(d, sorted(rs, key=lambda r: r.turn)) for d, rs in groups.items()]


@dataclass(frozen=True)
class AnswerRecord:
    """The LLM's probabilities for one utterance in one receptive field (fractions summing
    to 1; ``valid=False`` when they are the vanilla substitute for a failed answer), and where
    the utterance sat in that field (see :class:`lantern.receptive_fields.Membership`).
    ``position`` is its index inside the field, ``utterance_index`` inside the dialogue."""

    dialogue_id: str
    utterance_id: str
    field_id: int
    probs: dict[str, float]
    relative_position: float
    n_before: int
    n_after: int
    clipped: bool
    valid: bool = True
    position: int = 0
    utterance_index: int = 0
    mass: float | None = None     # log-probability answers: the label words' share of the slot

    @classmethod
    def from_membership(cls, membership: Any, utterance_id: str, probs: Mapping[str, float],
                        valid: bool = True, mass: float | None = None) -> "AnswerRecord":
        m = membership
        return cls(str(m.dialogue_id), str(utterance_id), int(m.field_id),
                   {c: float(p) for c, p in probs.items()}, float(m.relative_position),
                   int(m.n_before), int(m.n_after), bool(m.clipped), bool(valid), int(m.position),
                   int(m.utterance_index), mass)

    @property
    def key(self) -> tuple[str, str]:
        return (self.dialogue_id, self.utterance_id)


AnswersByUtterance = dict[tuple[str, str], list[AnswerRecord]]


def group_answers(records: Iterable[AnswerRecord]) -> AnswersByUtterance:
    """Answer records grouped by (dialogue id, utterance id), in arrival order."""
    out: AnswersByUtterance = {}
    for r in records:
        out.setdefault(r.key, []).append(r)
    return out


__all__ = ["AnswerRecord", "AnswersByUtterance", "PINNED_KEYS", "PredictionRow", "SUM_TOLERANCE",
           "check_probs", "group_answers", "group_by_dialogue", "read_pinned",
           "read_predictions", "write_pinned", "write_predictions"]
