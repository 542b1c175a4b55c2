"""IEMOCAP ERC (COSMIC split 108/12/31 dialogues) from the joined utterance table.

Reads ``IEMOCAP_ERC_joined/iemocap_erc_utterances.csv`` under the data root: transcripts,
speakers, 6-way and 4-way labels, valence/activation/dominance (1-5), times and the 8
acoustic descriptors (exposed as the feature ``audio:iemocap8``). With ``verify=True`` every
dialogue is cross-checked against the COSMIC pickle (order, speakers, labels, text) and the
MERBench utterance ids.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lantern.data.io import parse_float, read_csv_rows, read_pickle, require_file
from lantern.data.labels import IEMOCAP_4WAY_DROP, IEMOCAP_4WAY_MERGE, IEMOCAP_6WAY
from lantern.data.dialogues import SPLITS, Dialogue, EmotionDataset, Utterance
from lantern.errors import DataError
from lantern.paths import data_root as default_root

TABLE = "IEMOCAP_ERC_joined/iemocap_erc_utterances.csv"
COSMIC_PICKLE = "conv-emotion_COSMIC/iemocap/iemocap.pkl"
MERBENCH_IDS = "MERTools_MERBench/iemocap-process/label_6way.npz"
ACOUSTIC = ("ac_sig_mean", "ac_sig_std", "ac_rmse_mean", "ac_rmse_std", "ac_silence",
            "ac_harmonic", "ac_auto_corr_max", "ac_auto_corr_std")
COLUMNS = ("split", "dialogue_id", "turn", "utterance_id", "speaker", "text", "label6",
           "label6_name", "label4_name", "valence", "activation", "dominance", "start_time", "end_time") + ACOUSTIC
LABEL_SETS = {"6way": IEMOCAP_6WAY, "4way-merge": IEMOCAP_4WAY_MERGE, "4way-drop": IEMOCAP_4WAY_DROP}


def _map_label(name6: str, name4: str, label_set: str) -> str | None:
    """The label in the chosen label set, or None if the utterance is dropped.

    ``4way-merge`` follows the published MERBench 4-way column (``label4_name``): excited is
    merged into happy, frustrated dropped, and 53 happy utterances whose EmoEvaluation majority
    is ``xxx`` are left out (5,531 utterances). ``4way-drop`` keeps the 6-way labels of hap,
    sad, neu and ang (4,543 utterances).
    """
    if label_set == "6way":
        return name6
    if label_set == "4way-merge":
        return name4 or None
    return None if name6 in ("exc", "fru") else name6


def _label6(row: dict[str, str], table: Path, line: int) -> str:
    """The row's 6-way label name, checked against its numeric ``label6`` column."""
    name6 = row["label6_name"].strip()
    if name6 not in IEMOCAP_6WAY.classes:
        raise DataError(f"unknown label {name6!r}; expected one of {IEMOCAP_6WAY.classes}",
                        path=table, line=line, field="label6_name")
    if row["label6"].strip() != str(IEMOCAP_6WAY.index(name6)):
        raise DataError(f"label6 {row['label6']!r} disagrees with label6_name {name6!r}",
                        path=table, line=line, field="label6")
    return name6


def _measurements(row: dict[str, str], table: Path,
                  line: int) -> tuple[tuple[float, float, float] | None, dict[str, np.ndarray]]:
    """(valence, activation, dominance) or None when one is missing, and the acoustic
    descriptors as the ``audio:iemocap8`` feature."""
    vad = tuple(parse_float(row[c], path=table, line=line, field=c)
                for c in ("valence", "activation", "dominance"))
    acoustic = [parse_float(row[c], path=table, line=line, field=c) for c in ACOUSTIC]
    # 4 rows lack the descriptors: stored as all-NaN (a missing measurement), which
    # training imputes with the train mean.
    features = {"audio:iemocap8": np.asarray(
        [np.nan if a is None else a for a in acoustic], dtype=np.float32)}
    return (None if any(v is None for v in vad) else vad), features  # type: ignore[return-value]


def load_iemocap(data_root: str | Path | None = None, label_set: str = "6way",
                 verify: bool = False, path: str | Path | None = None) -> EmotionDataset:
    """Load IEMOCAP ERC.

    ``label_set``: ``6way`` (hap, sad, neu, ang, exc, fru), ``4way-merge`` (excited merged
    into happy) or ``4way-drop`` (excited and frustrated utterances removed).
    """
    if label_set not in LABEL_SETS:
        raise DataError(f"unknown IEMOCAP label set {label_set!r}; use one of {sorted(LABEL_SETS)}")
    labels = LABEL_SETS[label_set]
    root = Path(default_root(data_root))
    table = Path(path) if path else root / TABLE
    require_file(table, "IEMOCAP table")

    dialogues: dict[str, Dialogue] = {}
    seen_ids: dict[str, int] = {}
    last_turn: dict[str, int] = {}
    for line, row in read_csv_rows(table, COLUMNS):
        split = row["split"]
        if split not in SPLITS:
            raise DataError(f"unknown split {split!r}; expected one of {SPLITS}",
                            path=table, line=line, field="split")
        uid = row["utterance_id"].strip()
        if not uid:
            raise DataError("empty utterance id", path=table, line=line, field="utterance_id")
        if uid in seen_ids:
            raise DataError(f"duplicate utterance id {uid!r} (first on line {seen_ids[uid]})",
                            path=table, line=line, field="utterance_id")
        seen_ids[uid] = line
        name6 = _label6(row, table, line)
        try:
            turn = int(row["turn"])
        except ValueError:
            raise DataError(f"not an integer: {row['turn']!r}", path=table, line=line, field="turn") from None
        dialogue_id = row["dialogue_id"].strip()
        if dialogue_id in last_turn and turn <= last_turn[dialogue_id]:
            raise DataError(f"turn {turn} is not after turn {last_turn[dialogue_id]} of {dialogue_id}",
                            path=table, line=line, field="turn")
        last_turn[dialogue_id] = turn
        vad, features = _measurements(row, table, line)
        dialogue = dialogues.setdefault(dialogue_id, Dialogue(dialogue_id, [], split))
        if dialogue.split != split:
            raise DataError(f"dialogue {dialogue_id} is in split {dialogue.split!r} and {split!r}",
                            path=table, line=line, field="split")
        name4 = row["label4_name"].strip()
        if name4 and name4 not in IEMOCAP_4WAY_MERGE.classes:
            raise DataError(f"unknown label {name4!r}; expected one of {IEMOCAP_4WAY_MERGE.classes}",
                            path=table, line=line, field="label4_name")
        mapped = _map_label(name6, name4, label_set)
        utt = Utterance(
            id=uid, speaker=row["speaker"].strip(), text=row["text"],
            label=labels.index(mapped) if mapped is not None else None,
            vad=vad, features=features,
            start=parse_float(row["start_time"], path=table, line=line, field="start_time"),
            end=parse_float(row["end_time"], path=table, line=line, field="end_time"),
            meta={"label6": name6, "turn": turn, "line": line},
        )
        if mapped is not None:
            dialogue.utterances.append(utt)
    if not dialogues:
        raise DataError("no utterances", path=table)
    splits: dict[str, list[Dialogue]] = {s: [] for s in SPLITS}
    for d in dialogues.values():
        if d.utterances:
            splits[d.split].append(d)
    ds = EmotionDataset("iemocap", labels, splits,
                        source={"table": str(table), "label_set": label_set}, vad_scale=(1.0, 5.0))
    if verify:
        verify_against_sources(ds, root)
    return ds


def verify_against_sources(ds: EmotionDataset, root: Path) -> dict:
    """Cross-check a 6-way IEMOCAP dataset against the COSMIC pickle and MERBench ids."""
    if ds.label_set.name != "6way":
        raise ValueError("verify the 6-way label set (the others drop or merge utterances)")
    pkl_path = root / COSMIC_PICKLE
    speakers, labels, sentences, train_ids, test_ids, valid_ids = read_pickle(pkl_path)[:6]
    split_of = {**{d: "train" for d in train_ids}, **{d: "valid" for d in valid_ids},
                **{d: "test" for d in test_ids}}
    ours = {d.id: d for s in SPLITS for d in ds.splits[s]}
    if set(ours) != set(split_of):
        raise DataError(f"dialogue ids differ from the COSMIC pickle: "
                        f"{sorted(set(ours) ^ set(split_of))[:5]}", path=pkl_path)
    for did, dialogue in ours.items():
        if dialogue.split != split_of[did]:
            raise DataError(f"{did}: split {dialogue.split} here, {split_of[did]} in COSMIC", path=pkl_path)
        if [u.speaker for u in dialogue] != list(speakers[did]):
            raise DataError(f"{did}: speakers differ from COSMIC", path=pkl_path)
        if [u.label for u in dialogue] != [int(x) for x in labels[did]]:
            raise DataError(f"{did}: labels differ from COSMIC", path=pkl_path)
        if [u.text.strip() for u in dialogue] != [s.strip() for s in sentences[did]]:
            raise DataError(f"{did}: transcripts differ from COSMIC", path=pkl_path)
    npz_path = require_file(root / MERBENCH_IDS, "MERBench label file")
    with np.load(npz_path, allow_pickle=True) as npz:  # trusted dataset file
        corpus = npz["whole_corpus"].item()
    n_checked = 0
    for dialogue in ours.values():
        for u in dialogue:
            if u.id not in corpus:
                raise DataError(f"utterance {u.id} missing from MERBench ids", path=npz_path)
            if int(corpus[u.id]["emo"]) != u.label:
                raise DataError(f"utterance {u.id}: label {u.label} here, "
                                f"{corpus[u.id]['emo']} in MERBench", path=npz_path)
            n_checked += 1
    return {"dialogues": len(ours), "utterances": n_checked}
