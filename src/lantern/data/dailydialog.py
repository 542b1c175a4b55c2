"""DailyDialog (7 emotions) from the RECCON emotion-cause release.

Reads ``conv-emotion_RECCON/dailydialog_{train,valid,test}.json`` under the data root: the
only DailyDialog data available here (1,106 of the 13,118 DailyDialog dialogues, with
RECCON's splits). Each file maps a dialogue id (``tr_4466``: original DailyDialog split and
index) to a list holding one list of turns. Note RECCON's valid and test files also contain
``tr_`` dialogues, so the id prefix is *not* the split; it is kept in ``meta["source_split"]``.
Utterance ids are ``<dialogue>_t<turn>`` (turns count from 1). There is no VAD.

The emotion cause annotations are kept in ``meta``: ``cause_evidence`` (turn numbers, or
``'b'`` for a cause outside the dialogue), ``cause_spans``, ``cause_types``, and the rare
``explanation`` and ``flag``.

A few labels are misspelt in the release; :data:`LABEL_FIXES` maps them to the DailyDialog
classes (15 utterances: train 12, test 3), keeping the original in ``meta["raw_emotion"]``.
Any other label is an error.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from lantern.data.io import read_text, require_file
from lantern.data.labels import DAILYDIALOG_7
from lantern.data.dialogues import SPLITS, Dialogue, EmotionDataset, Utterance
from lantern.errors import DataError
from lantern.paths import data_root as default_root

RECCON_DIR = "conv-emotion_RECCON"
FILES = {s: f"dailydialog_{s}.json" for s in SPLITS}
LABEL_SETS = {"dailydialog7": DAILYDIALOG_7}

#: Misspelt labels in the RECCON DailyDialog files -> DailyDialog class. ``excited`` is
#: read as happiness (DailyDialog's "happiness" covers joy and excitement).
LABEL_FIXES = {
    "sad": "sadness",
    "happy": "happiness",
    "happines": "happiness",
    "excited": "happiness",
    "angry": "anger",
    "surprised": "surprise",
}

_META_KEYS = {"expanded emotion cause evidence": "cause_evidence",
              "expanded emotion cause span": "cause_spans",
              "type": "cause_types", "explanation": "explanation", "flag": "flag"}


def normalise_label(raw: str, classes: tuple[str, ...] = DAILYDIALOG_7.classes) -> str | None:
    """The class a raw RECCON label stands for, or None if it is unknown.

    >>> normalise_label("happines"), normalise_label("fear"), normalise_label("bored")
    ('happiness', 'fear', None)
    """
    label = raw.strip()
    label = LABEL_FIXES.get(label, label)
    return label if label in classes else None


def _line_at(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


class _Locator:
    """Finds the line of a dialogue (and of a value inside it) in the pretty-printed JSON."""

    def __init__(self, text: str):
        self.text = text

    def dialogue(self, did: str) -> tuple[int | None, int]:
        m = re.search(re.escape(json.dumps(did)) + r"\s*:", self.text)
        return (_line_at(self.text, m.start()), m.start()) if m else (None, 0)

    def value(self, start: int, key: str, value) -> int | None:
        try:
            needle = re.escape(json.dumps(key)) + r"\s*:\s*" + re.escape(json.dumps(value))
        except (TypeError, ValueError):
            return None
        m = re.compile(needle).search(self.text, start)
        return _line_at(self.text, m.start()) if m else None

    def error(self, path: Path, did: str, message: str, field: str | None,
              key: str | None = None, value=None) -> DataError:
        """A DataError at the dialogue's line (or at ``"key": value`` inside it, if found).

        Lines are looked up only when something is wrong: the files are large.
        """
        line, offset = self.dialogue(did)
        if key is not None and line is not None:
            line = self.value(offset, key, value) or line
        return DataError(f"dialogue {did}: {message}", path=path, line=line, field=field)


def _read_split(path: Path, split: str, labels) -> list[Dialogue]:
    text = read_text(path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"invalid JSON: {exc.msg} (column {exc.colno})", path=path, line=exc.lineno) from None
    if not isinstance(data, dict):
        raise DataError(f"expected a JSON object mapping dialogue ids to turns, found "
                        f"{type(data).__name__}", path=path, line=1)
    if not data:
        raise DataError("no dialogues", path=path, line=1)
    where = _Locator(text)
    dialogues = []
    for did, value in data.items():

        def fail(message, field, key=None, val=None, did=did):
            return where.error(path, did, message, field, key, val)

        if not (isinstance(value, list) and len(value) == 1 and isinstance(value[0], list)):
            raise fail("expected a list holding one list of turns", did)
        turns = value[0]
        if not turns:
            raise fail("empty dialogue (no turns)", did)
        utterances = []
        for position, turn in enumerate(turns, start=1):
            if not isinstance(turn, dict):
                raise fail(f"turn {position}: expected an object, found {type(turn).__name__}", did)
            for key, kind in (("turn", int), ("speaker", str), ("utterance", str), ("emotion", str)):
                if key not in turn:
                    raise fail(f"turn {position}: missing {key!r}", key)
                if not isinstance(turn[key], kind) or isinstance(turn[key], bool):
                    raise fail(f"turn {position}: {key!r} must be {kind.__name__}, found {turn[key]!r}",
                               key, key, turn[key])
            if turn["turn"] != position:
                raise fail(f"turn {turn['turn']} found at position {position}", "turn", "turn", turn["turn"])
            raw = turn["emotion"]
            label = normalise_label(raw, labels.classes)
            if label is None:
                raise fail(f"turn {position}: unknown label {raw!r}; expected one of {labels.classes} "
                           f"(or a known misspelling: {sorted(LABEL_FIXES)})", "emotion", "emotion", raw)
            meta = {"turn": position, "source_split": did.split("_", 1)[0]}
            meta.update({short: turn[key] for key, short in _META_KEYS.items() if key in turn})
            if label != raw:
                meta["raw_emotion"] = raw
            utterances.append(Utterance(id=f"{did}_t{position}", speaker=turn["speaker"].strip(),
                                        text=turn["utterance"], label=labels.index(label), meta=meta))
        dialogues.append(Dialogue(did, utterances, split))
    return dialogues


def load_dailydialog(data_root: str | Path | None = None,
                     label_set: str = "dailydialog7") -> EmotionDataset:
    """Load the RECCON DailyDialog subset (train 834, valid 47, test 225 dialogues)."""
    if label_set not in LABEL_SETS:
        raise DataError(f"unknown DailyDialog label set {label_set!r}; use one of {sorted(LABEL_SETS)}")
    labels = LABEL_SETS[label_set]
    root = Path(default_root(data_root))
    splits, files, where = {}, {}, {}
    for split in SPLITS:
        path = require_file(root / RECCON_DIR / FILES[split], f"DailyDialog {split} file")
        files[split] = str(path)
        splits[split] = _read_split(path, split, labels)
        for d in splits[split]:
            if d.id in where:
                raise DataError(f"dialogue {d.id} is in both the {where[d.id]} and {split} files",
                                path=path, field=d.id)
            where[d.id] = split
    return EmotionDataset("dailydialog", labels, splits,
                          source={"files": files, "label_set": label_set,
                                  "label_fixes": dict(LABEL_FIXES)})
