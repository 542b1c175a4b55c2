"""The input stage of ``lantern predict INPUT``: any input becomes dialogues of utterances.

``INPUT`` is one of

``conversation``  a conversation file (``.jsonl``/``.json``/``.csv``, see
                  ``docs/conversation-format.md``). Utterances with empty text and an
                  ``audio`` or ``video`` path are transcribed; ``start``/``end``, when given,
                  cut that span (seconds into the media file) before transcription.
``folder``        a folder of per-utterance audio or video files: one utterance per file, in
                  natural name order (``clip2`` before ``clip10``), one dialogue named after
                  the folder; other files are ignored.
``recording``     one audio or video file: every Whisper segment becomes an utterance (a
                  pause of 1 s or more always ends a segment, see
                  :func:`lantern.predict.transcribe.transcribe`).

Speakers: folders and recordings carry no speaker identity and lantern does no
diarisation, so every utterance gets one speaker (``speaker=``, default ``"S1"``). This is
a real limit: the vanilla models use speaker identity for context (own previous turns vs
the other party's), and with one speaker there are no speaker turns, so a two-person
recording is read as a monologue. Use a conversation file with a ``speaker`` column when
the speakers matter.

Long audio is refused before any decoding (``max_duration_s``, ``--max-duration`` on the
command line): Whisper-base int8 runs about 3-5x faster than real time on two CPU cores
(slower on many short turns: one encoder pass per speech clip). Conversation files are
bounded the same way, before any feature is computed: at most ``max_utterances``
utterances of at most ``max_text_chars`` characters each, in a file of at most
``max_input_bytes`` (``benchmarks/predict-bounds.json`` measures the largest such input).

Media paths inside a conversation file are resolved against the file's folder (symbolic
links followed); errors name both what the file says and where it led. With
``media_paths=False`` (the web app) any such path is refused before it is used.
"""

from __future__ import annotations

import re
import sys
import tempfile
import time
from collections import Counter
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from lantern.data.dialogues import Dialogue, LabelSet, Utterance
from lantern.errors import ConfigError, DataError
from lantern.predict.media import (MEDIA_SUFFIXES, MediaInfo, check_duration, extract_audio,
                                   input_kind, probe, supported_suffixes, wav_duration)

KINDS = ("conversation", "folder", "recording")
DEFAULT_SPEAKER = "S1"
DEFAULT_MAX_DURATION_S = 1800.0
DEFAULT_MAX_TEXT_CHARS = 2_000
DEFAULT_MAX_UTTERANCES = 1_000
DEFAULT_MAX_INPUT_BYTES = 50 * 1024 * 1024


@dataclass
class PredictInput:
    """What :func:`load_input` read.

    ``dialogues`` are in the split ``"test"``, like the conversation loader's. For
    ``recording`` inputs ``Utterance.media`` is the whole recording and ``start``/``end``
    locate the utterance in it (cut them for audio features: ``segment=True``); for
    ``folder`` inputs the media is one file per utterance and ``start``/``end`` place the
    files one after another on a common timeline. ``transcription`` is None when nothing
    was transcribed. ``seconds`` is the wall time of audio extraction and transcription
    (Whisper model load included). ``work_files`` are the WAVs written into ``workdir``.
    """

    path: Path
    kind: str
    dialogues: list[Dialogue]
    label_set: LabelSet
    transcription: dict | None = None
    seconds: float = 0.0
    work_files: tuple[Path, ...] = ()

    @property
    def utterances(self) -> list[Utterance]:
        return [u for d in self.dialogues for u in d.utterances]

    def remove_work_files(self) -> None:
        """Delete the WAVs this input wrote (a failed run keeps none), and their folder when
        that leaves it empty."""
        for wav in self.work_files:
            wav.unlink(missing_ok=True)
        for folder in {w.parent for w in self.work_files}:
            with suppress(OSError):   # not empty: other files are not ours to remove
                folder.rmdir()


def load_input(path: str | Path, *, max_duration_s: float = DEFAULT_MAX_DURATION_S,
               language: str | None = None, task: str = "auto", speaker: str | None = None,
               progress: bool = False, workdir: str | Path | None = None,
               label_set: str | None = None, max_text_chars: int | None = DEFAULT_MAX_TEXT_CHARS,
               max_utterances: int | None = DEFAULT_MAX_UTTERANCES,
               max_input_bytes: int | None = DEFAULT_MAX_INPUT_BYTES,
               media_paths: bool = True) -> PredictInput:
    """Read a conversation file, a folder of clips or a recording (see the module docstring).

    ``language``/``task`` go to :func:`lantern.predict.transcribe.transcribe` (``task="auto"``
    translates non-English speech to English, for the English-only text model).
    ``speaker`` names the single speaker of folder and recording inputs (default ``"S1"``;
    ignored for conversation files, which name their speakers). ``workdir`` keeps the
    extracted 16 kHz WAVs (their paths go to ``Utterance.meta["wav"]``); None uses a
    temporary folder that is deleted. ``label_set`` names the classes to predict (default
    ``6way``); a conversation file's labels are checked against it. ``max_duration_s``
    bounds the total audio to transcribe; ``max_text_chars``, ``max_utterances`` and
    ``max_input_bytes`` bound conversation files (None: unbounded), and ``media_paths=False``
    refuses media paths inside them (see the module docstring).
    Every problem with the input raises :class:`DataError` naming the file.
    """
    from lantern.predict.transcribe import TASKS

    if task not in TASKS:
        raise ConfigError(f"unknown transcription task {task!r}; use one of {', '.join(TASKS)}")
    if speaker is not None and not str(speaker).strip():
        raise ConfigError("the speaker name must not be empty")
    speaker = str(speaker).strip() if speaker is not None else DEFAULT_SPEAKER
    path = Path(path)
    if not path.exists():
        raise DataError("input not found: give a conversation file (.jsonl, .json, .csv), an "
                        "audio or video recording, or a folder of clips", path=path)
    _default_label_set(label_set)  # an unknown name fails before any work
    options = _Options(max_duration_s=float(max_duration_s), language=language, task=task,
                       speaker=speaker, progress=progress, max_text_chars=max_text_chars,
                       max_utterances=max_utterances, media_paths=media_paths)
    if path.is_dir():
        return _load_folder(path, options, workdir, label_set)
    if not path.is_file():
        raise DataError("not a regular file or folder", path=path)
    kind = input_kind(path)
    size = path.stat().st_size
    if size == 0:
        raise DataError("empty file (0 bytes)", path=path)
    if kind == "conversation":
        if max_input_bytes is not None and size > max_input_bytes:
            raise DataError(f"conversation file of {size / 2**20:.1f} MB; at most "
                            f"{max_input_bytes / 2**20:.0f} MB (split it)", path=path)
        return _load_conversation(path, options, workdir, label_set)
    return _load_recording(path, options, workdir, label_set)


@dataclass
class _Options:
    max_duration_s: float
    language: str | None
    task: str
    speaker: str
    progress: bool
    max_text_chars: int | None = DEFAULT_MAX_TEXT_CHARS
    max_utterances: int | None = DEFAULT_MAX_UTTERANCES
    media_paths: bool = True


def _default_label_set(name: str | None) -> LabelSet:
    from lantern.data.labels import LABEL_SETS

    name = name or "6way"
    if name not in LABEL_SETS:
        raise ConfigError(f"unknown label set {name!r}; use one of {sorted(LABEL_SETS)}")
    return LABEL_SETS[name]


@contextmanager
def _workdir(workdir: str | Path | None) -> Iterator[tuple[Path, bool]]:
    """(folder for WAVs, whether they outlive this call). A kept folder keeps them only when
    the call succeeds: on an error the files it added are removed, and a folder made here is
    removed again when it is left empty."""
    if workdir is not None:
        folder = Path(workdir)
        existed = folder.is_dir()
        before = set(folder.iterdir()) if existed else set()
        folder.mkdir(parents=True, exist_ok=True)
        try:
            yield folder, True
        except BaseException:
            for added in set(folder.iterdir()) - before:
                if added.is_file() and not added.is_symlink():
                    added.unlink(missing_ok=True)
            raise
        finally:
            if not existed:
                with suppress(OSError):   # only succeeds when empty
                    folder.rmdir()
    else:
        with tempfile.TemporaryDirectory(prefix="lantern-predict-") as tmp:
            yield Path(tmp), False


def _say(options: _Options, message: str) -> None:
    if options.progress:
        print(message, file=sys.stderr, flush=True)


def _safe_name(text: str) -> str:
    return re.sub(r"[^\w.-]+", "_", text)[:80] or "utt"


def natural_key(name: str) -> tuple:
    """Sort key that orders digit runs by value: ``clip2`` before ``clip10``.

    >>> sorted(["clip10.wav", "clip2.wav", "Clip1.wav"], key=natural_key)
    ['Clip1.wav', 'clip2.wav', 'clip10.wav']
    """
    parts = re.split(r"(\d+)", name.lower())
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts), name


class _Transcriber:
    """Extracts and transcribes clips, keeping what the ``transcription`` summary needs."""

    def __init__(self, options: _Options, folder: Path, keep: bool):
        self.options, self.folder, self.keep = options, folder, keep
        self.runs: list[tuple[str | None, float, object]] = []  # (utterance id, offset, Transcript)
        self.wavs: list[Path] = []  # written into a kept folder
        self.audio = 0.0  # seconds extracted so far
        self.started = time.perf_counter()

    def run(self, media: Path, uid: str | None, *, start: float | None = None,
            end: float | None = None, offset: float = 0.0, limit_path: Path | None = None):
        """Extract ``media`` (or its ``[start, end]`` span) to WAV and transcribe it. With
        ``limit_path``, the running total of audio is checked against the duration limit
        after extraction (for files whose duration ffprobe could not tell) and before
        transcription."""
        from lantern.predict.transcribe import transcribe

        wav = self.folder / f"{len(self.runs):04d}_{_safe_name(uid or media.stem)}.wav"
        if self.keep:
            self.wavs.append(wav)
        extract_audio(media, wav, start=start, end=end)
        seconds = wav_duration(wav)
        if limit_path is not None:
            check_duration(self.audio + seconds, self.options.max_duration_s, path=limit_path,
                           what="the audio")
        self.audio += seconds
        span = (f" [{start or 0:.2f}-{end if end is not None else 'end'}]"
                if start is not None or end is not None else "")
        _say(self.options, f"transcribing {media.name}{span} ({seconds:.1f} s)")
        transcript = transcribe(wav, language=self.options.language, task=self.options.task,
                                progress=self.options.progress)
        self.runs.append((uid, offset, transcript))
        return transcript, wav

    @property
    def seconds(self) -> float:
        return round(time.perf_counter() - self.started, 3) if self.runs else 0.0

    def summary(self, speakers: str) -> dict | None:
        if not self.runs:
            return None
        from lantern.predict.transcribe import WHISPER_MODEL

        transcripts = [t for _, _, t in self.runs]
        languages = Counter(t.language for t in transcripts if t.segments) or \
            Counter(t.language for t in transcripts)
        language = languages.most_common(1)[0][0]
        probs = [t.language_probability for t in transcripts if t.language == language]
        tasks = {t.task for t in transcripts}
        out = {"model": WHISPER_MODEL, "language": language,
               "language_probability": round(sum(probs) / len(probs), 4),
               "task": tasks.pop() if len(tasks) == 1 else "mixed", "speakers": speakers,
               "duration": round(sum(t.duration for t in transcripts), 3),
               "segments": [{"utterance_id": uid, "start": round(offset + s.start, 3),
                             "end": round(offset + s.end, 3), "text": s.text}
                            for uid, offset, t in self.runs for s in t.segments]}
        if len(languages) > 1:
            out["languages"] = dict(languages)
        return out


def _utterance_transcript(transcript, wav: Path, keep: bool) -> dict:
    meta = {"transcript": {"language": transcript.language,
                           "language_probability": transcript.language_probability,
                           "task": transcript.task,
                           "segments": [[s.start, s.end, s.text] for s in transcript.segments]}}
    if not transcript.segments:
        meta["transcript"]["no_speech"] = True
    if keep:
        meta["wav"] = str(wav)
    return meta


def _single_speaker(options: _Options) -> str:
    return f"single speaker {options.speaker!r} (no diarisation)"


# --- the three kinds of input ------------------------------------------------------------


def _load_recording(path: Path, options: _Options, workdir,
                    label_set: str | None) -> PredictInput:
    info = _probe_audio(path)
    check_duration(info.duration, options.max_duration_s, path=path)  # before any decoding
    _say(options, f"{path.name}: {info.duration or 0:.1f} s of {info.modality}")
    stem = path.stem or "recording"
    with _workdir(workdir) as (folder, keep):
        worker = _Transcriber(options, folder, keep)
        transcript, wav = worker.run(path, stem, limit_path=path)
        if not transcript.segments:
            raise DataError("no speech found in this recording (the voice activity filter "
                            "found no speech, or Whisper produced no text)", path=path,
                            field="media")
        media = {info.modality: str(path.resolve())}
        utterances = []
        for i, seg in enumerate(transcript.segments):
            meta = {"segment": i, "language": transcript.language, "task": transcript.task}
            if keep:
                meta["wav"] = str(wav)
            utterances.append(Utterance(id=f"{stem}_{i}", speaker=options.speaker, text=seg.text,
                                        media=dict(media), start=seg.start, end=seg.end,
                                        meta=meta))
        summary = worker.summary(_single_speaker(options))
        for entry, utt in zip(summary["segments"], utterances):  # one utterance per segment
            entry["utterance_id"] = utt.id
        return PredictInput(path, "recording", [Dialogue(stem, utterances, "test")],
                            _default_label_set(label_set), summary, worker.seconds,
                            tuple(worker.wavs))


def _probe_audio(path: Path) -> MediaInfo:
    info = probe(path)
    if not info.has_audio:
        raise DataError("this file has no audio track to transcribe", path=path, field="media")
    return info


def _load_folder(folder: Path, options: _Options, workdir,
                 label_set: str | None) -> PredictInput:
    files = sorted((p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
                    and p.suffix.lower() in MEDIA_SUFFIXES), key=lambda p: natural_key(p.name))
    if not files:
        raise DataError(f"no audio or video files in this folder (supported: "
                        f"{' '.join(MEDIA_SUFFIXES)})", path=folder)
    # Probe everything first: a damaged file or an over-long folder fails before any work.
    infos = [_probe_audio(p) for p in files]
    known = [i.duration for i in infos if i.duration is not None]
    check_duration(sum(known), options.max_duration_s, path=folder, what="the folder's audio")
    name = folder.resolve().name or "folder"
    utterances: list[Utterance] = []
    with _workdir(workdir) as (work, keep):
        worker = _Transcriber(options, work, keep)
        clock = 0.0
        for i, (file, info) in enumerate(zip(files, infos)):
            uid = f"{name}_{i}"
            transcript, wav = worker.run(file, uid, offset=clock, limit_path=folder)
            length = info.duration if info.duration is not None else wav_duration(wav)
            utterances.append(Utterance(
                id=uid, speaker=options.speaker, text=transcript.text,
                media={info.modality: str(file.resolve())}, start=round(clock, 3),
                end=round(clock + length, 3),
                meta={"file": file.name, **_utterance_transcript(transcript, wav, keep)}))
            clock += length
        if not any(u.text for u in utterances):
            raise DataError(f"no speech found in any of the {len(files)} file(s)", path=folder,
                            field="media")
        return PredictInput(folder, "folder", [Dialogue(name, utterances, "test")],
                            _default_label_set(label_set), worker.summary(_single_speaker(options)),
                            worker.seconds, tuple(worker.wavs))


def _load_conversation(path: Path, options: _Options, workdir,
                       label_set: str | None) -> PredictInput:
    from lantern.data.conversation import load_conversation

    dataset = load_conversation(path, label_set=label_set, max_text_chars=options.max_text_chars,
                                max_utterances=options.max_utterances,
                                media_paths=options.media_paths)
    dialogues = dataset.dialogues("test")
    jobs = []  # (utterance, media path, start, end)
    total = 0.0
    for u in (u for d in dialogues for u in d.utterances):
        if u.text.strip():
            continue
        key = "audio" if "audio" in u.media else "video" if "video" in u.media else None
        if key is None:
            continue  # image-only utterance: nothing to transcribe
        where = {"path": path, "line": u.meta.get("line"), "field": key}
        media = Path(u.media[key])
        # Say what the file wrote and where it led (relative to the file's folder, links
        # followed), so nobody mistakes which file on this machine is meant.
        given = u.meta.get("media_given", {}).get(key, str(media))
        shown = repr(given) if given == str(media) else f"{given!r} (resolved to {media})"
        if not media.is_file():
            raise DataError(f"utterance {u.id}: {key} file {shown} not found", **where)
        if media.suffix.lower() not in MEDIA_SUFFIXES:
            raise DataError(f"utterance {u.id}: {key} file {shown}: unsupported file type "
                            f"{media.suffix!r}; supported: {supported_suffixes()}", **where)
        try:
            info = _probe_audio(media)
        except DataError as exc:  # say which utterance of which file points at it
            raise DataError(f"utterance {u.id} (line {u.meta.get('line')} of {path.name}): "
                            f"{exc.message}", path=media, field=exc.field) from None
        if u.start is not None and info.duration is not None and u.start >= info.duration:
            raise DataError(f"utterance {u.id}: start {u.start} s is past the end of {media.name} "
                            f"({info.duration:.2f} s); start/end are seconds into the media file",
                            path=path, line=u.meta.get("line"), field="start")
        end = u.end if u.end is not None else info.duration
        if end is not None:
            total += max(0.0, (min(end, info.duration or end)) - (u.start or 0.0))
        jobs.append((u, media, u.start, u.end))
    check_duration(total, options.max_duration_s, path=path, what="the audio to transcribe")
    if not jobs:   # nothing to transcribe: no work folder
        return PredictInput(path, "conversation", dialogues, dataset.label_set)
    with _workdir(workdir) as (work, keep):
        worker = _Transcriber(options, work, keep)
        for u, media, start, end in jobs:
            transcript, wav = worker.run(media, u.id, start=start, end=end, offset=start or 0.0,
                                         limit_path=path)
            u.text = transcript.text
            u.meta.update(_utterance_transcript(transcript, wav, keep))
        summary = worker.summary("from the conversation file")
        return PredictInput(path, "conversation", dialogues, dataset.label_set, summary,
                            worker.seconds, tuple(worker.wavs))


__all__ = ["KINDS", "PredictInput", "load_input", "natural_key", "DEFAULT_SPEAKER",
           "DEFAULT_MAX_DURATION_S", "DEFAULT_MAX_TEXT_CHARS", "DEFAULT_MAX_UTTERANCES",
           "DEFAULT_MAX_INPUT_BYTES"]
