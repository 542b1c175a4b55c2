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

``speaker``, ``text``, ``label`` and the media paths must be strings (in JSON Lines a number
there is refused: it is more often a shifted column than a name); ``dialogue_id`` and
``utterance_id`` may also be JSON integers, read as their decimal digits.

The suffix picks the reader: ``.jsonl`` and ``.json`` (JSON Lines: one object per line; lines
end at ``\n`` only, so U+2028 or U+0085 inside a string stay part of it) or ``.csv`` (header
row, quote-aware). Every utterance goes into the split ``test``; the
``train`` and ``valid`` splits are empty. Dialogues keep the order in which they first
appear and utterances keep file order. Empty CSV cells and JSON ``null`` mean "not given"
(except ``dialogue_id``: if the column is there, every row needs one).
Every problem raises a :class:`~lantern.errors.DataError` naming the file, line and field.

``max_text_chars`` and ``max_utterances`` bound one utterance's text and the whole file (None:
no bound; ``lantern predict`` passes its defaults), so that what a run costs in memory and
time follows from them and not from the size of the file. ``media_paths=False`` refuses
``audio``/``video``/``image`` paths before they touch the file system (the web app: a path
inside an uploaded file names a file on the server, not one the user sent).

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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from lantern.data.io import read_csv_rows, read_text, require_file
from lantern.data.labels import LABEL_SETS
from lantern.data.dialogues import SPLITS, VAD_NAMES, Dialogue, EmotionDataset, LabelSet, Utterance
from lantern.errors import DataError

REQUIRED = ("speaker", "text")
OPTIONAL = ("dialogue_id", "utterance_id", "label", *VAD_NAMES, "audio", "video", "image",
            "start", "end")
MEDIA = ("audio", "video", "image")
DEFAULT_LABEL_SET = "6way"
JSONL_SUFFIXES = (".jsonl", ".json")
CSV_SUFFIXES = (".csv",)
_KEEP_BLANK = (*REQUIRED, "dialogue_id")
#: A line is one flat utterance; deeper nesting (only possible in extra keys) is refused
#: rather than left to the JSON parser's recursion limit.
MAX_JSON_DEPTH = 32


def load_conversation(path: str | Path, label_set: str | None = None,
                      data_root: str | Path | None = None, *, max_text_chars: int | None = None,
                      max_utterances: int | None = None,
                      media_paths: bool = True) -> EmotionDataset:
    """Load a conversation file; the reader is chosen by suffix (``.jsonl``/``.json`` or ``.csv``).

    ``label_set`` names a set in :data:`lantern.data.labels.LABEL_SETS`; when None, ``6way``
    is used (labels are checked against it only when the file has labels; an unlabelled
    file still needs a class list for predictions). ``data_root``, when given, is the folder
    a relative ``path`` is taken from (otherwise the current directory). The bounds and
    ``media_paths`` are described in the module docstring.
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
    dialogues = _build(path, records, labels, _Bounds(max_text_chars, max_utterances, media_paths))
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
    # "\n" only: str.splitlines() also splits at U+2028, U+0085 and other separators that
    # JSON allows raw inside strings (json.dumps(ensure_ascii=False) and JavaScript write them).
    for line, raw in enumerate(text.split("\n"), start=1):
        raw = raw.removesuffix("\r")
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except RecursionError:
            raise DataError(f"JSON nested too deeply (at most {MAX_JSON_DEPTH} levels)",
                            path=path, line=line) from None
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
        if _nesting_depth(obj) > MAX_JSON_DEPTH:
            raise DataError(f"JSON nested too deeply (at most {MAX_JSON_DEPTH} levels)",
                            path=path, line=line)
        yield line, {k: v for k, v in obj.items() if v is not None}


def _nesting_depth(obj: Any) -> int:
    """How deep lists and dicts nest in ``obj`` (a flat object is 1), without recursion.

    >>> _nesting_depth({"a": [1, {"b": []}]}), _nesting_depth("x")
    (4, 0)
    """
    deepest, stack = 0, [(obj, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            node = list(node.values())
        elif not isinstance(node, list):
            continue
        deepest = max(deepest, depth)
        if depth <= MAX_JSON_DEPTH:   # deep enough to refuse: no need to walk further
            stack.extend((child, depth + 1) for child in node)
    return deepest


def _string(rec: dict, key: str, *, path: Path, line: int, required: bool = False,
            integers: bool = False) -> str | None:
    """A string field; ``integers`` also takes a JSON integer (ids), as its decimal digits."""
    if key not in rec:
        if required:
            raise DataError(f"missing required field {key!r}", path=path, line=line, field=key)
        return None
    value = rec[key]
    if isinstance(value, str):
        return value
    if integers and isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise DataError(f"expected a string, found {type(value).__name__} {str(value)[:80]!r}",
                    path=path, line=line, field=key)


@dataclass(frozen=True)
class _Bounds:
    max_text_chars: int | None = None
    max_utterances: int | None = None
    media_paths: bool = True


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
           labels: LabelSet, bounds: _Bounds = _Bounds()) -> list[Dialogue]:
    folder = path.parent
    dialogues: dict[str, Dialogue] = {}
    seen: dict[str, int] = {}
    for line, rec in records:
        where = {"path": path, "line": line}
        if bounds.max_utterances is not None and len(seen) >= bounds.max_utterances:
            raise DataError(f"more than {bounds.max_utterances:,} utterances; split the file "
                            f"(the bound keeps a run's memory and time predictable)", **where)
        speaker = _string(rec, "speaker", required=True, **where).strip()
        if not speaker:
            raise DataError("empty speaker", field="speaker", **where)
        text = _string(rec, "text", required=True, **where)
        if bounds.max_text_chars is not None and len(text) > bounds.max_text_chars:
            raise DataError(f"text of {len(text):,} characters; at most {bounds.max_text_chars:,} "
                            f"per utterance (split long turns: the text model reads only the "
                            f"first 256 word pieces, about 1,000 characters)", field="text", **where)
        media, written = {}, {}   # resolved paths, and the paths as the file wrote them
        for kind in MEDIA:
            value = _string(rec, kind, **where)
            if value is not None and value.strip():
                if not bounds.media_paths:
                    # Checked before any use of the path: it must not reach the file system.
                    raise DataError(f"{kind} paths are not accepted here: this file may only "
                                    f"carry text (a path would name a file on this machine, "
                                    f"not one you sent)", field=kind, **where)
                written[kind] = value.strip()
                media[kind] = str((folder / written[kind]).resolve())
        if not text.strip() and not media:
            raise DataError("empty text (allowed only with an audio, video or image path)",
                            field="text", **where)
        if "dialogue_id" in rec:
            dialogue_id = _string(rec, "dialogue_id", integers=True, **where).strip()
            if not dialogue_id:
                raise DataError("empty dialogue id", field="dialogue_id", **where)
        else:
            dialogue_id = path.stem
        dialogue = dialogues.setdefault(dialogue_id, Dialogue(dialogue_id, [], "test"))
        if "utterance_id" in rec:
            uid = _string(rec, "utterance_id", integers=True, **where).strip()
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
            meta={"line": line, **({"media_given": written} if written else {}),
                  **({"extra": extra} if extra else {})}))
    if not dialogues:
        raise DataError("no utterances in the file", path=path, line=1)
    return list(dialogues.values())
