"""EmoryNLP (Friends scenes, 7 emotions) from the declare-lab CSVs.

Reads ``MELD_declare-lab/emorynlp/emorynlp_{train,dev,test}_final.csv`` under the data root;
``dev`` becomes the split ``valid``. A dialogue is one scene, (Season, Episode, Scene_ID),
with the id ``s1_e2_c3``; utterance ids add the ``Utterance_ID``: ``s1_e2_c3_u4``.
Utterances are sorted by ``Utterance_ID`` (the ids often start at 2 and have gaps: the
scene descriptions and some turns are not in the release). The ``Speaker`` column is a
Python list literal (``"['Monica Geller']"``); several speakers (61 utterances) are joined
with ``" & "`` and the list is kept in ``meta["speakers"]``. There is no VAD.

With ``verify=True`` the scenes, labels and transcripts are cross-checked against the COSMIC
pickle (keys ``season_episode_scene``).
"""

from __future__ import annotations

import ast
from pathlib import Path

from lantern.data.io import read_csv_rows, read_pickle, require_file
from lantern.data.labels import EMORYNLP_7
from lantern.data.meld import parse_clock, parse_int
from lantern.data.dialogues import SPLITS, Dialogue, EmotionDataset, Utterance
from lantern.errors import DataError
from lantern.paths import data_root as default_root

EMORYNLP_DIR = "MELD_declare-lab/emorynlp"
FILES = {"train": "emorynlp_train_final.csv", "valid": "emorynlp_dev_final.csv",
         "test": "emorynlp_test_final.csv"}
COLUMNS = ("Utterance", "Speaker", "Emotion", "Scene_ID", "Utterance_ID", "Season", "Episode",
           "Start_Time", "End_Time")
COSMIC_PICKLE = "conv-emotion_COSMIC/emorynlp/emorynlp.pkl"
LABEL_SETS = {"emorynlp7": EMORYNLP_7}


def parse_speakers(value: str, *, path=None, line=None, field="Speaker") -> list[str]:
    """The names in a Python-list speaker cell, parsed safely with :func:`ast.literal_eval`.

    >>> parse_speakers("['Monica Geller', 'Phoebe Buffay']")
    ['Monica Geller', 'Phoebe Buffay']
    """
    try:
        names = ast.literal_eval(value.strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        raise DataError(f"not a Python list of names: {value!r}", path=path, line=line,
                        field=field) from None
    if (not isinstance(names, (list, tuple)) or not names
            or not all(isinstance(n, str) and n.strip() for n in names)):
        raise DataError(f"expected a non-empty list of non-empty names, found {value!r}",
                        path=path, line=line, field=field)
    return [n.strip() for n in names]


def _read_split(path: Path, split: str, labels) -> list[Dialogue]:
    dialogues: dict[tuple[int, int, int], list[tuple[int, Utterance]]] = {}
    seen: dict[tuple[int, int, int, int], int] = {}
    for line, row in read_csv_rows(path, COLUMNS):
        season, episode, scene, number = (
            parse_int(row[c], path=path, line=line, field=c)
            for c in ("Season", "Episode", "Scene_ID", "Utterance_ID"))
        key = (season, episode, scene)
        if key + (number,) in seen:
            raise DataError(f"duplicate utterance (Season {season}, Episode {episode}, Scene_ID "
                            f"{scene}, Utterance_ID {number}); first on line {seen[key + (number,)]}",
                            path=path, line=line, field="Utterance_ID")
        seen[key + (number,)] = line
        emotion = row["Emotion"].strip()
        if emotion not in labels.classes:
            raise DataError(f"unknown label {emotion!r}; expected one of {labels.classes}",
                            path=path, line=line, field="Emotion")
        names = parse_speakers(row["Speaker"], path=path, line=line)
        did = f"s{season}_e{episode}_c{scene}"
        utt = Utterance(
            id=f"{did}_u{number}", speaker=" & ".join(names), text=row["Utterance"],
            label=labels.index(emotion), vad=None,
            start=parse_clock(row["Start_Time"], path=path, line=line, field="Start_Time"),
            end=parse_clock(row["End_Time"], path=path, line=line, field="End_Time"),
            meta={"speakers": names, "season": season, "episode": episode, "scene": scene,
                  "utterance_number": number, "line": line},
        )
        dialogues.setdefault(key, []).append((number, utt))
    if not dialogues:
        raise DataError("no utterances (only a header row)", path=path, line=2)
    return [Dialogue(f"s{s}_e{e}_c{c}", [u for _, u in sorted(items, key=lambda x: x[0])], split)
            for (s, e, c), items in dialogues.items()]


def load_emorynlp(data_root: str | Path | None = None, label_set: str = "emorynlp7",
                  verify: bool = False) -> EmotionDataset:
    """Load EmoryNLP (classes in COSMIC's index order: Joyful, Mad, Peaceful, Neutral, ...)."""
    if label_set not in LABEL_SETS:
        raise DataError(f"unknown EmoryNLP label set {label_set!r}; use one of {sorted(LABEL_SETS)}")
    labels = LABEL_SETS[label_set]
    root = Path(default_root(data_root))
    splits, files, where = {}, {}, {}
    for split in SPLITS:
        path = require_file(root / EMORYNLP_DIR / FILES[split], f"EmoryNLP {split} file")
        files[split] = str(path)
        splits[split] = _read_split(path, split, labels)
        for d in splits[split]:
            if d.id in where:
                raise DataError(f"scene {d.id} is in both the {where[d.id]} and {split} files",
                                path=path, line=d.utterances[0].meta["line"], field="Scene_ID")
            where[d.id] = split
    ds = EmotionDataset("emorynlp", labels, splits, source={"files": files, "label_set": label_set})
    if verify:
        ds.source["verified"] = verify_against_sources(ds, root)
    return ds


def verify_against_sources(ds: EmotionDataset, root: Path) -> dict:
    """Cross-check scenes, splits, labels and transcripts with the COSMIC EmoryNLP pickle."""
    pkl_path = root / COSMIC_PICKLE
    _speakers, labels, sentences, train_ids, test_ids, valid_ids = read_pickle(pkl_path)[:6]
    cosmic = {"train": set(train_ids), "valid": set(valid_ids), "test": set(test_ids)}
    n = 0
    for split in SPLITS:
        ours = {f"{d.utterances[0].meta['season']}_{d.utterances[0].meta['episode']}_"
                f"{d.utterances[0].meta['scene']}": d for d in ds.dialogues(split)}
        if set(ours) != cosmic[split]:
            raise DataError(f"{split}: scenes differ from COSMIC: {sorted(set(ours) ^ cosmic[split])[:5]}",
                            path=pkl_path)
        for key, d in ours.items():
            if [u.label for u in d] != [int(x) for x in labels[key]]:
                raise DataError(f"{d.id}: labels differ from COSMIC", path=pkl_path)
            if [u.text.strip() for u in d] != [s.strip() for s in sentences[key]]:
                raise DataError(f"{d.id}: transcripts differ from COSMIC", path=pkl_path)
            n += len(d)
    return {"dialogues": sum(len(c) for c in cosmic.values()), "utterances": n}
