"""Speech to text for ``lantern predict``: Whisper-base (CTranslate2) through faster-whisper.

The model files and the process-wide model live in :mod:`lantern.features.whisper_model`
(the ``audio:whisper`` features use the same model); they are re-exported here.

faster-whisper (and CTranslate2, onnxruntime) are imported inside the functions, so importing
this module costs nothing. The loaded model is kept per process: the web app transcribes
many requests with one model load (about 3 s).

>>> WHISPER_MODEL, TASKS
('whisper-base', ('auto', 'transcribe', 'translate'))
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from lantern.errors import ConfigError, LanternError
from lantern.features.whisper_model import (INSTALL_HINT, MODEL_FILES,  # noqa: F401 (re-exported)
                                            MODEL_PARTS, MODEL_SHA256, WHISPER_MODEL, load_model,
                                            whisper_model_dir)

TASKS = ("auto", "transcribe", "translate")
SAMPLE_RATE = 16000
#: A pause at least this long (seconds) ends a segment, i.e. an utterance.
MIN_PAUSE_S = 1.0
# Greedy decoding: beam search (faster-whisper's default 5) costs ~2-3x the time on CPU for
# a small gain on clean speech; our downstream models read short utterances, not subtitles.
_BEAM_SIZE = 1


@dataclass(frozen=True)
class Segment:
    """One stretch of speech, in seconds from the start of the audio."""

    start: float
    end: float
    text: str


@dataclass
class Transcript:
    """Whisper's output for one audio file.

    ``task`` is the task actually run: with ``task="auto"`` non-English speech is translated
    (``"translate"``), because the text emotion models downstream read English only.
    """

    segments: list[Segment]
    language: str
    language_probability: float
    task: str
    duration: float
    model: str = WHISPER_MODEL
    seconds: float = 0.0
    meta: dict = field(default_factory=dict)

    @property
    def text(self) -> str:
        return " ".join(s.text for s in self.segments if s.text)


# --- transcription ----------------------------------------------------------------------


def _check_options(language: str | None, task: str) -> str | None:
    if task not in TASKS:
        raise ConfigError(f"unknown transcription task {task!r}; use one of {', '.join(TASKS)}")
    if language is None or language == "auto":
        return None
    from faster_whisper.tokenizer import _LANGUAGE_CODES

    code = language.strip().lower()
    if code not in _LANGUAGE_CODES:
        raise ConfigError(f"unknown language {language!r}: give a Whisper language code such as "
                          f"en, zh, de, fr, es (or leave it out to detect the language)")
    return code


def _read_audio(wav_path: Path):
    """16 kHz mono float32 samples. Our own WAVs are read directly; anything else goes
    through faster-whisper's decoder (PyAV)."""
    import wave

    import numpy as np

    try:
        with wave.open(str(wav_path), "rb") as w:
            if (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (SAMPLE_RATE, 1, 2):
                data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
                return data.astype(np.float32) / 32768.0  # faster-whisper's own scaling
    except (wave.Error, EOFError):
        pass
    from faster_whisper import decode_audio

    return decode_audio(str(wav_path), sampling_rate=SAMPLE_RATE)


def speech_chunks(audio) -> list[tuple[float, float]]:
    """Speech regions (seconds) found by the Silero VAD model that faster-whisper ships.

    Regions closer than :data:`MIN_PAUSE_S` merge; blips under 0.25 s are dropped."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    options = VadOptions(min_silence_duration_ms=int(MIN_PAUSE_S * 1000),
                         min_speech_duration_ms=250)
    return [(c["start"] / SAMPLE_RATE, c["end"] / SAMPLE_RATE)
            for c in get_speech_timestamps(audio, options, sampling_rate=SAMPLE_RATE)]


def _clamp(start: float, end: float, chunks: list[tuple[float, float]]) -> tuple[float, float]:
    """Keep a segment inside the speech clip it starts in: Whisper's last timestamp in a
    clip can overshoot (a 1 s clip ending at "2.0"), which would overlap the next utterance.

    >>> _clamp(0.0, 2.0, [(0.0, 1.0), (3.0, 4.0)]), _clamp(3.2, 3.1, [(0.0, 1.0), (3.0, 4.0)])
    ((0.0, 1.0), (3.2, 4.0))
    """
    clip_start, clip_end = chunks[0]
    for s, e in chunks:
        if s <= start + 0.01:
            clip_start, clip_end = s, e
    start = min(max(start, clip_start), clip_end)
    end = min(end, clip_end)
    if end <= start:
        end = clip_end
    return round(start, 3), round(end, 3)


def transcribe(wav_path: str | Path, language: str | None = None, task: str = "auto",
               progress: bool = False) -> Transcript:
    """Transcribe a 16 kHz mono WAV (as :func:`lantern.predict.media.extract_audio` writes).

    ``language``: a Whisper code (``"en"``, ``"zh"``...) or None to detect it from the first
    30 s of speech. ``task``: ``"transcribe"`` (text in the spoken language), ``"translate"``
    (English text) or ``"auto"``: translate when the language is not English, since the
    emotion text model is English-only.

    Voice activity detection runs first (Silero, as faster-whisper's ``vad_filter=True``),
    but its speech regions go to Whisper as separate clips (``clip_timestamps``) instead of
    being glued together: with ``vad_filter`` the silence between two sentences disappears
    and Whisper-base tends to run them into one segment, while here a pause of
    :data:`MIN_PAUSE_S` or more always ends a segment (an utterance downstream), and long
    speech is still split at Whisper's sentence boundaries. It also lets the language be
    detected once, on speech only, so ``task="auto"`` needs a single decoding pass. The
    price is one encoder pass per clip: audio with many short turns costs more than with
    ``vad_filter``. Audio without speech gives a transcript with no segments (language
    ``"und"`` unless given). Segment times are seconds from the start of the file.
    """
    wav_path = Path(wav_path)
    if not wav_path.is_file():
        raise LanternError(f"{wav_path}: audio file not found")
    code = _check_options(language, task)
    model = load_model()
    started = time.perf_counter()
    audio = _read_audio(wav_path)
    duration = round(len(audio) / SAMPLE_RATE, 3)
    chunks = speech_chunks(audio)
    speech = round(sum(e - s for s, e in chunks), 3)
    probability = 1.0
    if chunks and code is None:
        import numpy as np

        first = np.concatenate([audio[int(s * SAMPLE_RATE):int(e * SAMPLE_RATE)]
                                for s, e in chunks])[:30 * SAMPLE_RATE]
        code, probability, _ = model.detect_language(audio=first)
    run_task = task if task != "auto" else "transcribe" if code in (None, "en") else "translate"
    out: list[Segment] = []
    if chunks:
        clips = [t for span in chunks for t in span]
        segments, _ = model.transcribe(audio, language=code, task=run_task,
                                       beam_size=_BEAM_SIZE, vad_filter=False,
                                       clip_timestamps=clips)
        for seg in segments:
            text = seg.text.strip()
            if not text:
                continue
            start, end = _clamp(float(seg.start), float(seg.end), chunks)
            out.append(Segment(start, end, text))
            if progress:
                print(f"  [{start:7.2f} -> {end:7.2f}] {text}", file=sys.stderr, flush=True)
    return Transcript(segments=out, language=code or "und",
                      language_probability=round(float(probability if chunks or language
                                                       else 0.0), 4),
                      task=run_task, duration=duration,
                      seconds=round(time.perf_counter() - started, 3),
                      meta={"speech_seconds": speech, "clips": len(chunks)})


__all__ = ["WHISPER_MODEL", "TASKS", "MIN_PAUSE_S", "Segment", "Transcript", "whisper_model_dir",
           "load_model", "speech_chunks", "transcribe", "INSTALL_HINT", "MODEL_FILES", "MODEL_PARTS",
           "MODEL_SHA256"]
