"""Dataset loaders: counts on the real data, and clear errors on broken inputs.

Real-data tests use ``require_data`` (skip locally, fail in CI when the data is missing).
Broken inputs are tiny synthetic files written to ``tmp_path``; no dataset content is copied.
"""

from __future__ import annotations

import json
import pickle
import re
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, require_data
from lantern.data import load_dataset
from lantern.data.conversation import load_conversation
from lantern.data.dailydialog import LABEL_FIXES, load_dailydialog
from lantern.data.emorynlp import load_emorynlp
from lantern.data.iemocap import load_iemocap, verify_against_sources
from lantern.data.meld import load_meld, repair_mojibake
from lantern.data.official_pickles import load_cogmen_pickle, load_sdt_pickle
from lantern.errors import ConfigError, DataError


def counts(ds) -> dict[str, tuple[int, int]]:
    return {s: (len(ds.dialogues(s)), len(ds.utterances(s))) for s in ("train", "valid", "test")}


# ----------------------------------------------------------------------------------------
# Real data
# ----------------------------------------------------------------------------------------

@pytest.mark.data
def test_meld_real_counts_ids_and_fields(data_root):
    require_data("MELD_declare-lab/MELD")
    ds = load_dataset("meld", data_root=data_root)
    assert counts(ds) == {"train": (1038, 9989), "valid": (114, 1109), "test": (280, 2610)}
    assert ds.label_counts("train") == {"neutral": 4710, "surprise": 1205, "fear": 268, "sadness": 683,
                                        "joy": 1743, "disgust": 271, "anger": 1109}
    assert ds.label_counts("test")["neutral"] == 1256
    first = ds.dialogues("train")[0]
    assert first.id == "train_dia0" and first.utterances[0].id == "train_dia0_utt0"
    assert first.utterances[0].speaker == "Chandler"
    assert first.utterances[0].start == pytest.approx(976.059)
    assert first.utterances[0].end == pytest.approx(981.731)
    assert ds.dialogues("valid")[0].id == "val_dia0" and ds.dialogues("test")[0].id == "test_dia0"
    assert "’" in first.utterances[0].text
    sentiments = {}
    for u in ds.utterances("train"):
        assert u.vad is None
        sentiments[u.meta["sentiment"]] = sentiments.get(u.meta["sentiment"], 0) + 1
    assert sentiments == {"neutral": 4710, "negative": 2945, "positive": 2334}
    for d in ds.dialogues("train"):
        numbers = [u.meta["utterance_number"] for u in d]
        assert numbers == sorted(numbers)
    # quirks: no train dialogue 60; 76 dialogues have gaps in their Utterance_IDs
    assert "train_dia60" not in {d.id for d in ds.dialogues("train")}
    gaps = sum(1 for s in ("train", "valid", "test") for d in ds.dialogues(s)
               if [u.meta["utterance_number"] for u in d] != list(range(len(d))))
    assert gaps == 76


@pytest.mark.data
def test_meld_verify_against_cosmic_and_merbench(data_root):
    require_data("MELD_declare-lab/MELD")
    require_data("conv-emotion_COSMIC/meld/meld.pkl")
    require_data("MERTools_MERBench/meld-process/label.npz")
    ds = load_meld(data_root, verify=True)
    assert ds.source["verified"] == {"dialogues": 1432, "utterances": 13708}


@pytest.mark.data
def test_emorynlp_real_counts(data_root):
    require_data("MELD_declare-lab/emorynlp")
    require_data("conv-emotion_COSMIC/emorynlp/emorynlp.pkl")
    ds = load_dataset("emorynlp", data_root=data_root, verify=True)
    assert counts(ds) == {"train": (659, 7551), "valid": (89, 954), "test": (79, 984)}
    assert ds.label_counts("train") == {"Joyful": 1677, "Mad": 785, "Peaceful": 638, "Neutral": 2485,
                                        "Sad": 474, "Powerful": 551, "Scared": 941}
    assert ds.source["verified"] == {"dialogues": 827, "utterances": 9489}
    first = ds.dialogues("train")[0]
    assert first.id == "s1_e2_c1" and first.utterances[0].id == "s1_e2_c1_u1"
    assert first.utterances[0].speaker == "Monica Geller"
    multi = [u for s in ("train", "valid", "test") for u in ds.utterances(s) if len(u.meta["speakers"]) > 1]
    assert len(multi) == 61
    assert all(u.speaker == " & ".join(u.meta["speakers"]) for u in multi)


@pytest.mark.data
def test_dailydialog_real_counts_and_label_fixes(data_root):
    require_data("conv-emotion_RECCON/dailydialog_train.json")
    ds = load_dataset("dailydialog", data_root=data_root)
    assert counts(ds) == {"train": (834, 8206), "valid": (47, 493), "test": (225, 2405)}
    # README counts plus the normalised misspellings (happy 5 + excited 2, sad 3, ...)
    assert ds.label_counts("train") == {"neutral": 3644, "happiness": 3557, "surprise": 366,
                                        "anger": 276, "sadness": 212, "disgust": 106, "fear": 45}
    assert ds.label_counts("valid") == {"neutral": 293, "happiness": 127, "surprise": 18,
                                        "anger": 26, "sadness": 23, "disgust": 2, "fear": 4}
    fixed = [u.meta["raw_emotion"] for s in ("train", "valid", "test") for u in ds.utterances(s)
             if "raw_emotion" in u.meta]
    assert len(fixed) == 15 and set(fixed) <= set(LABEL_FIXES)
    first = ds.dialogues("train")[0].utterances[0]
    assert first.id == "tr_4466_t1" and first.speaker == "A"
    assert first.meta["cause_spans"] == ["see a movie tomorrow ?"] and first.meta["cause_evidence"] == [1]
    # quirk: RECCON's test file holds original-train ('tr_') dialogues too
    assert {u.meta["source_split"] for u in ds.utterances("test")} == {"tr", "te"}


@pytest.mark.data
@pytest.mark.parametrize("label_set, expected", [
    ("6way", (5163, 647, 1623)), ("4way-merge", (3816, 474, 1241)), ("4way-drop", (3274, 326, 943))])
def test_iemocap_real_counts(data_root, label_set, expected):
    require_data("IEMOCAP_ERC_joined/iemocap_erc_utterances.csv")
    ds = load_dataset("iemocap", data_root=data_root, label_set=label_set)
    assert tuple(len(ds.utterances(s)) for s in ("train", "valid", "test")) == expected
    assert tuple(len(ds.dialogues(s)) for s in ("train", "valid", "test")) == (108, 12, 31)


@pytest.mark.data
def test_iemocap_verify_against_sources(data_root):
    require_data("IEMOCAP_ERC_joined/iemocap_erc_utterances.csv")
    require_data("conv-emotion_COSMIC/iemocap/iemocap.pkl")
    require_data("MERTools_MERBench/iemocap-process/label_6way.npz")
    ds = load_iemocap(data_root)
    assert verify_against_sources(ds, Path(data_root)) == {"dialogues": 151, "utterances": 7433}


# ----------------------------------------------------------------------------------------
# MELD: synthetic files
# ----------------------------------------------------------------------------------------

MELD_HEADER = "Sr No.,Utterance,Speaker,Emotion,Sentiment,Dialogue_ID,Utterance_ID,Season,Episode,StartTime,EndTime\n"


def meld_row(d, u, text="Hello there.", speaker="Ann", emotion="neutral", sentiment="neutral",
             start="00:00:01,000", end="00:00:02,500") -> str:
    return f'{u + 1},"{text}",{speaker},{emotion},{sentiment},{d},{u},1,1,"{start}","{end}"\n'


def write_meld_root(root: Path, train_rows: str | bytes | None = None) -> Path:
    folder = root / "MELD_declare-lab" / "MELD"
    folder.mkdir(parents=True, exist_ok=True)
    if train_rows is None:
        train_rows = MELD_HEADER + meld_row(0, 1, "Second.", "Bob", "joy", "positive") + meld_row(0, 0)
    for name, content in (("train_sent_emo.csv", train_rows),
                          ("dev_sent_emo.csv", MELD_HEADER + meld_row(0, 0)),
                          ("test_sent_emo.csv", MELD_HEADER + meld_row(3, 0, emotion="anger", sentiment="negative"))):
        data = content if isinstance(content, bytes) else content.encode("utf-8")
        (folder / name).write_bytes(data)
    return folder / "train_sent_emo.csv"


def test_meld_synthetic_sorting_ids_times(tmp_path):
    write_meld_root(tmp_path)
    ds = load_meld(tmp_path)
    d = ds.dialogues("train")[0]
    assert [u.id for u in d] == ["train_dia0_utt0", "train_dia0_utt1"]
    assert [u.speaker for u in d] == ["Ann", "Bob"]
    assert d.utterances[1].meta["sentiment"] == "positive"
    assert d.utterances[0].start == 1.0 and d.utterances[0].end == 2.5
    assert ds.dialogues("valid")[0].id == "val_dia0" and ds.dialogues("test")[0].id == "test_dia3"
    assert ds.label_set.classes[ds.utterances("test")[0].label] == "anger"


def test_meld_repairs_mojibake(tmp_path):
    broken = "You\u00e2\u20ac\u2122re here"  # 'You’re' as UTF-8 bytes read as cp1252
    write_meld_root(tmp_path, MELD_HEADER + meld_row(0, 0, broken))
    assert load_meld(tmp_path).utterances("train")[0].text == "You’re here"
    assert repair_mojibake("You\u00e2\x80\x99re") == "You’re"  # read as latin-1
    assert repair_mojibake("it\x92s") == "it’s"  # cp1252 byte read as latin-1 (COSMIC)
    for fine in ("café", "naïve — ok", "You’re", "plain ascii", "Zoë’s"):
        assert repair_mojibake(fine) == fine


@pytest.mark.parametrize("content, line, field, message", [
    (MELD_HEADER + meld_row(0, 0) + meld_row(0, 1, emotion="happyy"), 3, "Emotion", "unknown label 'happyy'"),
    (MELD_HEADER + meld_row(0, 0) + meld_row(0, 0), 3, "Utterance_ID", "duplicate utterance"),
    (MELD_HEADER + meld_row(0, 0, sentiment="meh"), 2, "Sentiment", "unknown sentiment"),
    (MELD_HEADER + meld_row(0, 0, start="1:2"), 2, "StartTime", "time stamp"),
    (MELD_HEADER + meld_row(0, 0).replace(",0,0,", ",zero,0,"), 2, "Dialogue_ID", "not an integer"),
    (MELD_HEADER.replace("Emotion,", "Feeling,") + meld_row(0, 0), 1, "Emotion", "missing column"),
    (MELD_HEADER, 2, None, "no utterances"),
    ("", 1, None, "empty file"),
    ((MELD_HEADER + meld_row(0, 0)).encode() + meld_row(0, 1, "caf\xe9").encode("latin-1"), 3, None, "not valid utf-8"),
])
def test_meld_broken_inputs(tmp_path, content, line, field, message):
    train = write_meld_root(tmp_path, content)
    with pytest.raises(DataError, match=re.escape(message)) as info:
        load_meld(tmp_path)
    err = info.value
    assert err.path == str(train) and err.line == line and err.field == field
    assert str(err).startswith(f"{train}, line {line}")


def test_meld_missing_file_and_label_set(tmp_path):
    train = write_meld_root(tmp_path)
    (train.parent / "test_sent_emo.csv").unlink()
    with pytest.raises(DataError, match="not found") as info:
        load_meld(tmp_path)
    assert info.value.path.endswith("test_sent_emo.csv")
    with pytest.raises(DataError, match="unknown MELD label set"):
        load_meld(tmp_path, label_set="6way")


# ----------------------------------------------------------------------------------------
# EmoryNLP: synthetic files
# ----------------------------------------------------------------------------------------

EMORY_HEADER = "Utterance,Speaker,Emotion,Scene_ID,Utterance_ID,Season,Episode,Start_Time,End_Time\n"


def emory_row(u, speaker="['Ann Lee']", emotion="Neutral", scene=3, text="Hi.") -> str:
    return f'"{text}","{speaker}",{emotion},{scene},{u},1,2,00:00:02.877,00:00:07.548\n'


def write_emory_root(root: Path, train: str | bytes | None = None) -> Path:
    folder = root / "MELD_declare-lab" / "emorynlp"
    folder.mkdir(parents=True, exist_ok=True)
    if train is None:
        train = EMORY_HEADER + emory_row(4, "['Ann Lee', 'Bo']", "Joyful") + emory_row(2)
    for name, content in (("emorynlp_train_final.csv", train),
                          ("emorynlp_dev_final.csv", EMORY_HEADER + emory_row(1, scene=5)),
                          ("emorynlp_test_final.csv", EMORY_HEADER + emory_row(1, scene=6, emotion="Sad"))):
        (folder / name).write_bytes(content if isinstance(content, bytes) else content.encode())
    return folder / "emorynlp_train_final.csv"


def test_emorynlp_synthetic(tmp_path):
    write_emory_root(tmp_path)
    ds = load_emorynlp(tmp_path)
    d = ds.dialogues("train")[0]
    assert d.id == "s1_e2_c3" and [u.id for u in d] == ["s1_e2_c3_u2", "s1_e2_c3_u4"]
    assert [u.speaker for u in d] == ["Ann Lee", "Ann Lee & Bo"]
    assert d.utterances[1].meta["speakers"] == ["Ann Lee", "Bo"]
    assert d.utterances[0].start == pytest.approx(2.877) and d.utterances[0].end == pytest.approx(7.548)
    assert ds.label_set.classes[d.utterances[1].label] == "Joyful"


@pytest.mark.parametrize("content, line, field, message", [
    (EMORY_HEADER + emory_row(1) + emory_row(2, "['Ann"), 3, "Speaker", "not a Python list"),
    (EMORY_HEADER + emory_row(1, "__import__('os')"), 2, "Speaker", "not a Python list"),
    (EMORY_HEADER + emory_row(1, "[]"), 2, "Speaker", "non-empty list"),
    (EMORY_HEADER + emory_row(1, "['Ann', 3]"), 2, "Speaker", "non-empty list"),
    (EMORY_HEADER + emory_row(1) + emory_row(1), 3, "Utterance_ID", "duplicate utterance"),
    (EMORY_HEADER + emory_row(1, emotion="Angry"), 2, "Emotion", "unknown label 'Angry'"),
    (EMORY_HEADER.replace("Scene_ID", "Scene") + emory_row(1), 1, "Scene_ID", "missing column"),
    (EMORY_HEADER, 2, None, "no utterances"),
    ("", 1, None, "empty file"),
    (EMORY_HEADER.encode() + b'"Caf\xe9","[\'A\']",Neutral,3,1,1,2,00:00:02.877,00:00:07.548\n', 2, None,
     "not valid utf-8"),
])
def test_emorynlp_broken_inputs(tmp_path, content, line, field, message):
    train = write_emory_root(tmp_path, content)
    with pytest.raises(DataError, match=re.escape(message)) as info:
        load_emorynlp(tmp_path)
    assert (info.value.path, info.value.line, info.value.field) == (str(train), line, field)


def test_emorynlp_missing_file_and_scene_in_two_splits(tmp_path):
    train = write_emory_root(tmp_path)
    (train.parent / "emorynlp_dev_final.csv").write_text(EMORY_HEADER + emory_row(7))  # scene 3 again
    with pytest.raises(DataError, match="scene s1_e2_c3 is in both") as info:
        load_emorynlp(tmp_path)
    assert info.value.field == "Scene_ID" and info.value.line == 2
    train.unlink()
    with pytest.raises(DataError, match="not found") as info:
        load_emorynlp(tmp_path)
    assert info.value.path == str(train)


# ----------------------------------------------------------------------------------------
# DailyDialog: synthetic files
# ----------------------------------------------------------------------------------------

def dd_turns(*emotions: str) -> list[list[dict]]:
    return [[{"turn": i, "speaker": "AB"[(i - 1) % 2], "utterance": f"Sentence {i} .", "emotion": e}
             for i, e in enumerate(emotions, start=1)]]


def write_dd_root(root: Path, train: dict | str | bytes | None = None) -> Path:
    folder = root / "conv-emotion_RECCON"
    folder.mkdir(parents=True, exist_ok=True)
    if train is None:
        train = {"tr_1": dd_turns("neutral", "happy"), "tr_2": dd_turns("sad")}
    for name, content in (("dailydialog_train.json", train),
                          ("dailydialog_valid.json", {"va_1": dd_turns("fear")}),
                          ("dailydialog_test.json", {"te_1": dd_turns("happines", "anger")})):
        if isinstance(content, (dict, list)):
            content = json.dumps(content, indent=4)
        (folder / name).write_bytes(content if isinstance(content, bytes) else content.encode())
    return folder / "dailydialog_train.json"


def test_dailydialog_synthetic_label_fixes_and_causes(tmp_path):
    data = {"tr_1": dd_turns("neutral", "happy")}
    data["tr_1"][0][1].update({"expanded emotion cause evidence": [1, "b"],
                               "expanded emotion cause span": ["Sentence 1"], "type": ["inter-personal"]})
    write_dd_root(tmp_path, data)
    ds = load_dailydialog(tmp_path)
    u = ds.dialogues("train")[0].utterances[1]
    assert u.id == "tr_1_t2" and ds.label_set.classes[u.label] == "happiness"
    assert u.meta["raw_emotion"] == "happy" and u.meta["cause_evidence"] == [1, "b"]
    assert u.meta["cause_types"] == ["inter-personal"]
    assert ds.label_set.classes[ds.utterances("test")[0].label] == "happiness"


def test_dailydialog_unknown_label_names_file_dialogue_line_field(tmp_path):
    train = write_dd_root(tmp_path, {"tr_1": dd_turns("neutral"), "tr_9": dd_turns("neutral", "bored")})
    with pytest.raises(DataError, match="dialogue tr_9: turn 2: unknown label 'bored'") as info:
        load_dailydialog(tmp_path)
    err = info.value
    assert err.path == str(train) and err.field == "emotion"
    assert '"emotion": "bored"' in train.read_text().splitlines()[err.line - 1]


@pytest.mark.parametrize("train, line, field, message", [
    ({"tr_1": dd_turns("neutral"), "tr_2": [[]]}, 12, "tr_2", "empty dialogue"),
    ({"tr_1": [dd_turns("neutral")[0], []]}, 2, "tr_1", "one list of turns"),
    ({"tr_1": [[{"turn": 1, "speaker": "A", "utterance": "Hi"}]]}, 2, "emotion", "missing 'emotion'"),
    ({"tr_1": [[{"turn": 2, "speaker": "A", "utterance": "Hi", "emotion": "fear"}]]}, 5, "turn", "turn 2 found"),
    ({"tr_1": [[{"turn": 1, "speaker": "A", "utterance": 5, "emotion": "fear"}]]}, 7, "utterance", "must be str"),
    ([1, 2], 1, None, "expected a JSON object"),
    ({}, 1, None, "no dialogues"),
    ('{"tr_1": [[\n  {"turn": 1,, }]]}', 2, None, "invalid JSON"),
    (b'{"tr_1": [[\n{"turn": 1, "speaker": "A", "utterance": "caf\xe9", "emotion": "fear"}]]}', 2, None,
     "not valid utf-8"),
])
def test_dailydialog_broken_inputs(tmp_path, train, line, field, message):
    path = write_dd_root(tmp_path, train)
    with pytest.raises(DataError, match=re.escape(message)) as info:
        load_dailydialog(tmp_path)
    assert (info.value.path, info.value.line, info.value.field) == (str(path), line, field)


def test_dailydialog_missing_file_and_duplicate_dialogue(tmp_path):
    train = write_dd_root(tmp_path, {"va_1": dd_turns("neutral")})
    with pytest.raises(DataError, match="va_1 is in both the train and valid files"):
        load_dailydialog(tmp_path)
    train.unlink()
    with pytest.raises(DataError, match="not found") as info:
        load_dailydialog(tmp_path)
    assert info.value.path == str(train)


# ----------------------------------------------------------------------------------------
# Conversation format
# ----------------------------------------------------------------------------------------

def doc_examples() -> dict[str, str]:
    text = (REPO / "docs" / "conversation-format.md").read_text(encoding="utf-8")
    blocks = dict(re.findall(r"```(json|csv)\n(.*?)```", text, flags=re.S))
    return {"jsonl": blocks["json"], "csv": blocks["csv"]}


@pytest.mark.parametrize("suffix", ["jsonl", "csv"])
def test_conversation_doc_example_loads(tmp_path, suffix):
    path = tmp_path / f"interview.{suffix}"
    path.write_text(doc_examples()[suffix], encoding="utf-8")
    ds = load_dataset("conversation", path=path)
    assert counts(ds) == {"train": (0, 0), "valid": (0, 0), "test": (2, 4)}
    d1, d2 = ds.dialogues("test")
    assert [u.id for u in d1] == ["d1_0", "d1_1", "d1_2"] and [u.id for u in d2] == ["d2_0"]
    assert [ds.label_set.classes[u.label] for u in d1] == ["exc", "hap", "neu"] and d2.utterances[0].label is None
    assert d1.utterances[1].text == "Wait, the one in Lisbon?"
    assert d1.utterances[1].vad == (4.0, 3.5, 3.0) and d1.utterances[0].vad is None
    assert d1.utterances[0].media == {"audio": str((tmp_path / "clips" / "d1_0.wav").resolve())}
    assert d1.utterances[2].media == {"image": str((tmp_path / "faces" / "ana.png").resolve())}
    assert (d1.utterances[0].start, d1.utterances[0].end) == (0.0, 1.8)
    assert ds.label_set.name == "6way"


def test_conversation_defaults_and_options(tmp_path):
    path = tmp_path / "chat.jsonl"
    path.write_text('{"speaker": "A", "text": "Hello", "label": "Joy", "mood": "x"}\n\n'
                    '{"speaker": "B", "text": "", "audio": "/abs/b.wav", "label": null}\n', encoding="utf-8")
    ds = load_conversation("chat.jsonl", label_set="meld7", data_root=tmp_path)
    (d,) = ds.dialogues("test")
    assert d.id == "chat" and [u.id for u in d] == ["chat_0", "chat_1"]
    assert ds.label_set.classes[d.utterances[0].label] == "joy"  # case-insensitive match
    assert d.utterances[0].meta["extra"] == {"mood": "x"} and d.utterances[0].meta["line"] == 1
    assert d.utterances[1].meta["line"] == 3 and d.utterances[1].media == {"audio": "/abs/b.wav"}
    unlabelled = tmp_path / "plain.csv"
    unlabelled.write_bytes("\ufeffspeaker,text\nA,Hi\n".encode("utf-8"))  # Excel's byte-order mark
    ds = load_conversation(unlabelled)
    assert ds.label_set.name == "6way" and ds.utterances("test")[0].label is None


CONV_CSV_HEADER = "dialogue_id,utterance_id,speaker,text,label,valence,arousal,dominance,start,end\n"


@pytest.mark.parametrize("name, content, line, field, message", [
    ("a.csv", CONV_CSV_HEADER + "d,u1,A,Hi,hap,,,,,\nd,u2,B,Yo,happyy,,,,,\n", 3, "label", "unknown label 'happyy'"),
    ("a.csv", CONV_CSV_HEADER + "d,u1,A,Hi,,,,,,\nd,u1,B,Yo,,,,,,\n", 3, "utterance_id", "duplicate utterance id 'u1'"),
    ("a.csv", CONV_CSV_HEADER + "d,u1,A,Hi,,1,x,2,,\n", 2, "arousal", "not a number: 'x'"),
    ("a.csv", CONV_CSV_HEADER + "d,u1,A,Hi,,1,2,,,\n", 2, "dominance", "together"),
    ("a.csv", CONV_CSV_HEADER + "d,u1,A,Hi,,,,,2,1\n", 2, "end", "before start"),
    ("a.csv", CONV_CSV_HEADER + " ,u1,A,Hi,,,,,,\n", 2, "dialogue_id", "empty dialogue id"),
    ("a.csv", CONV_CSV_HEADER + "d,u1,,Hi,,,,,,\n", 2, "speaker", "empty speaker"),
    ("a.csv", CONV_CSV_HEADER + "d,u1,A,  ,,,,,,\n", 2, "text", "empty text"),
    ("a.csv", "dialogue_id,speaker,label\nd,A,hap\n", 1, "text", "missing column"),
    ("a.csv", CONV_CSV_HEADER, 1, None, "no utterances"),
    ("a.csv", CONV_CSV_HEADER + "d,u1,A,Hi\n", 2, None, "expected 10 values, found 4"),
    ("a.csv", "  \n", 1, None, "empty file"),
    ("a.csv", (CONV_CSV_HEADER + "d,u1,A,Hi,,,,,,\n").encode() + b"d,u2,B,caf\xe9,,,,,,\n", 3, None,
     "not valid utf-8"),
    ("a.jsonl", '{"speaker": "A", "text": "Hi"}\n{"text": "Yo"}\n', 2, "speaker", "missing required field"),
    ("a.jsonl", '{"speaker": "A"}\n', 1, "text", "missing required field"),
    ("a.jsonl", '{"speaker": "A", "text": "Hi", "label": "hap"}\n{"speaker": "B", "text": "x", "label": "glad"}\n',
     2, "label", "unknown label 'glad'"),
    ("a.jsonl", '{"speaker": "A", "text": "Hi", "valence": "high", "arousal": 1, "dominance": 1}\n', 1,
     "valence", "not a number"),
    ("a.jsonl", '{"speaker": "A", "text": "Hi", "start": NaN}\n', 1, "start", "not a finite number"),
    ("a.jsonl", '{"speaker": "A", "text": "Hi", "dialogue_id": ""}\n', 1, "dialogue_id", "empty dialogue id"),
    ("a.jsonl", '{"speaker": ["A"], "text": "Hi"}\n', 1, "speaker", "expected a string"),
    ("a.jsonl", '{"speaker": "A", "text": "Hi"}\n{"speaker": "A", "text": "Hi", "utterance_id": "a_0"}\n', 2,
     "utterance_id", "duplicate utterance id 'a_0'"),
    ("a.jsonl", '[{"speaker": "A", "text": "Hi"}]\n', 1, None, "one JSON array"),
    ("a.jsonl", '{"speaker": "A", "text": "Hi"}\n"just text"\n', 2, None, "must be a JSON object"),
    ("a.json", '{"speaker": "A", "text": "Hi"}\n{"speaker": "B", "text": "Yo"\n', 2, None, "invalid JSON"),
    ("a.jsonl", "", 1, None, "empty file"),
    ("a.jsonl", b'{"speaker": "A", "text": "Hi"}\n\n{"speaker": "B", "text": "caf\xe9"}\n', 3, None,
     "not valid utf-8"),
])
def test_conversation_broken_inputs(tmp_path, name, content, line, field, message):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    with pytest.raises(DataError, match=re.escape(message)) as info:
        load_conversation(path)
    assert (info.value.path, info.value.line, info.value.field) == (str(path), line, field)


def test_conversation_deeply_nested_json_is_a_data_error_naming_the_line(tmp_path):
    """Issue 9.2: an array nested 100,000 deep on one line was a RecursionError traceback."""
    path = tmp_path / "deep.jsonl"
    path.write_text('{"speaker": "A", "text": "Hi"}\n' + "[" * 100_000 + "]" * 100_000 + "\n")
    with pytest.raises(DataError, match="nested too deeply") as info:
        load_conversation(path)
    assert (info.value.path, info.value.line) == (str(path), 2)
    # Deep, but within the parser's limit, in an extra key: refused too (nothing needs it).
    nested = {"speaker": "A", "text": "Hi", "extra": json.loads("[" * 40 + "]" * 40)}
    path.write_text(json.dumps(nested) + "\n")
    with pytest.raises(DataError, match="nested too deeply") as info:
        load_conversation(path)
    assert info.value.line == 1


def test_conversation_lines_end_at_newline_only(tmp_path):
    """Issue 9.8: U+2028, U+2029 and U+0085 are legal raw inside JSON strings (json.dumps with
    ensure_ascii=False and JavaScript write them); str.splitlines() cut the line there."""
    texts = ["one\u2028two", "three\u0085four\u2029five", "six"]
    path = tmp_path / "seps.jsonl"
    path.write_text("".join(json.dumps({"speaker": "A", "text": t}, ensure_ascii=False) + "\r\n"
                            for t in texts), encoding="utf-8", newline="")
    ds = load_conversation(path)
    utterances = ds.utterances("test")
    assert [u.text for u in utterances] == texts and [u.meta["line"] for u in utterances] == [1, 2, 3]


@pytest.mark.parametrize("record, field", [
    ({"speaker": 7, "text": "Hi"}, "speaker"),
    ({"speaker": "A", "text": 42}, "text"),
    ({"speaker": "A", "text": "Hi", "label": 3}, "label"),
    ({"speaker": "A", "text": "", "audio": 1}, "audio"),
])
def test_conversation_numbers_are_not_names_or_text(tmp_path, record, field):
    """Issue 9.13: the format says strings; a number in speaker/text is refused, naming the field."""
    path = tmp_path / "numbers.jsonl"
    path.write_text(json.dumps(record) + "\n")
    with pytest.raises(DataError, match="expected a string, found int") as info:
        load_conversation(path)
    assert (info.value.line, info.value.field) == (1, field)


def test_conversation_integer_ids_are_read_as_digits(tmp_path):
    path = tmp_path / "ids.jsonl"
    path.write_text(json.dumps({"dialogue_id": 12, "utterance_id": 3, "speaker": "A", "text": "Hi"}) + "\n")
    (d,) = load_conversation(path).dialogues("test")
    assert d.id == "12" and d.utterances[0].id == "3"


def test_conversation_bounds_on_text_and_utterances(tmp_path):
    """Issue 9.5: one long utterance (or a huge file) is refused with a clear error, not read
    into the text model."""
    path = tmp_path / "long.csv"
    path.write_text("speaker,text\nA,short\nB," + "x" * 2001 + "\n")
    assert len(load_conversation(path).utterances("test")) == 2        # no bound by default
    with pytest.raises(DataError, match="text of 2,001 characters; at most 2,000") as info:
        load_conversation(path, max_text_chars=2000)
    assert (info.value.line, info.value.field) == (3, "text")
    path = tmp_path / "many.jsonl"
    path.write_text("".join(json.dumps({"speaker": "A", "text": f"t{i}"}) + "\n" for i in range(4)))
    assert len(load_conversation(path, max_utterances=4).utterances("test")) == 4
    with pytest.raises(DataError, match="more than 3 utterances") as info:
        load_conversation(path, max_utterances=3)
    assert info.value.line == 4


def test_conversation_media_paths_refused_before_the_file_system(tmp_path, monkeypatch):
    """Issue 9.1: with media_paths=False (the web app) a media path is refused before it is
    resolved, checked or opened."""
    path = tmp_path / "talk.jsonl"
    path.write_text(json.dumps({"speaker": "A", "text": "Hi"}) + "\n"
                    + json.dumps({"speaker": "B", "text": "", "video": "../../etc/passwd"}) + "\n")

    def no_file_system(*args, **kwargs):
        raise AssertionError("a media path reached the file system")

    monkeypatch.setattr(Path, "resolve", no_file_system)
    with pytest.raises(DataError, match="video paths are not accepted") as info:
        load_conversation(path, media_paths=False)
    assert (info.value.line, info.value.field) == (2, "video")


def test_conversation_missing_file_suffix_and_label_set(tmp_path):
    with pytest.raises(DataError, match="not found") as info:
        load_conversation(tmp_path / "nope.jsonl")
    assert info.value.path == str(tmp_path / "nope.jsonl")
    other = tmp_path / "talk.txt"
    other.write_text("A: hi\n")
    with pytest.raises(DataError, match="unsupported file type '.txt'"):
        load_conversation(other)
    ok = tmp_path / "ok.jsonl"
    ok.write_text('{"speaker": "A", "text": "Hi"}\n')
    with pytest.raises(DataError, match="unknown label set 'bogus'"):
        load_conversation(ok, label_set="bogus")


# ----------------------------------------------------------------------------------------
# IEMOCAP: broken copies of the joined table (synthetic rows)
# ----------------------------------------------------------------------------------------

IEMOCAP_HEADER = ("split,dialogue_id,turn,utterance_id,speaker,text,label6,label6_name,label4,label4_name,"
                  "emoeval_label,valence,activation,dominance,start_time,end_time,ac_sig_mean,ac_sig_std,"
                  "ac_rmse_mean,ac_rmse_std,ac_silence,ac_harmonic,ac_auto_corr_max,ac_auto_corr_std\n")


def iemocap_row(turn=0, uid="Ses01F_x_F000", label="neu", index=2, split="train", valence="2.5",
                text="Hello.") -> str:
    return (f'{split},Ses01F_x,{turn},{uid},F,"{text}",{index},{label},{index},{label},{label},'
            f"{valence},2.5,2.5,1.0,2.0,0.1,0.1,0.1,0.1,0.1,0.1,0.1,0.1\n")


def test_iemocap_synthetic_table_loads(tmp_path):
    table = tmp_path / "table.csv"
    table.write_text(IEMOCAP_HEADER + iemocap_row() + iemocap_row(1, "Ses01F_x_M000", "ang", 3))
    ds = load_iemocap(path=table)
    assert [u.id for u in ds.utterances("train")] == ["Ses01F_x_F000", "Ses01F_x_M000"]
    assert ds.utterances("train")[0].vad == (2.5, 2.5, 2.5)
    assert ds.utterances("train")[0].features["audio:iemocap8"].shape == (8,)


@pytest.mark.parametrize("content, line, field, message", [
    (IEMOCAP_HEADER + iemocap_row() + iemocap_row(1, "Ses01F_x_M000", "happyy", 0), 3, "label6_name", "unknown label"),
    (IEMOCAP_HEADER + iemocap_row() + iemocap_row(1), 3, "utterance_id", "duplicate utterance id"),
    (IEMOCAP_HEADER + iemocap_row(valence="high"), 2, "valence", "not a number"),
    (IEMOCAP_HEADER + iemocap_row(split="dev"), 2, "split", "unknown split"),
    (IEMOCAP_HEADER + iemocap_row(3) + iemocap_row(1, "Ses01F_x_M000"), 3, "turn", "is not after"),
    (IEMOCAP_HEADER.replace("speaker,", "who,") + iemocap_row(), 1, "speaker", "missing column"),
    ("", 1, None, "empty file"),
    ((IEMOCAP_HEADER + iemocap_row()).encode() + iemocap_row(1, "Ses01F_x_M000", text="caf\xe9").encode("latin-1"),
     3, None, "not valid utf-8"),
])
def test_iemocap_broken_tables(tmp_path, content, line, field, message):
    table = tmp_path / "iemocap.csv"
    table.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(DataError, match=re.escape(message)) as info:
        load_iemocap(path=table)
    assert (info.value.path, info.value.line, info.value.field) == (str(table), line, field)


def test_iemocap_missing_table(tmp_path):
    with pytest.raises(DataError, match="not found") as info:
        load_iemocap(path=tmp_path / "absent.csv")
    assert info.value.path == str(tmp_path / "absent.csv")


# ----------------------------------------------------------------------------------------
# Official feature pickles (synthetic, exact tuple layouts)
# ----------------------------------------------------------------------------------------

DIALOGUES = {"Ses01F_impro01": 3, "Ses01M_script02_1": 2, "Ses05F_impro03": 4}
TRAIN, TEST = ["Ses01F_impro01", "Ses01M_script02_1"], ["Ses05F_impro03"]


def cogmen_tuple(rng, n_labels=6):
    ids = {d: [f"{d}_{'FM'[i % 2]}{i:03d}" for i in range(n)] for d, n in DIALOGUES.items()}
    speakers = {d: ["FM"[i % 2] for i in range(n)] for d, n in DIALOGUES.items()}
    labels = {d: [int(x) for x in rng.integers(0, n_labels, n)] for d, n in DIALOGUES.items()}
    text = {d: [rng.normal(size=100) for _ in range(n)] for d, n in DIALOGUES.items()}
    audio = {d: rng.normal(size=(n, 100)) for d, n in DIALOGUES.items()}  # one array per dialogue
    visual = {d: [rng.normal(size=512).tolist() for _ in range(n)] for d, n in DIALOGUES.items()}
    sentence = {d: [f"sentence {i}" for i in range(n)] for d, n in DIALOGUES.items()}
    return [ids, speakers, labels, text, audio, visual, sentence, list(TRAIN), list(TEST)]


def dump(path: Path, obj) -> Path:
    with open(path, "wb") as fh:
        pickle.dump(tuple(obj) if isinstance(obj, list) else obj, fh)
    return path


def test_cogmen_pickle_round_trip(tmp_path):
    parts = cogmen_tuple(np.random.default_rng(0))
    path = dump(tmp_path / "IEMOCAP_features.pkl", parts)
    ds = load_dataset("cogmen-pickle", path=path, dev_fraction=0.5)
    assert counts(ds) == {"train": (1, 2), "valid": (1, 3), "test": (1, 4)}
    assert ds.source["valid_ids"] == ["Ses01F_impro01"] and ds.source["n_dev"] == 1
    ids, speakers, labels, text, audio, visual, sentence = parts[:7]
    for split in ("train", "valid", "test"):
        for d in ds.dialogues(split):
            assert [u.id for u in d] == ids[d.id] and [u.speaker for u in d] == speakers[d.id]
            assert [u.label for u in d] == labels[d.id] and [u.text for u in d] == sentence[d.id]
            for i, u in enumerate(d):
                assert set(u.features) == {"text:pickle", "audio:pickle", "visual:pickle"}
                assert all(v.dtype == np.float32 and v.ndim == 1 for v in u.features.values())
                np.testing.assert_allclose(u.features["text:pickle"], text[d.id][i], rtol=1e-6)
                np.testing.assert_allclose(u.features["audio:pickle"], audio[d.id][i], rtol=1e-6)
                np.testing.assert_allclose(u.features["visual:pickle"], visual[d.id][i], rtol=1e-6)
    # the default dev fraction: int(2 * 0.1) = 0 dialogues in valid
    assert counts(load_cogmen_pickle(path)) == {"train": (2, 5), "valid": (0, 0), "test": (1, 4)}


def sdt_tuple(rng, meld=False):
    n_labels = 7 if meld else 6
    ids, speakers, labels, _t, audio, visual, sentence, train, test = cogmen_tuple(rng, n_labels)
    if meld:
        speakers = {d: [np.eye(9)[i % 3].tolist() for i in range(n)] for d, n in DIALOGUES.items()}
    texts = [{d: [rng.normal(size=1024).astype(np.float32) for _ in range(n)] for d, n in DIALOGUES.items()}
             for _ in range(4)]
    head = [ids, speakers, labels]
    if meld:
        head.append({d: [i % 3 for i in range(n)] for d, n in DIALOGUES.items()})
    tail = [audio, visual, sentence, train, test] + ([None] if meld else [])
    return head + texts + tail, texts


def test_sdt_pickle_round_trip(tmp_path):
    parts, texts = sdt_tuple(np.random.default_rng(1))
    assert len(parts) == 12
    path = dump(tmp_path / "iemocap_multimodal_features.pkl", parts)
    ds = load_dataset("sdt-pickle", path=path, dev_fraction=0.5)
    assert counts(ds) == {"train": (1, 2), "valid": (1, 3), "test": (1, 4)}
    u = ds.dialogues("test")[0].utterances[2]
    assert u.id == "Ses05F_impro03_F002" and u.speaker == "F" and u.label == parts[2]["Ses05F_impro03"][2]
    for k in range(4):
        np.testing.assert_array_equal(u.features[f"text:pickle{k + 1}"], texts[k]["Ses05F_impro03"][2])
    expected = np.mean([texts[k]["Ses05F_impro03"][2] for k in range(4)], axis=0)
    np.testing.assert_allclose(u.features["text:pickle"], expected, rtol=1e-6)
    assert u.features["visual:pickle"].shape == (512,) and u.features["audio:pickle"].dtype == np.float32


def test_sdt_meld_variant_one_hot_speakers(tmp_path):
    parts, _ = sdt_tuple(np.random.default_rng(2), meld=True)
    assert len(parts) == 14
    path = dump(tmp_path / "meld_multimodal_features.pkl", parts)
    ds = load_sdt_pickle(path, label_set="meld7")
    d = ds.dialogues("test")[0]
    assert [u.speaker for u in d] == ["0", "1", "2", "0"]
    assert [u.meta["sentiment_index"] for u in d] == [0, 1, 2, 0]
    assert ds.label_set.name == "meld7" and ds.source["format"] == "sdt-meld"
    parts[2]["Ses01F_impro01"][0] = 6  # "anger" in meld7, beyond 6way
    path = dump(tmp_path / "meld_anger.pkl", parts)
    assert load_sdt_pickle(path, label_set="meld7").dialogues("train")[0].utterances[0].label == 6
    with pytest.raises(DataError, match="needs label_set='meld7'") as info:
        load_sdt_pickle(path)
    assert info.value.field == "videoLabels"


def test_official_pickles_wrong_tuple_and_not_a_pickle(tmp_path):
    parts = cogmen_tuple(np.random.default_rng(3))
    truncated = dump(tmp_path / "truncated.pkl", parts[:8])
    with pytest.raises(DataError, match=re.escape("expected a 9-tuple (video_ids, video_speakers, video_labels, "
                                                  "video_text, video_audio, video_visual, video_sentence, "
                                                  "trainVids, test_vids), found 8 items")) as info:
        load_cogmen_pickle(truncated)
    assert info.value.path == str(truncated)
    with pytest.raises(DataError, match=r"expected a 12-tuple \(videoIDs, .*\) or a 14-tuple .* found 9 items"):
        load_sdt_pickle(dump(tmp_path / "nine.pkl", parts))
    with pytest.raises(DataError, match="found a dict"):
        load_cogmen_pickle(dump(tmp_path / "dict.pkl", {"a": 1}))
    text = tmp_path / "features.pkl"
    text.write_text("this is not a pickle\n")
    for loader in (load_cogmen_pickle, load_sdt_pickle):
        with pytest.raises(DataError, match="cannot unpickle") as info:
            loader(text)
        assert info.value.path == str(text)
    with pytest.raises(DataError, match="not found"):
        load_cogmen_pickle(tmp_path / "absent.pkl")


def test_official_pickles_inconsistent_dialogues(tmp_path):
    rng = np.random.default_rng(4)
    parts = cogmen_tuple(rng)
    parts[5]["Ses01M_script02_1"] = parts[5]["Ses01M_script02_1"][:1]  # one visual vector short
    with pytest.raises(DataError, match="dialogue 'Ses01M_script02_1': 1 entries here but 2 in video_labels") as info:
        load_cogmen_pickle(dump(tmp_path / "short.pkl", parts))
    assert info.value.field == "video_visual"

    parts = cogmen_tuple(rng)
    parts[2]["Ses05F_impro03"][1] = 9
    with pytest.raises(DataError, match="dialogue 'Ses05F_impro03', utterance 1: unknown label index 9") as info:
        load_cogmen_pickle(dump(tmp_path / "label.pkl", parts))
    assert info.value.field == "video_labels"

    parts = cogmen_tuple(rng)
    del parts[1]["Ses01F_impro01"]
    with pytest.raises(DataError, match="'Ses01F_impro01' is in the split ids but missing") as info:
        load_cogmen_pickle(dump(tmp_path / "missing.pkl", parts))
    assert info.value.field == "video_speakers"

    parts = cogmen_tuple(rng)
    parts[3]["Ses01F_impro01"][0] = "not a vector"
    with pytest.raises(DataError, match="not a numeric vector") as info:
        load_cogmen_pickle(dump(tmp_path / "vector.pkl", parts))
    assert info.value.field == "video_text"

    parts = cogmen_tuple(rng)
    parts[8] = parts[8] + [TRAIN[0]]
    with pytest.raises(DataError, match="both train and test"):
        load_cogmen_pickle(dump(tmp_path / "overlap.pkl", parts))

    parts = cogmen_tuple(rng)
    parts[7], parts[8] = [], set()
    with pytest.raises(DataError, match="both empty") as info:
        load_cogmen_pickle(dump(tmp_path / "no_ids.pkl", parts))
    assert info.value.field == "trainVids"

    parts, _ = sdt_tuple(rng)
    parts[4]["Ses01F_impro01"][0] = np.zeros(768)
    with pytest.raises(DataError, match="text layers have different sizes"):
        load_sdt_pickle(dump(tmp_path / "layers.pkl", parts))

    parts, _ = sdt_tuple(rng, meld=True)
    parts[1]["Ses01F_impro01"][0] = [0] * 9
    with pytest.raises(DataError, match="neither a name nor a one-hot vector") as info:
        load_sdt_pickle(dump(tmp_path / "speaker.pkl", parts), label_set="meld7")
    assert info.value.field == "videoSpeakers"


def test_registry_names_resolve():
    from lantern.data import DATASETS
    for name in ("iemocap", "meld", "emorynlp", "dailydialog", "conversation", "cogmen-pickle", "sdt-pickle"):
        assert callable(DATASETS.get(name))


# ----------------------------------------------------------------------------------------
# mix: several corpora in the shared label space
# ----------------------------------------------------------------------------------------

def test_mix_synthetic_relabels_into_the_shared_space(tmp_path):
    train = (EMORY_HEADER + emory_row(1, emotion="Joyful") + emory_row(2, emotion="Peaceful")
             + emory_row(3, emotion="Mad"))
    write_emory_root(tmp_path, train)
    ds = load_dataset("mix", corpora=["emorynlp"], data_root=tmp_path)
    assert ds.name == "mix" and ds.label_set.name == "shared7"
    d = ds.dialogues("train")[0]
    assert d.id == "emorynlp/s1_e2_c3" and d.utterances[0].id == "emorynlp/s1_e2_c3_u1"
    # Peaceful has no shared counterpart: kept as context, unlabelled, its own label in meta
    assert [ds.label_set.classes[u.label] if u.label is not None else None for u in d] == \
        ["joy", None, "anger"]
    assert d.utterances[1].meta["source_label"] == "Peaceful"
    assert {u.meta["corpus"] for u in d} == {"emorynlp"}
    assert ds.source["corpora"]["emorynlp"]["label_set"] == "emorynlp7"


def test_mix_into_a_corpus_label_set_gives_coarse_labels(tmp_path):
    train = (EMORY_HEADER + emory_row(1, emotion="Joyful") + emory_row(2, emotion="Peaceful")
             + emory_row(3, emotion="Mad") + emory_row(4, emotion="Scared"))
    write_emory_root(tmp_path, train)
    ds = load_dataset("mix", corpora=["emorynlp"], data_root=tmp_path, label_set="6way")
    assert ds.label_set.classes == ("hap", "sad", "neu", "ang", "exc", "fru")
    d = ds.dialogues("train")[0]
    # Joyful is IEMOCAP hap or exc: no single label, both as options; Mad is ang;
    # Peaceful and Scared have no 6-way counterpart
    assert [u.label for u in d] == [None, None, 3, None]
    assert d.utterances[0].meta["label_options"] == [0, 4]
    assert all("label_options" not in u.meta for u in d.utterances[1:])
    only = load_dataset("mix", corpora=["emorynlp"], data_root=tmp_path, valid_from=[])
    assert only.dialogues("valid") == [] and only.dialogues("test")
    assert all("weight" not in u.meta for u in only.dialogues("train")[0])
    heavy = load_dataset("mix", corpora=["emorynlp"], data_root=tmp_path, weights={"emorynlp": 2})
    assert {u.meta["weight"] for u in heavy.dialogues("train")[0]} == {2.0}


@pytest.mark.parametrize("options, message", [
    ({"corpora": ["mix"]}, "not 'mix'"),
    ({"corpora": ["meld", "meld"]}, "distinct"),
    ({"corpora": []}, "not be empty"),
    ({"label_set": "nope"}, "label_set must be one of"),
    ({"corpora": ["meld"], "valid_from": ["iemocap"]}, "valid_from names"),
    ({"corpora": ["meld"], "weights": {"iemocap": 2}}, "weights names"),
    ({"corpora": ["meld"], "weights": {"meld": 0}}, "positive numbers"),
])
def test_mix_refuses_bad_options(options, message):
    with pytest.raises(ConfigError, match=message):
        load_dataset("mix", **options)


def test_mix_real_four_corpora(data_root):
    for path in ("IEMOCAP_ERC_joined/iemocap_erc_utterances.csv", "MELD_declare-lab/MELD",
                 "MELD_declare-lab/emorynlp", "conv-emotion_RECCON/dailydialog_train.json"):
        require_data(path)
    ds = load_dataset("mix", data_root=data_root)
    own = {name: load_dataset(name, data_root=data_root) for name in ("iemocap", "meld", "emorynlp", "dailydialog")}
    for split in ("train", "valid", "test"):
        assert len(ds.utterances(split)) == sum(len(o.utterances(split)) for o in own.values())
    # the first dialogues come from every corpus in turn, so --limit keeps some of each
    assert [d.id.split("/")[0] for d in ds.dialogues("train")[:4]] == list(own)
    counts = {c: sum(u.meta["source_label"] == c for u in ds.utterances("train")
                     if u.meta["corpus"] == "iemocap") for c in ("fru", "exc", "hap")}
    joy = sum(u.label == ds.label_set.index("joy") for u in ds.utterances("train")
              if u.meta["corpus"] == "iemocap")
    assert joy == counts["exc"] + counts["hap"]
    assert all(u.label is None for u in ds.utterances("train") if u.meta["source_label"] == "fru")
    assert ds.vad_scale == (1.0, 5.0)
    assert sum(u.vad is not None for u in ds.utterances("test")) == \
        sum(u.vad is not None for u in own["iemocap"].utterances("test"))
    six = load_dataset("mix", data_root=data_root, label_set="6way", valid_from=["iemocap"])
    assert len(six.utterances("valid")) == len(own["iemocap"].utterances("valid"))
    iemocap = [u for u in six.utterances("train") if u.meta["corpus"] == "iemocap"]
    assert [u.label for u in iemocap] == [u.label for u in own["iemocap"].utterances("train")]
    meld_joy = [u for u in six.utterances("train") if u.meta["corpus"] == "meld" and u.meta["source_label"] == "joy"]
    assert meld_joy and all(u.label is None and u.meta["label_options"] == [0, 4] for u in meld_joy)
