"""The input stage of ``lantern predict``: conversation files, folders of clips, recordings.

Real ffmpeg and real Whisper-base throughout (no mocks). Media is made with ffmpeg in
tmp_path or taken from the real data (RAVDESS: English statements "Kids are talking by the
door" / "Dogs are sitting by the door"; MER2023: Mandarin video clips).
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from conftest import require_data
from lantern.errors import ConfigError, DataError, LanternError
from lantern.predict.inputs import PredictInput, load_input, natural_key
from lantern.predict.media import check_duration, extract_audio, probe, wav_duration

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None,
                                reason="ffmpeg/ffprobe not installed (Debian package ffmpeg)")

RAVDESS = "RAVDESS_speech_audio"
KIDS = f"{RAVDESS}/Actor_01/03-01-01-01-01-01-01.wav"     # statement 01, neutral, actor 1
DOGS = f"{RAVDESS}/Actor_02/03-01-01-01-02-01-02.wav"     # statement 02, neutral, actor 2
KIDS_ANGRY = f"{RAVDESS}/Actor_01/03-01-05-02-01-01-01.wav"  # statement 01, angry, actor 1
MER_CLIP = "MER2023_example_clips_Emotion-LLaMA/examples/sample_00000338.mp4"


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-threads", "2",
                    *args, "-y"], check=True)



@pytest.fixture(scope="module")
def concat_recording(tmp_path_factory) -> tuple[Path, list[float]]:
    """KIDS, 2 s silence, DOGS, 2 s silence, KIDS_ANGRY as one FLAC; and the clip lengths."""
    clips = [require_data(c) for c in (KIDS, DOGS, KIDS_ANGRY)]
    out = tmp_path_factory.mktemp("concat") / "three statements.flac"
    ffmpeg(*[a for c in clips for a in ("-i", str(c))], "-filter_complex",
           "[0:a]apad=pad_dur=2[a0];[1:a]apad=pad_dur=2[a1];[a0][a1][2:a]concat=n=3:v=0:a=1[o]",
           "-map", "[o]", "-c:a", "flac", str(out))
    return out, [probe(c).duration for c in clips]


# --- errors that need no model -----------------------------------------------------------


@pytest.mark.parametrize("name", ["notes.txt", "paper.pdf", "README"])
def test_unsupported_suffix(tmp_path, name):
    path = tmp_path / name
    path.write_text("hello")
    with pytest.raises(DataError) as exc:
        load_input(path)
    assert exc.value.path == str(path) and exc.value.field == "suffix"
    assert ".wav" in str(exc.value) and ".mp4" in str(exc.value) and ".jsonl" in str(exc.value)


@pytest.mark.parametrize("name", ["empty.wav", "empty.mp4", "empty.jsonl", "empty.csv"])
def test_empty_file(tmp_path, name):
    path = tmp_path / name
    path.touch()
    with pytest.raises(DataError, match="empty") as exc:
        load_input(path)
    assert exc.value.path == str(path)


def test_missing_input_and_folders_without_media(tmp_path):
    with pytest.raises(DataError, match="not found") as exc:
        load_input(tmp_path / "absent.wav")
    assert exc.value.path == str(tmp_path / "absent.wav")
    with pytest.raises(DataError, match="no audio or video files"):
        load_input(tmp_path)  # empty folder
    (tmp_path / "notes.txt").write_text("not media")
    (tmp_path / ".hidden.wav").write_bytes(b"RIFF")
    with pytest.raises(DataError, match="no audio or video files") as exc:
        load_input(tmp_path)
    assert exc.value.path == str(tmp_path)


def test_bad_options_fail_before_any_work(tmp_path):
    path = tmp_path / "talk.jsonl"
    path.write_text('{"speaker": "A", "text": "hi"}\n')
    with pytest.raises(ConfigError, match="task"):
        load_input(path, task="summarise")
    with pytest.raises(ConfigError, match="speaker"):
        load_input(path, speaker="  ")
    with pytest.raises(ConfigError, match="label set"):
        load_input(path, label_set="nope")


def test_corrupted_media_is_a_data_error_naming_the_file(tmp_path):
    noise = tmp_path / "noise.wav"
    # Seeded: about 1 in 20 os.urandom() draws happens to parse as an MP3 frame header.
    noise.write_bytes(random.Random(0).randbytes(20000))
    with pytest.raises(DataError, match="ffprobe: Invalid data") as exc:
        load_input(noise)
    assert exc.value.path == str(noise) and exc.value.field == "media"

    good = tmp_path / "clip.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=64x48:rate=10", "-f", "lavfi", "-i",
           "sine=frequency=440", "-t", "2", "-c:v", "mpeg4", "-c:a", "aac", "-shortest", str(good))
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])  # moov atom is at the end
    with pytest.raises(DataError, match="moov atom not found") as exc:
        load_input(truncated)
    assert exc.value.path == str(truncated) and "truncated" in str(exc.value)

    # In a folder, the damaged file is named before anything is transcribed.
    folder = tmp_path / "clips"
    folder.mkdir()
    shutil.copy(good, folder / "a.mp4")
    shutil.copy(truncated, folder / "b.mp4")
    with pytest.raises(DataError) as exc:
        load_input(folder)
    assert exc.value.path == str(folder / "b.mp4")


def test_media_path_errors_name_the_written_and_the_resolved_path(tmp_path):
    """Issue 9.1 (command line): a media path keeps working for local users, and an error says
    both what the file wrote and which file on this machine that led to."""
    (tmp_path / "talks").mkdir()
    talk = tmp_path / "talks" / "talk.jsonl"
    talk.write_text(json.dumps({"speaker": "A", "text": "", "audio": "../clips/none.wav"}) + "\n")
    with pytest.raises(DataError) as exc:
        load_input(talk)
    resolved = (tmp_path / "clips" / "none.wav").resolve()
    assert f"audio file '../clips/none.wav' (resolved to {resolved}) not found" in str(exc.value)
    assert (exc.value.path, exc.value.line, exc.value.field) == (str(talk), 1, "audio")
    # A symbolic link is followed, and where it leads is said.
    secret = tmp_path / "notes.txt"
    secret.write_text("not audio")
    (tmp_path / "talks" / "voice.wav").symlink_to(secret)
    talk.write_text(json.dumps({"speaker": "A", "text": "", "audio": "voice.wav"}) + "\n")
    with pytest.raises(DataError, match="unsupported file type '.txt'") as exc:
        load_input(talk)
    assert f"'voice.wav' (resolved to {secret.resolve()})" in str(exc.value)


def test_conversation_without_media_leaves_no_work_folder(tmp_path):
    """Issue 9.12: every conversation run left an empty work/ folder."""
    talk = tmp_path / "talk.jsonl"
    talk.write_text('{"speaker": "A", "text": "hi"}\n')
    result = load_input(talk, workdir=tmp_path / "out" / "work")
    assert result.transcription is None and result.work_files == ()
    assert not (tmp_path / "out" / "work").exists()


def test_conversation_file_size_bound(tmp_path):
    """Issue 9.5: the whole file is bounded too, before it is read."""
    talk = tmp_path / "talk.jsonl"
    talk.write_text('{"speaker": "A", "text": "hi"}\n' * 100)
    assert len(load_input(talk, max_input_bytes=talk.stat().st_size).utterances) == 100
    with pytest.raises(DataError, match="at most 0 MB") as exc:
        load_input(talk, max_input_bytes=talk.stat().st_size - 1)
    assert exc.value.path == str(talk)


def test_probe_and_extract_audio(tmp_path):
    stereo = tmp_path / "tone.ogg"
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=300:sample_rate=44100", "-ac", "2", "-t", "2",
           "-c:a", "libvorbis", str(stereo))
    info = probe(stereo)
    assert info.has_audio and not info.has_video and info.modality == "audio"
    assert info.format_name == "ogg" and info.duration == pytest.approx(2.0, abs=0.05)
    wav = extract_audio(stereo, tmp_path / "out" / "tone.wav")
    import wave
    with wave.open(str(wav)) as w:
        assert (w.getnchannels(), w.getframerate(), w.getsampwidth()) == (1, 16000, 2)
    assert wav_duration(wav) == pytest.approx(2.0, abs=0.05)
    part = extract_audio(stereo, tmp_path / "part.wav", start=0.5, end=1.25)
    assert wav_duration(part) == pytest.approx(0.75, abs=0.01)
    with pytest.raises(DataError, match="no audio between") as exc:
        extract_audio(stereo, tmp_path / "none.wav", start=5.0, end=6.0)
    assert exc.value.path == str(stereo) and not (tmp_path / "none.wav").exists()

    video = tmp_path / "clip.mkv"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=64x48:rate=10", "-f", "lavfi", "-i",
           "sine=frequency=440", "-t", "1", "-c:v", "mpeg4", "-c:a", "libvorbis", str(video))
    info = probe(video)
    assert info.has_video and info.has_audio and info.modality == "video"
    assert wav_duration(extract_audio(video, tmp_path / "v.wav")) == pytest.approx(1.0, abs=0.05)

    mute = tmp_path / "mute.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=64x48:rate=10", "-t", "1", "-c:v", "mpeg4", str(mute))
    with pytest.raises(DataError, match="no audio track") as exc:
        load_input(mute)
    assert exc.value.path == str(mute)


def test_missing_ffmpeg_says_which_package(tmp_path, monkeypatch):
    clip = tmp_path / "a.wav"
    clip.write_bytes(b"RIFF....WAVE")
    monkeypatch.setenv("PATH", str(tmp_path / "no-bin"))
    with pytest.raises(LanternError, match="Debian package 'ffmpeg'"):
        probe(clip)


def test_two_hour_recording_is_refused_quickly(tmp_path):
    minute = tmp_path / "minute.ogg"
    ffmpeg("-f", "lavfi", "-i", "anullsrc=r=8000:cl=mono", "-t", "60", "-c:a", "libopus",
           "-b:a", "6k", str(minute))
    long = tmp_path / "long.ogg"  # 120 copies of the packets: no encoding, about a second
    ffmpeg("-stream_loop", "119", "-i", str(minute), "-c", "copy", str(long))
    started = time.perf_counter()
    with pytest.raises(DataError) as exc:
        load_input(long)
    assert time.perf_counter() - started < 5  # probed, not decoded or transcribed
    assert exc.value.field == "duration" and exc.value.path == str(long)
    message = str(exc.value)
    assert "2:00:00" in message and "--max-duration" in message
    # The same check passes once the bound is raised (what load_input runs first).
    seconds = probe(long).duration
    assert seconds == pytest.approx(7200, abs=1)
    check_duration(seconds, 7300.0, path=long)
    with pytest.raises(DataError, match="duration|long"):
        load_input(long, max_duration_s=3600)


def test_natural_order():
    names = ["clip10.wav", "clip2.wav", "clip1.wav", "Clip3.mp4"]
    assert sorted(names, key=natural_key) == ["clip1.wav", "clip2.wav", "Clip3.mp4", "clip10.wav"]


# --- the Whisper model -------------------------------------------------------------------


def test_whisper_model_dir_assembles_once_and_repairs(tmp_path, monkeypatch, whisper):
    from lantern.predict import transcribe as tr

    target = tmp_path / "whisper-base"
    first = tr.whisper_model_dir(target)
    assert first == target
    assert sorted(p.name for p in target.iterdir()) == [
        "config.json", "model.bin", "tokenizer.json", "verified.json", "vocabulary.txt"]
    record = json.loads((target / "verified.json").read_text())
    assert record["sha256"] == tr.MODEL_SHA256
    assert record["sizes"]["model.bin"] == (target / "model.bin").stat().st_size
    assert not list(tmp_path.glob(".*tmp*"))  # no temporary folder left behind
    stamp = (target / "model.bin").stat().st_mtime_ns
    assert tr.whisper_model_dir(target) == target  # reused, not rewritten
    assert (target / "model.bin").stat().st_mtime_ns == stamp
    with open(target / "model.bin", "r+b") as f:  # damaged: size no longer matches the record
        f.truncate(1000)
    tr.whisper_model_dir(target)
    assert (target / "model.bin").stat().st_size == record["sizes"]["model.bin"]

    from lantern.features import whisper_model

    monkeypatch.setattr(whisper_model, "MODEL_PARTS", (("no_such_whisper_pkg", "data/model.bin.part1"),))
    with pytest.raises(LanternError, match=r"pip install 'lantern-emotion\[speech\]'"):
        tr.whisper_model_dir(tmp_path / "elsewhere")
    assert tr.whisper_model_dir(target) == target  # an assembled copy needs no packages


def test_unknown_language_is_a_config_error(tmp_path, whisper):
    from lantern.predict.transcribe import transcribe

    wav = tmp_path / "s.wav"
    ffmpeg("-f", "lavfi", "-i", "anullsrc=r=16000:cl=mono", "-t", "1", "-c:a", "pcm_s16le",
           str(wav))
    with pytest.raises(ConfigError, match="language"):
        transcribe(wav, language="klingon")


def test_recording_without_speech(tmp_path, whisper):
    silence = tmp_path / "silence.wav"
    ffmpeg("-f", "lavfi", "-i", "anullsrc=r=16000:cl=mono", "-t", "3", "-c:a", "pcm_s16le",
           str(silence))
    with pytest.raises(DataError, match="no speech found") as exc:
        load_input(silence)
    assert exc.value.path == str(silence)
    # Issue 9.12: a failed run with a kept work folder left work/0000_silence.wav behind.
    work = tmp_path / "out" / "work"
    with pytest.raises(DataError, match="no speech found"):
        load_input(silence, workdir=work)
    assert not work.exists()
    work.mkdir(parents=True)
    (work / "mine.txt").write_text("not lantern's")          # a folder that was there stays,
    with pytest.raises(DataError, match="no speech found"):  # with what it held
        load_input(silence, workdir=work)
    assert [p.name for p in work.iterdir()] == ["mine.txt"]


# --- real speech -------------------------------------------------------------------------


@pytest.mark.data
@pytest.mark.slow
def test_ravdess_recording(whisper):
    path = require_data(KIDS)
    result = load_input(path)
    assert isinstance(result, PredictInput) and result.kind == "recording"
    assert result.label_set.name == "6way"
    [dialogue] = result.dialogues
    assert dialogue.id == path.stem and dialogue.split == "test"
    [utt] = dialogue.utterances
    assert "door" in utt.text.lower() and "kids" in utt.text.lower()
    assert utt.id == f"{path.stem}_0" and utt.speaker == "S1"
    assert utt.media == {"audio": str(path.resolve())}
    assert 0 <= utt.start < utt.end <= 3.31
    t = result.transcription
    assert t["model"] == "whisper-base" and t["language"] == "en" and t["task"] == "transcribe"
    assert t["language_probability"] > 0.5 and t["duration"] == pytest.approx(3.3, abs=0.05)
    assert t["speakers"] == "single speaker 'S1' (no diarisation)"
    assert t["segments"] == [{"utterance_id": utt.id, "start": utt.start, "end": utt.end,
                              "text": utt.text}]
    assert result.seconds > 0


@pytest.mark.data
@pytest.mark.slow
def test_folder_of_clips_in_natural_order(tmp_path, whisper):
    folder = tmp_path / "session 1"
    folder.mkdir()
    # Natural order: clip1 (kids), clip2 (dogs), clip10 (kids, angry); by plain string
    # order clip10 would come second.
    shutil.copy(require_data(KIDS), folder / "clip1.wav")
    shutil.copy(require_data(DOGS), folder / "clip2.wav")
    shutil.copy(require_data(KIDS_ANGRY), folder / "clip10.wav")
    (folder / "notes.txt").write_text("ignored")
    work = tmp_path / "work"
    result = load_input(folder, speaker="Ana", language="en", workdir=work)
    assert result.kind == "folder"
    [dialogue] = result.dialogues
    assert dialogue.id == "session 1"
    utts = dialogue.utterances
    assert [u.meta["file"] for u in utts] == ["clip1.wav", "clip2.wav", "clip10.wav"]
    assert [u.id for u in utts] == ["session 1_0", "session 1_1", "session 1_2"]
    words = [("kids" in u.text.lower(), "dogs" in u.text.lower()) for u in utts]
    assert words == [(True, False), (False, True), (True, False)]
    assert all("door" in u.text.lower() for u in utts)
    assert {u.speaker for u in utts} == {"Ana"}
    assert utts[0].media == {"audio": str((folder / "clip1.wav").resolve())}
    assert utts[0].start == 0.0
    for a, b in zip(utts, utts[1:]):  # files laid end to end
        assert b.start == pytest.approx(a.end, abs=1e-3)
    assert utts[-1].end == pytest.approx(sum(probe(folder / n).duration for n in
                                             ("clip1.wav", "clip2.wav", "clip10.wav")), abs=0.01)
    assert all(Path(u.meta["wav"]).is_file() and Path(u.meta["wav"]).parent == work for u in utts)
    t = result.transcription
    assert t["language"] == "en" and t["language_probability"] == 1.0  # given, not detected
    assert t["speakers"] == "single speaker 'Ana' (no diarisation)"
    assert [s["utterance_id"] for s in t["segments"]] == [u.id for u in utts]
    assert [s["start"] for s in t["segments"]] == sorted(s["start"] for s in t["segments"])


@pytest.mark.data
@pytest.mark.slow
def test_mandarin_video_is_translated(whisper):
    path = require_data(MER_CLIP)
    result = load_input(path)
    t = result.transcription
    assert t["language"] == "zh" and t["task"] == "translate" and t["language_probability"] > 0.5
    text = " ".join(u.text for u in result.utterances)
    assert text.strip() and text.isascii()  # English words, not Chinese characters
    assert all(u.media == {"video": str(path.resolve())} for u in result.utterances)
    assert all(u.meta["task"] == "translate" for u in result.utterances)


@pytest.mark.data
@pytest.mark.slow
def test_concatenated_recording_gives_one_utterance_per_statement(concat_recording, whisper):
    path, lengths = concat_recording
    result = load_input(path, speaker="Bo")
    utts = result.utterances
    assert len(utts) >= 2
    assert [u.start for u in utts] == sorted(u.start for u in utts)
    assert len({u.start for u in utts}) == len(utts)
    assert all(u.start < u.end <= result.transcription["duration"] + 0.01 for u in utts)
    assert [u.id for u in utts] == [f"three statements_{i}" for i in range(len(utts))]
    text = " ".join(u.text.lower() for u in utts)
    assert "kids" in text and "dogs" in text
    # The second statement starts after the first clip and its 2 s of silence.
    dogs = next(u for u in utts if "dogs" in u.text.lower())
    assert dogs.start >= lengths[0] + 1.0
    assert result.transcription["duration"] == pytest.approx(sum(lengths) + 4.0, abs=0.05)


@pytest.mark.data
@pytest.mark.slow
def test_conversation_with_textless_utterances(tmp_path, concat_recording, whisper):
    long, lengths = concat_recording
    kids = require_data(KIDS)
    dogs_start = lengths[0] + 2.0
    rows = [
        {"dialogue_id": "d1", "speaker": "Ana", "text": "Where is everybody?", "label": "neu"},
        {"dialogue_id": "d1", "speaker": "Bo", "text": "", "audio": str(kids), "label": "neu"},
        {"dialogue_id": "d1", "speaker": "Ana", "text": "", "audio": str(long),
         "start": dogs_start, "end": dogs_start + lengths[1]},
    ]
    talk = tmp_path / "talk.jsonl"
    talk.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = load_input(talk, speaker="ignored")
    assert result.kind == "conversation" and result.label_set.name == "6way"
    utts = result.utterances
    assert [u.speaker for u in utts] == ["Ana", "Bo", "Ana"]
    assert utts[0].text == "Where is everybody?" and "transcript" not in utts[0].meta
    assert "kids" in utts[1].text.lower() and "door" in utts[1].text.lower()
    assert "dogs" in utts[2].text.lower() and "kids" not in utts[2].text.lower()  # only its span
    assert utts[2].start == dogs_start and utts[2].media == {"audio": str(long.resolve())}
    assert utts[1].meta["transcript"]["language"] == "en" and utts[1].label == 2
    t = result.transcription
    assert t["speakers"] == "from the conversation file"
    assert [s["utterance_id"] for s in t["segments"]] == ["d1_1", "d1_2"]
    assert t["segments"][1]["start"] >= dogs_start  # on the media file's timeline

    # A start past the end of the media, and a missing media file, are named by line.
    bad = tmp_path / "bad.csv"
    bad.write_text(f"speaker,text,audio,start\nAna,,{kids},100\n")
    with pytest.raises(DataError, match="past the end") as exc:
        load_input(bad)
    assert (exc.value.path, exc.value.line, exc.value.field) == (str(bad), 2, "start")
    bad.write_text("speaker,text,audio\nAna,hello,\nBo,,clips/none.wav\n")
    with pytest.raises(DataError, match="not found") as exc:
        load_input(bad)
    assert (exc.value.line, exc.value.field) == (3, "audio")
