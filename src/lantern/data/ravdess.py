"""RAVDESS emotional speech (8 emotions), speaker-independent splits.

Reads ``RAVDESS_speech_16k/Actor_NN/*.flac`` under the data root (actors 01-16, 16 kHz mono;
``folder=`` picks another copy with the same layout, e.g. the 48 kHz ``RAVDESS_speech_audio``).
Each clip is one single-utterance :class:`Dialogue` whose utterance carries the audio path in
``media["audio"]``, the statement it speaks as ``text`` and the actor as ``speaker``.

The file name ``MM-VV-EE-II-SS-RR-AA`` gives modality (03 audio-only), vocal channel (01
speech), emotion (01-08), intensity (01 normal, 02 strong), statement (01, 02), repetition and
actor; intensity, statement and repetition go to ``meta``. A name that breaks this pattern is
an error naming the file and the field.

Splits are by actor, never by clip (no actor in two splits): by default actors 01-12 train,
13-14 valid, 15-16 test (issue #12). Odd actors are male, even female, so each default split
holds both.
"""

from __future__ import annotations

import re
from pathlib import Path

from lantern.data.dialogues import SPLITS, Dialogue, EmotionDataset, Utterance
from lantern.data.labels import RAVDESS_8
from lantern.errors import ConfigError, DataError
from lantern.paths import data_root as default_root

FOLDER = "RAVDESS_speech_16k"
#: RAVDESS emotion codes (EE in the file name) -> class, in LabelSet order.
EMOTION_CODES = {f"{i + 1:02d}": c for i, c in enumerate(RAVDESS_8.classes)}
STATEMENTS = {"01": "Kids are talking by the door.", "02": "Dogs are sitting by the door."}
DEFAULT_ACTORS = {"train": tuple(range(1, 13)), "valid": (13, 14), "test": (15, 16)}
_NAME = re.compile(r"^(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)$")


def parse_name(path: str | Path) -> dict:
    """The fields a RAVDESS file name encodes, checked.

    >>> parse_name("Actor_03/03-01-05-02-01-01-03.flac")["emotion"]
    'angry'
    >>> parse_name("x/03-01-09-01-01-01-03.flac")
    Traceback (most recent call last):
    ...
    lantern.errors.DataError: x/03-01-09-01-01-01-03.flac, field 'emotion': unknown emotion code '09' (01-08)
    """
    path = Path(path)
    m = _NAME.match(path.stem)
    if not m:
        raise DataError("file name is not MM-VV-EE-II-SS-RR-AA", path=path, field="name")
    modality, channel, emotion, intensity, statement, repetition, actor = m.groups()
    if modality != "03":
        raise DataError(f"modality {modality!r}: only audio-only clips (03) are read here",
                        path=path, field="modality")
    if channel != "01":
        raise DataError(f"vocal channel {channel!r}: only speech (01) is read here, not song (02)",
                        path=path, field="channel")
    if emotion not in EMOTION_CODES:
        raise DataError(f"unknown emotion code {emotion!r} (01-08)", path=path, field="emotion")
    if statement not in STATEMENTS:
        raise DataError(f"unknown statement code {statement!r} (01, 02)", path=path, field="statement")
    if intensity not in ("01", "02"):
        raise DataError(f"unknown intensity code {intensity!r} (01, 02)", path=path, field="intensity")
    return {"modality": modality, "channel": channel, "emotion": EMOTION_CODES[emotion],
            "intensity": "strong" if intensity == "02" else "normal",
            "statement": statement, "repetition": int(repetition), "actor": int(actor)}


def load_ravdess(data_root: str | Path | None = None, folder: str = FOLDER,
                 label_set: str | None = None, actors: dict | None = None) -> EmotionDataset:
    """RAVDESS speech as single-utterance dialogues, split by actor.

    ``actors`` maps split -> actor numbers (default :data:`DEFAULT_ACTORS`); actors in no
    split are left out, and an actor in two splits is an error.
    """
    if label_set not in (None, RAVDESS_8.name):
        raise ConfigError(f"ravdess has one label set, {RAVDESS_8.name!r}; got {label_set!r}")
    root = default_root(data_root) / folder
    if not root.is_dir():
        raise DataError("RAVDESS folder not found (set data_root or LANTERN_DATA_ROOT)", path=root)
    actors = {s: tuple(int(a) for a in v) for s, v in (actors or DEFAULT_ACTORS).items()}
    unknown = sorted(set(actors) - set(SPLITS))
    if unknown:
        raise ConfigError(f"ravdess actors: unknown split(s) {unknown}; use {list(SPLITS)}")
    split_of: dict[int, str] = {}
    for split, ids in actors.items():
        for a in ids:
            if a in split_of:
                raise ConfigError(f"ravdess actors: actor {a} is in both {split_of[a]!r} and {split!r}")
            split_of[a] = split
    splits: dict[str, list[Dialogue]] = {s: [] for s in actors}
    files = sorted(p for p in root.glob("Actor_*/*") if p.suffix.lower() in (".flac", ".wav"))
    if not files:
        raise DataError("no .flac or .wav clips under Actor_*/", path=root)
    for path in files:
        info = parse_name(path)
        if f"Actor_{info['actor']:02d}" != path.parent.name:
            raise DataError(f"actor {info['actor']:02d} in the name, folder {path.parent.name}",
                            path=path, field="actor")
        split = split_of.get(info["actor"])
        if split is None:
            continue
        speaker = f"actor{info['actor']:02d}"
        u = Utterance(path.stem, speaker, STATEMENTS[info["statement"]],
                      label=RAVDESS_8.index(info["emotion"]), media={"audio": str(path)},
                      meta={"intensity": info["intensity"], "statement": info["statement"],
                            "repetition": info["repetition"],
                            "gender": "male" if info["actor"] % 2 else "female"})
        splits[split].append(Dialogue(path.stem, [u], split))
    empty = [s for s, ds in splits.items() if not ds]
    if empty:
        raise DataError(f"no clips for split(s) {empty} (actors {[actors[s] for s in empty]})", path=root)
    return EmotionDataset("ravdess", RAVDESS_8, splits,
                          {"path": str(root), "actors": {s: list(v) for s, v in actors.items()},
                           "licence": "CC BY-NC-SA 4.0"})


__all__ = ["FOLDER", "EMOTION_CODES", "STATEMENTS", "DEFAULT_ACTORS", "parse_name", "load_ravdess"]
