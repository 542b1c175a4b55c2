"""Your own conversations: JSON Lines or CSV, one utterance per line or row.

The format is documented in ``docs/conversation-format.md``. In short, the fields are

========================  =========  ==================================================
field                     required   meaning
========================  =========  ==================================================
``speaker``               yes        who speaks (any non-empty string)
``text``                  yes        the transcript (may be empty only if a media path is given)
``dialogue_id``           no         groups utterances; default: the file name without suffix
``utterance_id``          no         unique in the file; default ``<dialogue_id>_<n>`` (n from 0)
``label``                 no         a class of the label set (default ``6way``)
``valence``, ``arousal``,
``dominance``             no         numbers, all three or none
``audio``, ``video``,
``image``                 no         media paths, relative to the file's folder
``start``, ``end``        no         seconds
========================  =========  ==================================================

The suffix picks the reader: ``.jsonl`` and ``.json`` (JSON Lines: one object per line) or
``.csv`` (header row, quote-aware). Every utterance goes into the split ``test``; the
``train`` and ``valid`` splits are empty. Dialogues keep the order in which they first
appear and utterances keep file order. Empty CSV cells and JSON ``null`` mean "not given"
(except ``dialogue_id``: if the column is there, every row needs one).
Every problem raises a :class:`~lantern.errors.DataError` naming the file, line and field.

>>> import pathlib, tempfile
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> _ = (folder / "talk.csv").write_text("speaker,text,label\\nAna,I got the job!,hap\\nBo,Oh.,neu\\n")
>>> ds = load_conversation(folder / "talk.csv")
>>> [(u.id, u.speaker, ds.label_set.classes[u.label]) for u in ds.utterances("test")]
[('talk_0', 'Ana', 'hap'), ('talk_1', 'Bo', 'neu')]
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Iterator

from lantern.data.io import read_csv_rows, read_text, require_file
from lantern.data.labels import LABEL_SETS
from lantern.data.records import SPLITS, VAD_NAMES, Dialogue, EmotionDataset, LabelSet, Utterance
from lantern.errors import DataError

REQUIRED = ("speaker", "text")
OPTIONAL = ("dialogue_id", "utterance_id", "label", *VAD_NAMES, "audio", "video", "image",
            "start", "end")
MEDIA = ("audio", "video", "image")
DEFAULT_LABEL_SET = "6way"
JSONL_SUFFIXES = (".jsonl", ".json")
CSV_SUFFIXES = (".csv",)
_KEEP_BLANK = (*REQUIRED, "dialogue_id")


def load_conversation(path: str | Path, label_set: str | None = None,
                      data_root: str | Path | None = None) -> EmotionDataset:
    """Load a conversation file; the reader is chosen by suffix (``.jsonl``/``.json`` or ``.csv``).

    ``label_set`` names a set in :data:`lantern.data.labels.LABEL_SETS`; when None, ``6way``
    is used (labels are checked against it only when the file has labels; an unlabelled
    file still needs a class list for predictions). ``data_root``, when given, is the folder
    a relative ``path`` is taken from (otherwise the current directory).
    """
    path = Path(path)
    if data_root is not None and not path.is_absolute():
        path = Path(data_root) / path
    name = label_set or DEFAULT_LABEL_SET
    if name not in LABEL_SETS:
        raise DataError(f"unknown label set {name!r}; use one of {sorted(LABEL_SETS)}", path=path)
    labels = LABEL_SETS[name]
    suffix = path.suffix.lower()
    if suffix in JSONL_SUFFIXES:
        records = _jsonl_records(path)
    elif suffix in CSV_SUFFIXES:
        records = _csv_records(path)
    else:
        raise DataError(f"unsupported file type {path.suffix!r}: use .jsonl, .json (JSON Lines) "
                        f"or .csv", path=path)
    dialogues = _build(path, records, labels)
    return EmotionDataset(
        "conversation", labels, {s: (dialogues if s == "test" else []) for s in SPLITS},
        source={"file": str(path), "label_set": name, "format": suffix.lstrip(".")})


def _check_not_empty(path: Path) -> str:
    require_file(path, "conversation file")
    text = read_text(path)
    if text.startswith("\ufeff"):
        text = text[1:]
    if not text.strip():
        raise DataError("empty file: expected utterances", path=path, line=1)
    return text


def _csv_records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    _check_not_empty(path)
    for line, row in read_csv_rows(path, REQUIRED):
        # An empty cell means "not given", like a missing key in JSON Lines, except in the
        # required columns and in dialogue_id (a blank there is an error, not the default).
        yield line, {k: v for k, v in row.items() if v.strip() != "" or k in _KEEP_BLANK}


def _jsonl_records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    text = _check_not_empty(path)
    for line, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as exc:
            hint = (" (the file looks like one JSON array; write one object per line instead)"
                    if line == 1 and raw.lstrip().startswith("[") else "")
            raise DataError(f"invalid JSON: {exc.msg} (column {exc.colno}){hint}",
                            path=path, line=line) from None
        if not isinstance(obj, dict):
            hint = (" (the file looks like one JSON array; write one object per line instead)"
                    if line == 1 and isinstance(obj, list) else "")
            raise DataError(f"each line must be a JSON object, found {type(obj).__name__}{hint}",
                            path=path, line=line)
        yield line, {k: v for k, v in obj.items() if v is not None}


def _string(rec: dict, key: str, *, path: Path, line: int, required: bool = False) -> str | None:
    if key not in rec:
        if required:
            raise DataError(f"missing required field {key!r}", path=path, line=line, field=key)
        return None
    value = rec[key]
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise DataError(f"expected a string, found {type(value).__name__} {value!r}",
                        path=path, line=line, field=key)
    return str(value)


def _number(rec: dict, key: str, *, path: Path, line: int) -> float | None:
    if key not in rec:
        return None
    value = rec[key]
    if isinstance(value, bool):
        raise DataError(f"not a number: {value!r}", path=path, line=line, field=key)
    try:
        number = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        raise DataError(f"not a number: {value!r}", path=path, line=line, field=key) from None
    if not math.isfinite(number):
        raise DataError(f"not a finite number: {value!r}", path=path, line=line, field=key)
    return number


def _label(rec: dict, labels: LabelSet, *, path: Path, line: int) -> int | None:
    value = _string(rec, "label", path=path, line=line)
    if value is None:
        return None
    value = value.strip()
    if value in labels.classes:
        return labels.index(value)
    folded = [c for c in labels.classes if c.lower() == value.lower()]
    if len(folded) == 1:
        return labels.index(folded[0])
    raise DataError(f"unknown label {value!r}; label set {labels.name!r} has {list(labels.classes)}",
                    path=path, line=line, field="label")


def _build(path: Path, records: Iterator[tuple[int, dict[str, Any]]],
           labels: LabelSet) -> list[Dialogue]:
    folder = path.parent
    dialogues: dict[str, Dialogue] = {}
    seen: dict[str, int] = {}
    for line, rec in records:
        where = {"path": path, "line": line}
        speaker = _string(rec, "speaker", required=True, **where).strip()
        if not speaker:
            raise DataError("empty speaker", field="speaker", **where)
        text = _string(rec, "text", required=True, **where)
        media = {}
        for kind in MEDIA:
            value = _string(rec, kind, **where)
            if value is not None and value.strip():
                media[kind] = str((folder / value.strip()).resolve())
        if not text.strip() and not media:
            raise DataError("empty text (allowed only with an audio, video or image path)",
                            field="text", **where)
        if "dialogue_id" in rec:
            dialogue_id = _string(rec, "dialogue_id", **where).strip()
            if not dialogue_id:
                raise DataError("empty dialogue id", field="dialogue_id", **where)
        else:
            dialogue_id = path.stem
        dialogue = dialogues.setdefault(dialogue_id, Dialogue(dialogue_id, [], "test"))
        if "utterance_id" in rec:
            uid = _string(rec, "utterance_id", **where).strip()
            if not uid:
                raise DataError("empty utterance id", field="utterance_id", **where)
        else:
            uid = f"{dialogue_id}_{len(dialogue.utterances)}"
        if uid in seen:
            raise DataError(f"duplicate utterance id {uid!r} (first on line {seen[uid]})",
                            field="utterance_id", **where)
        seen[uid] = line
        vad = [_number(rec, k, **where) for k in VAD_NAMES]
        given = [k for k, v in zip(VAD_NAMES, vad) if v is not None]
        if given and len(given) < 3:
            missing = [k for k in VAD_NAMES if k not in given]
            raise DataError(f"give valence, arousal and dominance together or not at all "
                            f"(found {given}, missing {missing})", field=missing[0], **where)
        start, end = _number(rec, "start", **where), _number(rec, "end", **where)
        if start is not None and end is not None and end < start:
            raise DataError(f"end {end} is before start {start}", field="end", **where)
        extra = {k: v for k, v in rec.items() if k not in REQUIRED and k not in OPTIONAL}
        dialogue.utterances.append(Utterance(
            id=uid, speaker=speaker, text=text, label=_label(rec, labels, **where),
            vad=tuple(vad) if given else None, media=media, start=start, end=end,  # type: ignore[arg-type]
            meta={"line": line, **({"extra": extra} if extra else {})}))
    if not dialogues:
        raise DataError("no utterances in the file", path=path, line=1)
    return list(dialogues.values())
