"""The official multimodal feature pickles of COGMEN/CORECT and SDT/MMGCN, read as they are.

These pickles are not in the shared data (too large for the snapshot store); point ``path``
at your own copy. Nothing is recomputed: the stored vectors become ``Utterance.features``
(float32, 1-d) under ``"text:pickle"``, ``"audio:pickle"`` and ``"visual:pickle"``.

**COGMEN / CORECT** (``IEMOCAP_features.pkl``, also DialogueGCN's): a 9-tuple
``video_ids, video_speakers, video_labels, video_text, video_audio, video_visual,
video_sentence, trainVids, test_vids``. The first seven are dicts keyed by dialogue id
holding one entry per utterance: utterance ids, speakers (``'M'``/``'F'``), label indices,
text/audio/visual vectors and transcripts.

**SDT** (and MMGCN's RoBERTa variant): a 12-tuple ``videoIDs, videoSpeakers, videoLabels,
videoText1, videoText2, videoText3, videoText4, videoAudio, videoVisual, videoSentence,
trainVid, testVid``; the four text vectors are four RoBERTa layers. They are kept as
``"text:pickle1"`` .. ``"text:pickle4"`` and their mean is ``"text:pickle"``. SDT's MELD
pickle is a 14-tuple with ``videoSentiments`` after ``videoLabels`` and one unused item at
the end; it is accepted too (sentiment index in ``meta["sentiment_index"]``). Speakers given
as one-hot vectors (MELD) become the index of the hot slot as a string (``"0"``, ``"1"``...).

**Splits**: the pickles only have train and test ids. Like COGMEN and CORECT, the first
``int(len(train_ids) * dev_fraction)`` train dialogues (in the pickle's order) form the split
``valid`` and the rest ``train`` (IEMOCAP: 120 train ids -> 12 valid, 108 train). SDT and
MMGCN select models on the test set; lantern does not, and uses this dev split for them too.
Train ids stored as a set (no order) are sorted first so the split is reproducible.

**Labels** are indices into ``label_set``: ``6way`` for IEMOCAP (hap, sad, neu, ang, exc,
fru: the DialogueGCN/COGMEN order), ``meld7`` for MELD (COSMIC's order); any name in
:data:`lantern.data.labels.LABEL_SETS` is accepted. An index outside the set is an error.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from lantern.data.io import read_pickle
from lantern.data.labels import LABEL_SETS
from lantern.data.dialogues import SPLITS, Dialogue, EmotionDataset, LabelSet, Utterance
from lantern.errors import DataError

COGMEN_FIELDS = ("video_ids", "video_speakers", "video_labels", "video_text", "video_audio",
                 "video_visual", "video_sentence", "trainVids", "test_vids")
SDT_FIELDS = ("videoIDs", "videoSpeakers", "videoLabels", "videoText1", "videoText2", "videoText3",
              "videoText4", "videoAudio", "videoVisual", "videoSentence", "trainVid", "testVid")
SDT_MELD_FIELDS = ("videoIDs", "videoSpeakers", "videoLabels", "videoSentiments", "videoText1",
                   "videoText2", "videoText3", "videoText4", "videoAudio", "videoVisual",
                   "videoSentence", "trainVid", "testVid", "unused")
_SENTIMENT_INDICES = LabelSet("sentiment", ("0", "1", "2"))


def load_cogmen_pickle(path: str | Path, label_set: str = "6way", dev_fraction: float = 0.1,
                       data_root: str | Path | None = None) -> EmotionDataset:
    """Load a COGMEN/CORECT/DialogueGCN 9-tuple feature pickle (see the module docstring)."""
    path = _resolve(path, data_root)
    parts = _unpack(path, read_pickle(path, encoding="latin1"), {9: COGMEN_FIELDS})
    layout = {"ids": "video_ids", "speakers": "video_speakers", "labels": "video_labels",
              "sentences": "video_sentence", "train": "trainVids", "test": "test_vids",
              "features": {"text:pickle": "video_text", "audio:pickle": "video_audio",
                           "visual:pickle": "video_visual"}}
    return _build(path, parts, layout, _label_set(path, label_set), dev_fraction, "cogmen")


def load_sdt_pickle(path: str | Path, label_set: str = "6way", dev_fraction: float = 0.1,
                    data_root: str | Path | None = None) -> EmotionDataset:
    """Load an SDT/MMGCN 12-tuple (or SDT MELD 14-tuple) feature pickle (see the module docstring)."""
    path = _resolve(path, data_root)
    parts = _unpack(path, read_pickle(path, encoding="latin1"), {12: SDT_FIELDS, 14: SDT_MELD_FIELDS})
    layout = {"ids": "videoIDs", "speakers": "videoSpeakers", "labels": "videoLabels",
              "sentences": "videoSentence", "train": "trainVid", "test": "testVid",
              "features": {f"text:pickle{i}": f"videoText{i}" for i in range(1, 5)}
              | {"audio:pickle": "videoAudio", "visual:pickle": "videoVisual"},
              "mean": ("text:pickle", [f"text:pickle{i}" for i in range(1, 5)])}
    if "videoSentiments" in parts:
        layout["sentiments"] = "videoSentiments"
    fmt = "sdt-meld" if "videoSentiments" in parts else "sdt"
    return _build(path, parts, layout, _label_set(path, label_set), dev_fraction, fmt)


def _resolve(path: str | Path, data_root: str | Path | None) -> Path:
    path = Path(path)
    if data_root is not None and not path.is_absolute():
        path = Path(data_root) / path
    return path


def _label_set(path: Path, name: str) -> LabelSet:
    if name not in LABEL_SETS:
        raise DataError(f"unknown label set {name!r}; use one of {sorted(LABEL_SETS)}", path=path)
    return LABEL_SETS[name]


def _unpack(path: Path, obj: Any, layouts: dict[int, tuple[str, ...]]) -> dict[str, Any]:
    expected = " or ".join(f"a {n}-tuple ({', '.join(names)})" for n, names in layouts.items())
    if not isinstance(obj, (tuple, list)):
        raise DataError(f"expected {expected}, found a {type(obj).__name__}", path=path)
    if len(obj) not in layouts:
        raise DataError(f"expected {expected}, found {len(obj)} items", path=path)
    return dict(zip(layouts[len(obj)], obj))


def _ids(path: Path, parts: dict, field: str) -> list:
    value = parts[field]
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=str)
    if isinstance(value, Mapping) or isinstance(value, (str, bytes)):
        raise DataError(f"expected a list of dialogue ids, found a {type(value).__name__}",
                        path=path, field=field)
    try:
        return list(value)
    except TypeError:
        raise DataError(f"expected a list of dialogue ids, found a {type(value).__name__}",
                        path=path, field=field) from None


def _entry(path: Path, parts: dict, field: str, did: Any) -> Any:
    table = parts[field]
    if not isinstance(table, Mapping):
        raise DataError(f"expected a dict keyed by dialogue id, found a {type(table).__name__}",
                        path=path, field=field)
    if did not in table:
        raise DataError(f"dialogue {did!r} is in the split ids but missing here", path=path, field=field)
    value = table[did]
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__"):
        raise DataError(f"dialogue {did!r}: expected one entry per utterance, found a "
                        f"{type(value).__name__}", path=path, field=field)
    return value


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return " ".join(value)  # token lists
    return str(value)


def _speaker(path: Path, field: str, did: Any, i: int, value: Any) -> str:
    if isinstance(value, (str, bytes)):
        name = _text(value).strip()
    else:
        try:
            vec = np.asarray(value, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            vec = np.zeros(0)
        if vec.size == 0 or not np.any(vec > 0):
            raise DataError(f"dialogue {did!r}, utterance {i}: speaker {value!r} is neither a name "
                            f"nor a one-hot vector", path=path, field=field)
        name = str(int(np.argmax(vec)))
    if not name:
        raise DataError(f"dialogue {did!r}, utterance {i}: empty speaker", path=path, field=field)
    return name


def _label(path: Path, field: str, did: Any, i: int, value: Any, labels: LabelSet) -> int:
    try:
        number = float(np.asarray(value).reshape(()))
    except (TypeError, ValueError):
        number = float("nan")
    if not number.is_integer() or not 0 <= number < labels.size:
        hint = (" (a MELD pickle needs label_set='meld7')"
                if labels.name in ("6way", "4way-merge", "4way-drop") and number == 6 else "")
        raise DataError(f"dialogue {did!r}, utterance {i}: unknown label index {value!r}; label set "
                        f"{labels.name!r} has indices 0..{labels.size - 1}{hint}", path=path, field=field)
    return int(number)


def _vector(path: Path, field: str, did: Any, i: int, value: Any) -> np.ndarray:
    try:
        vec = np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError):
        raise DataError(f"dialogue {did!r}, utterance {i}: not a numeric vector "
                        f"({type(value).__name__})", path=path, field=field) from None
    if vec.ndim == 2 and 1 in vec.shape:
        vec = vec.reshape(-1)
    if vec.ndim != 1 or vec.size == 0:
        raise DataError(f"dialogue {did!r}, utterance {i}: expected a 1-d vector, found shape "
                        f"{vec.shape}", path=path, field=field)
    return vec


def _build(path: Path, parts: dict, layout: dict, labels: LabelSet, dev_fraction: float,
           fmt: str) -> EmotionDataset:
    if not 0 <= dev_fraction < 1:
        raise DataError(f"dev_fraction must be in [0, 1), got {dev_fraction}", path=path)
    train_ids = _ids(path, parts, layout["train"])
    test_ids = _ids(path, parts, layout["test"])
    if not train_ids and not test_ids:
        raise DataError("the train and test id lists are both empty", path=path, field=layout["train"])
    overlap = set(train_ids) & set(test_ids)
    if overlap:
        raise DataError(f"{len(overlap)} dialogue(s) are both train and test, e.g. "
                        f"{sorted(overlap, key=str)[0]!r}", path=path, field=layout["test"])
    n_dev = int(len(train_ids) * dev_fraction)
    split_ids = {"train": train_ids[n_dev:], "valid": train_ids[:n_dev], "test": test_ids}
    per_utt = {"ids": layout["ids"], "speakers": layout["speakers"],
               "sentences": layout["sentences"], **layout["features"]}
    if "sentiments" in layout:
        per_utt["sentiments"] = layout["sentiments"]
    seen: set[str] = set()
    splits: dict[str, list[Dialogue]] = {}
    for split in SPLITS:
        splits[split] = []
        for did in split_ids[split]:
            label_field = layout["labels"]
            raw_labels = _entry(path, parts, label_field, did)
            n = len(raw_labels)
            if n == 0:
                raise DataError(f"dialogue {did!r} has no utterances", path=path, field=label_field)
            columns = {}
            for key, field in per_utt.items():
                column = _entry(path, parts, field, did)
                if len(column) != n:
                    raise DataError(f"dialogue {did!r}: {len(column)} entries here but {n} in "
                                    f"{label_field}", path=path, field=field)
                columns[key] = column
            utterances = []
            for i in range(n):
                raw_id = columns["ids"][i]
                uid = raw_id.strip() if isinstance(raw_id, str) and raw_id.strip() else f"{did}_{_text(raw_id)}"
                if uid in seen:
                    raise DataError(f"dialogue {did!r}: duplicate utterance id {uid!r}", path=path,
                                    field=layout["ids"])
                seen.add(uid)
                features = {name: _vector(path, field, did, i, columns[name][i])
                            for name, field in layout["features"].items()}
                if "mean" in layout:
                    name, members = layout["mean"]
                    dims = {features[m].shape for m in members}
                    if len(dims) != 1:
                        raise DataError(f"dialogue {did!r}, utterance {i}: the text layers have "
                                        f"different sizes {sorted(dims)}", path=path,
                                        field=layout["features"][members[0]])
                    features[name] = np.mean([features[m] for m in members], axis=0, dtype=np.float32)
                meta: dict = {"index": i}
                if "sentiments" in columns:
                    meta["sentiment_index"] = _label(path, layout["sentiments"], did, i,
                                                     columns["sentiments"][i], _SENTIMENT_INDICES)
                utterances.append(Utterance(
                    id=uid, speaker=_speaker(path, layout["speakers"], did, i, columns["speakers"][i]),
                    text=_text(columns["sentences"][i]),
                    label=_label(path, label_field, did, i, raw_labels[i], labels),
                    features=features, meta=meta))
            splits[split].append(Dialogue(str(did), utterances, split))
    known = set(train_ids) | set(test_ids)
    table = parts[layout["labels"]]
    unassigned = [d for d in table if d not in known] if isinstance(table, Mapping) else []
    return EmotionDataset(f"{fmt}-pickle", labels, splits, source={
        "file": str(path), "format": fmt, "label_set": labels.name, "dev_fraction": dev_fraction,
        "n_dev": n_dev, "valid_ids": [str(d) for d in split_ids["valid"]],
        "unassigned_dialogues": len(unassigned)})
