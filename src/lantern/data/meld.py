"""MELD (Friends multi-party dialogues, 7 emotions) from the official declare-lab CSVs.

Reads ``MELD_declare-lab/MELD/{train,dev,test}_sent_emo.csv`` under the data root; ``dev``
becomes the split ``valid``. Ids follow MERBench: dialogue ``train_dia12`` / ``val_dia3`` /
``test_dia0``, utterance ``train_dia12_utt3``. Utterances are sorted by ``Utterance_ID``
inside a dialogue (the ids have gaps in 76 dialogues: the official release dropped some
clips), dialogues by ``Dialogue_ID`` (train has no dialogue 60). Start/end times are
seconds within the Friends episode. MELD has no valence/arousal/dominance, so ``vad`` is
None; the sentiment label is kept in ``meta["sentiment"]``.

With ``verify=True`` every dialogue is cross-checked against the COSMIC pickle (dialogue
keys, utterance counts, emotion and sentiment labels, speaker turns, transcripts) and the
MERBench utterance ids and labels.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from lantern.data.io import read_csv_rows, read_pickle, require_file
from lantern.data.labels import MELD_7
from lantern.data.dialogues import SPLITS, Dialogue, EmotionDataset, Utterance
from lantern.errors import DataError
from lantern.paths import data_root as default_root

MELD_DIR = "MELD_declare-lab/MELD"
# split -> (file name, id prefix used by MERBench)
FILES = {"train": ("train_sent_emo.csv", "train"), "valid": ("dev_sent_emo.csv", "val"),
         "test": ("test_sent_emo.csv", "test")}
COLUMNS = ("Sr No.", "Utterance", "Speaker", "Emotion", "Sentiment", "Dialogue_ID",
           "Utterance_ID", "Season", "Episode", "StartTime", "EndTime")
SENTIMENTS = ("neutral", "positive", "negative")  # COSMIC's sentiment index order
COSMIC_PICKLE = "conv-emotion_COSMIC/meld/meld.pkl"
# COSMIC numbers dialogues 0..1038 (train), 1039+k (dev dialogue k), 1153+k (test dialogue k).
COSMIC_OFFSET = {"train": 0, "valid": 1039, "test": 1153}
MERBENCH_LABELS = "MERTools_MERBench/meld-process/label.npz"
MERBENCH_CLASSES = ("anger", "joy", "sadness", "neutral", "disgust", "fear", "surprise")
LABEL_SETS = {"meld7": MELD_7}

_C1 = re.compile("[\x80-\x9f]")
_CLOCK = re.compile(r"(\d+):(\d{1,2}):(\d{1,2})[,.](\d{1,3})")


def repair_mojibake(text: str) -> str:
    """Undo the two encoding accidents found in MELD-derived text, conservatively.

    1. UTF-8 bytes that were decoded as cp1252 or latin-1 (``'â€™'`` or ``'â\\x80\\x99'``
       for ``'’'``): the whole string is re-encoded with that codec and decoded as UTF-8,
       but only if both steps succeed; otherwise the string is left alone.
    2. cp1252 bytes decoded as latin-1, which leaves C1 control characters (``'\\x92'`` for
       ``'’'``, as in the COSMIC pickle): each such character is decoded as cp1252
       (the five bytes cp1252 leaves undefined stay as they are).

    ASCII text is returned unchanged, and so is correct text such as ``'café'``.

    >>> repair_mojibake("company\\u00e2\\u20ac\\u2122s"), repair_mojibake("you\\u00e2\\x80\\x99re")
    ('company’s', 'you’re')
    >>> repair_mojibake("must\\x92ve"), repair_mojibake("café"), repair_mojibake("plain")
    ('must’ve', 'café', 'plain')
    """
    if text.isascii():
        return text
    for codec in ("cp1252", "latin-1"):
        try:
            text = text.encode(codec).decode("utf-8")
            break
        except UnicodeError:
            continue
    if _C1.search(text):
        text = _C1.sub(_c1_to_cp1252, text)
    return text


def _c1_to_cp1252(match: re.Match) -> str:
    try:
        return bytes([ord(match.group())]).decode("cp1252")
    except UnicodeDecodeError:
        return match.group()


def parse_clock(value: str, *, path, line, field) -> float:
    """Seconds from an ``hh:mm:ss,ms`` (MELD) or ``hh:mm:ss.ms`` (EmoryNLP) time stamp.

    >>> parse_clock("00:16:16,059", path="f.csv", line=2, field="StartTime")
    976.059
    """
    m = _CLOCK.fullmatch(value.strip())
    if not m:
        raise DataError(f"not a time stamp hh:mm:ss,ms: {value!r}", path=path, line=line, field=field)
    h, mi, s, ms = m.groups()
    return round(int(h) * 3600 + int(mi) * 60 + int(s) + int(ms.ljust(3, "0")) / 1000, 3)


def parse_int(value: str, *, path, line, field) -> int:
    try:
        return int(value.strip())
    except ValueError:
        raise DataError(f"not an integer: {value!r}", path=path, line=line, field=field) from None


def _read_split(path: Path, split: str, prefix: str, labels) -> list[Dialogue]:
    by_dialogue: dict[int, list[tuple[int, Utterance]]] = {}
    seen: dict[tuple[int, int], int] = {}
    for line, row in read_csv_rows(path, COLUMNS):
        d = parse_int(row["Dialogue_ID"], path=path, line=line, field="Dialogue_ID")
        u = parse_int(row["Utterance_ID"], path=path, line=line, field="Utterance_ID")
        if (d, u) in seen:
            raise DataError(f"duplicate utterance (Dialogue_ID {d}, Utterance_ID {u}); "
                            f"first on line {seen[d, u]}", path=path, line=line, field="Utterance_ID")
        seen[d, u] = line
        emotion = row["Emotion"].strip()
        if emotion not in labels.classes:
            raise DataError(f"unknown label {emotion!r}; expected one of {labels.classes}",
                            path=path, line=line, field="Emotion")
        sentiment = row["Sentiment"].strip()
        if sentiment not in SENTIMENTS:
            raise DataError(f"unknown sentiment {sentiment!r}; expected one of {SENTIMENTS}",
                            path=path, line=line, field="Sentiment")
        speaker = repair_mojibake(row["Speaker"]).strip()
        if not speaker:
            raise DataError("empty speaker", path=path, line=line, field="Speaker")
        start = parse_clock(row["StartTime"], path=path, line=line, field="StartTime")
        end = parse_clock(row["EndTime"], path=path, line=line, field="EndTime")
        utt = Utterance(
            id=f"{prefix}_dia{d}_utt{u}", speaker=speaker, text=repair_mojibake(row["Utterance"]),
            label=labels.index(emotion), vad=None, start=start, end=end,
            meta={"sentiment": sentiment, "dialogue_number": d, "utterance_number": u,
                  "season": parse_int(row["Season"], path=path, line=line, field="Season"),
                  "episode": parse_int(row["Episode"], path=path, line=line, field="Episode"),
                  "line": line},
        )
        by_dialogue.setdefault(d, []).append((u, utt))
    if not by_dialogue:
        raise DataError("no utterances (only a header row)", path=path, line=2)
    return [Dialogue(f"{prefix}_dia{d}", [utt for _, utt in sorted(items, key=lambda x: x[0])], split)
            for d, items in sorted(by_dialogue.items())]


def load_meld(data_root: str | Path | None = None, label_set: str = "meld7",
              verify: bool = False) -> EmotionDataset:
    """Load MELD with the 7 emotion classes (``meld7``: COSMIC's index order)."""
    if label_set not in LABEL_SETS:
        raise DataError(f"unknown MELD label set {label_set!r}; use one of {sorted(LABEL_SETS)}")
    labels = LABEL_SETS[label_set]
    root = Path(default_root(data_root))
    splits: dict[str, list[Dialogue]] = {}
    files = {}
    for split in SPLITS:
        name, prefix = FILES[split]
        path = require_file(root / MELD_DIR / name, f"MELD {split} file")
        files[split] = str(path)
        splits[split] = _read_split(path, split, prefix, labels)
    ds = EmotionDataset("meld", labels, splits, source={"files": files, "label_set": label_set})
    if verify:
        ds.source["verified"] = verify_against_sources(ds, root)
    return ds


def _normalise_text(text: str) -> str:
    return repair_mojibake(text).replace("\xa0", " ").strip()


def verify_against_sources(ds: EmotionDataset, root: Path) -> dict:
    """Cross-check a loaded MELD dataset with the COSMIC pickle and the MERBench labels."""
    pkl_path = root / COSMIC_PICKLE
    speakers, emotions, sentiments, sentences, train_ids, test_ids, valid_ids = read_pickle(pkl_path)[:7]
    cosmic_split = {"train": list(train_ids), "valid": list(valid_ids), "test": list(test_ids)}
    n_utts = 0
    for split in SPLITS:
        ours = ds.dialogues(split)
        if len(ours) != len(cosmic_split[split]):
            raise DataError(f"{split}: {len(ours)} dialogues here, {len(cosmic_split[split])} in COSMIC",
                            path=pkl_path)
        keys = set(cosmic_split[split])
        for dialogue in ours:
            key = dialogue.utterances[0].meta["dialogue_number"] + COSMIC_OFFSET[split]
            if key not in keys:
                raise DataError(f"{dialogue.id}: COSMIC key {key} is not in its {split} ids", path=pkl_path)
            if len(dialogue) != len(emotions[key]):
                raise DataError(f"{dialogue.id}: {len(dialogue)} utterances here, "
                                f"{len(emotions[key])} in COSMIC", path=pkl_path)
            if [u.label for u in dialogue] != [int(x) for x in emotions[key]]:
                raise DataError(f"{dialogue.id}: emotion labels differ from COSMIC", path=pkl_path)
            if [SENTIMENTS.index(u.meta["sentiment"]) for u in dialogue] != [int(x) for x in sentiments[key]]:
                raise DataError(f"{dialogue.id}: sentiment labels differ from COSMIC", path=pkl_path)
            slots: dict[str, int] = {}
            ours_slots = [slots.setdefault(u.speaker, len(slots)) for u in dialogue]
            if ours_slots != [int(np.argmax(v)) for v in speakers[key]]:
                raise DataError(f"{dialogue.id}: speaker turns differ from COSMIC", path=pkl_path)
            if [_normalise_text(u.text) for u in dialogue] != [_normalise_text(s) for s in sentences[key]]:
                raise DataError(f"{dialogue.id}: transcripts differ from COSMIC", path=pkl_path)
            n_utts += len(dialogue)
    npz_path = require_file(root / MERBENCH_LABELS, "MERBench label file")
    with np.load(npz_path, allow_pickle=True) as archive:
        corpora = {split: archive[key].item() for split, key in
                   (("train", "train_corpus"), ("valid", "val_corpus"), ("test", "test_corpus"))}
    for split, corpus in corpora.items():
        utts = ds.utterances(split)
        if len(corpus) != len(utts):
            raise DataError(f"{split}: {len(utts)} utterances here, {len(corpus)} in MERBench", path=npz_path)
        for u in utts:
            if u.id not in corpus:
                raise DataError(f"utterance {u.id} missing from MERBench ids", path=npz_path)
            if MERBENCH_CLASSES[int(corpus[u.id]["emo"])] != ds.label_set.classes[u.label]:
                raise DataError(f"utterance {u.id}: label {ds.label_set.classes[u.label]} here, "
                                f"{MERBENCH_CLASSES[int(corpus[u.id]['emo'])]} in MERBench", path=npz_path)
    return {"dialogues": sum(len(ds.dialogues(s)) for s in SPLITS), "utterances": n_utts}
