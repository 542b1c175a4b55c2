"""ffprobe/ffmpeg helpers for ``lantern predict``: what is in a media file, and its audio as WAV.

ffmpeg and ffprobe are run as programs (Debian package ``ffmpeg``), not through Python
bindings: they read every container and codec users throw at us, and a crash in a decoder
cannot take the Python process (or the web app) down with it. Every call uses
``-hide_banner -loglevel error`` (stderr holds only the error, which goes into our message),
``-threads 2``, and never reads stdin (``-nostdin`` for ffmpeg, which would otherwise wait on
a terminal; ffprobe has no such option, so its stdin is /dev/null).

>>> sorted(set(AUDIO_SUFFIXES) & set(VIDEO_SUFFIXES))
['.webm']
>>> input_kind("talk.CSV"), input_kind("clip.mp4")
('conversation', 'media')
>>> input_kind("notes.txt")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
lantern.errors.DataError: notes.txt, field 'suffix': unsupported file type '.txt'; ...
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import wave
from dataclasses import dataclass
from pathlib import Path

from lantern.errors import DataError, LanternError

# The one table of input suffixes: ``lantern predict`` and the web app's upload allow-list
# (lantern.web.uploads) both read these, so the two accept the same files.
AUDIO_SUFFIXES = (".wav", ".mp3", ".flac", ".ogg", ".m4a", ".opus", ".aac", ".webm")
VIDEO_SUFFIXES = (".mp4", ".mkv", ".mov", ".avi", ".webm")
MEDIA_SUFFIXES = tuple(dict.fromkeys(AUDIO_SUFFIXES + VIDEO_SUFFIXES))
CONVERSATION_SUFFIXES = (".jsonl", ".json", ".csv")
#: Every suffix :func:`input_kind` accepts: one input file of ``lantern predict``.
INPUT_SUFFIXES = CONVERSATION_SUFFIXES + MEDIA_SUFFIXES

_COMMON = ("-hide_banner", "-loglevel", "error")
_THREADS = ("-threads", "2")
_PROBE_TIMEOUT_S = 120  # ffprobe reads headers only; minutes means something is wrong


@dataclass(frozen=True)
class MediaInfo:
    """What ffprobe says about a file. ``duration`` is None when the container does not
    store it (some live-recorded WebM/Ogg files); it is then known only after decoding."""

    path: Path
    format_name: str
    duration: float | None
    has_audio: bool
    has_video: bool

    @property
    def modality(self) -> str:
        """``"video"`` or ``"audio"``: the file's key in ``Utterance.media``."""
        return "video" if self.has_video else "audio"


def supported_suffixes() -> str:
    """The accepted suffixes, for error messages."""
    return (f"audio {' '.join(AUDIO_SUFFIXES)}; video {' '.join(VIDEO_SUFFIXES)}; "
            f"conversation files {' '.join(CONVERSATION_SUFFIXES)}")


def input_kind(path: str | Path) -> str:
    """``"conversation"`` or ``"media"`` by suffix (case-insensitive); DataError otherwise."""
    suffix = Path(path).suffix.lower()
    if suffix in CONVERSATION_SUFFIXES:
        return "conversation"
    if suffix in MEDIA_SUFFIXES:
        return "media"
    shown = repr(Path(path).suffix) if suffix else "without a suffix"
    raise DataError(f"unsupported file type {shown}; supported: {supported_suffixes()}",
                    path=path, field="suffix")


def _run(args: list[str], *, path: str | Path, what: str,
         timeout: float | None = None) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True,
                              timeout=timeout, check=False)
    except FileNotFoundError:
        raise LanternError(
            f"{args[0]} is not installed (needed to read audio and video): install the Debian "
            f"package 'ffmpeg' (sudo apt-get install ffmpeg)") from None
    except subprocess.TimeoutExpired:
        raise DataError(f"{what} took longer than {timeout:.0f} s; the file may be damaged",
                        path=path, field="media") from None


def _first_error_line(stderr: bytes, path: str | Path) -> str:
    for line in stderr.decode("utf-8", "replace").splitlines():
        line = line.strip()
        if line:
            # "/abs/clip.wav: Invalid data..." repeats the path that DataError already shows;
            # "[mov,mp4 @ 0x55f5...] moov atom not found" carries a pointer nobody needs.
            for prefix in (f"{path}: ", f"{Path(path).name}: "):
                if line.startswith(prefix):
                    line = line[len(prefix):]
            return re.sub(r" @ 0x[0-9a-f]+\]", "]", line)
    return "no error message"


def _require_media_file(path: str | Path) -> Path:
    path = Path(path)
    if not path.exists():
        raise DataError("file not found", path=path)
    if not path.is_file():
        raise DataError("not a regular file", path=path)
    if path.stat().st_size == 0:
        raise DataError("empty file (0 bytes)", path=path, field="media")
    return path


def probe(path: str | Path) -> MediaInfo:
    """Duration and streams of a media file, from ``ffprobe -of json -show_format -show_streams``.

    A file ffprobe cannot read (corrupted, truncated, not media) raises :class:`DataError`
    (``field="media"``) with ffprobe's first error line. Cover art in MP3/M4A files is a
    "video" stream to ffprobe; it does not count as video here.
    """
    path = _require_media_file(path)
    proc = _run(["ffprobe", *_COMMON, *_THREADS, "-of", "json", "-show_format", "-show_streams",
                 str(path)], path=path, what="ffprobe", timeout=_PROBE_TIMEOUT_S)
    if proc.returncode != 0:
        raise DataError(f"cannot read this file as audio or video (ffprobe: "
                        f"{_first_error_line(proc.stderr, path)}); is it corrupted or truncated?",
                        path=path, field="media")
    try:
        data = json.loads(proc.stdout.decode("utf-8", "replace") or "{}")
    except json.JSONDecodeError:
        raise DataError("ffprobe gave unreadable output", path=path, field="media") from None
    streams = data.get("streams") or []
    fmt = data.get("format") or {}
    has_audio = any(s.get("codec_type") == "audio" for s in streams)
    has_video = any(s.get("codec_type") == "video"
                    and not (s.get("disposition") or {}).get("attached_pic") for s in streams)
    if not streams:
        raise DataError("no audio or video streams in this file", path=path, field="media")
    return MediaInfo(path=path, format_name=str(fmt.get("format_name", "")),
                     duration=_duration(fmt, streams), has_audio=has_audio, has_video=has_video)


def _duration(fmt: dict, streams: list[dict]) -> float | None:
    candidates = [fmt.get("duration")] + [s.get("duration") for s in streams]
    for value in candidates:
        try:
            seconds = float(value)
        except (TypeError, ValueError):
            continue
        if seconds >= 0 and seconds == seconds and seconds != float("inf"):
            return seconds
    return None


def format_duration(seconds: float) -> str:
    """``7200.0`` -> ``'2:00:00'``; ``95.5`` -> ``'1:35'``."""
    total = int(round(seconds))
    h, rest = divmod(total, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def check_duration(seconds: float | None, max_duration_s: float, *, path: str | Path,
                   what: str = "recording") -> None:
    """Refuse audio longer than ``max_duration_s`` before any decoding or transcription:
    Whisper on CPU needs minutes per hour of audio, which a user should opt into knowingly.

    >>> check_duration(60.0, 1800.0, path="a.wav")
    >>> check_duration(7200.0, 1800.0, path="a.ogg")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    lantern.errors.DataError: a.ogg, field 'duration': recording is 2:00:00 long (7200 s), ...
    """
    if max_duration_s <= 0:
        raise LanternError(f"the duration limit must be positive (got {max_duration_s})")
    if seconds is not None and seconds > max_duration_s:
        raise DataError(
            f"{what} is {format_duration(seconds)} long ({seconds:.0f} s), over the limit of "
            f"{max_duration_s:.0f} s ({format_duration(max_duration_s)}); transcription on CPU "
            f"would take roughly {format_duration(seconds / 4)}. To process it anyway raise the "
            f"limit with --max-duration {int(seconds) + 1} (max_duration_s in Python), or cut "
            f"the file shorter", path=path, field="duration")


def extract_audio(path: str | Path, out_wav: str | Path, sample_rate: int = 16000, *,
                  start: float | None = None, end: float | None = None) -> Path:
    """Decode the first audio stream of ``path`` (audio or video) into a mono 16-bit PCM WAV.

    ``start``/``end`` (seconds into the file) cut a segment. The WAV is written to a
    temporary name and renamed, so ``out_wav`` is never half-written. Errors, including a
    segment that holds no audio, raise :class:`DataError` naming ``path``.
    """
    path = _require_media_file(path)
    out_wav = Path(out_wav)
    if start is not None and end is not None and end <= start:
        raise DataError(f"empty segment: end {end} is not after start {start}", path=path,
                        field="end")
    out_wav.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_wav.with_name(f".{out_wav.stem}.{os.getpid()}.tmp.wav")
    args = ["ffmpeg", "-nostdin", *_COMMON, *_THREADS]
    if start is not None and start > 0:
        args += ["-ss", f"{start:.3f}"]  # before -i: fast seek; still sample-exact for audio
    args += ["-i", str(path)]
    if end is not None:
        args += ["-t", f"{end - (start or 0.0):.3f}"]
    args += ["-map", "0:a:0", "-vn", "-sn", "-dn", "-ac", "1", "-ar", str(int(sample_rate)),
             "-c:a", "pcm_s16le", "-f", "wav", "-y", str(tmp)]
    try:
        proc = _run(args, path=path, what="ffmpeg")
        if proc.returncode != 0:
            message = _first_error_line(proc.stderr, path)
            if "matches no streams" in message:
                message = "the file has no audio track"
            raise DataError(f"cannot extract the audio (ffmpeg: {message})", path=path,
                            field="media")
        if wav_duration(tmp) <= 0:
            where = (f" between {start or 0:.2f} s and {end:.2f} s" if end is not None else
                     f" after {start:.2f} s" if start else "")
            raise DataError(f"no audio{where} in this file (start/end are seconds into the "
                            f"media file)", path=path, field="media")
        os.replace(tmp, out_wav)
    finally:
        tmp.unlink(missing_ok=True)
    return out_wav


def wav_duration(path: str | Path) -> float:
    """Seconds of audio in a PCM WAV file (0.0 for a header without samples)."""
    with wave.open(str(path), "rb") as w:
        return w.getnframes() / float(w.getframerate())


__all__ = ["AUDIO_SUFFIXES", "VIDEO_SUFFIXES", "MEDIA_SUFFIXES", "CONVERSATION_SUFFIXES",
           "INPUT_SUFFIXES", "MediaInfo", "probe", "extract_audio", "check_duration", "input_kind",
           "supported_suffixes", "wav_duration", "format_duration"]
