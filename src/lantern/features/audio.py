"""openSMILE functionals of ``utterance.media["audio"]``: eGeMAPSv02 (88-d), ComParE_2016 (6373-d).

Audio is read with soundfile (WAV, FLAC, OGG, ...; no ffmpeg here, so extract the audio
track of a video first), multi-channel files are averaged to mono, and the signal goes to
openSMILE at its native sample rate. With ``segment=True`` only ``[utterance.start,
utterance.end]`` seconds are used (for one recording shared by a whole dialogue).
Non-finite functionals (possible on silence) become 0.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from lantern.errors import ConfigError, DataError
from lantern.features.base import FeatureExtractor, file_key, limit_threads, media_path

FEATURE_SETS = {"eGeMAPSv02": 88, "ComParE_2016": 6373}


def read_audio(path, utterance_id: str, start: float | None = None,
               end: float | None = None) -> tuple[np.ndarray, int]:
    """Mono float32 signal and sample rate, or a :class:`DataError` naming the file."""
    import soundfile as sf

    try:
        info = sf.info(str(path))
        sr = int(info.samplerate)
        first = int(round(start * sr)) if start is not None else 0
        last = int(round(end * sr)) if end is not None else None
        data, sr = sf.read(str(path), start=first, stop=last, dtype="float32", always_2d=True)
    except (RuntimeError, sf.LibsndfileError, ValueError, TypeError) as exc:
        raise DataError(f"utterance {utterance_id}: cannot read audio ({exc})", path=path,
                        field="media.audio") from None
    if data.size == 0:
        raise DataError(f"utterance {utterance_id}: audio is empty"
                        + (f" in [{start}, {end}] s" if start is not None else ""),
                        path=path, field="media.audio")
    signal = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    return np.ascontiguousarray(signal, dtype=np.float32), int(sr)


class AudioFileExtractor(FeatureExtractor):
    """Base of the extractors that read ``utterance.media["audio"]``: the whole file, or with
    ``segment`` (set by the subclass's constructor) only ``[start, end]`` of it."""

    modality = "audio"
    input_media = ("audio",)
    segment = False

    def _span(self, u) -> tuple[float | None, float | None]:
        if not self.segment:
            return None, None
        if u.start is None or u.end is None:
            raise DataError(f"utterance {u.id}: segment=True needs start and end times",
                            path=(u.media or {}).get("audio"), field="start")
        if u.end <= u.start:
            raise DataError(f"utterance {u.id}: end {u.end} is not after start {u.start}",
                            path=(u.media or {}).get("audio"), field="end")
        return u.start, u.end

    def input_key(self, utterance) -> str:
        path = media_path(utterance, "audio", self.name)
        start, end = self._span(utterance)
        return f"{file_key(path)}|{start}|{end}"


class OpenSmileExtractor(AudioFileExtractor):
    """openSMILE functionals of one feature set over the whole utterance.

    Options: ``segment`` (cut ``[start, end]`` from the file; False).
    """

    version = 1
    batch_size = 8
    feature_set = "eGeMAPSv02"

    def __init__(self, segment: bool = False):
        if self.feature_set not in FEATURE_SETS:
            raise ConfigError(f"unknown openSMILE feature set {self.feature_set!r}")
        self.dim = FEATURE_SETS[self.feature_set]
        self.segment = bool(segment)
        self._smile = None

    def options(self) -> dict[str, Any]:
        return {"feature_set": self.feature_set, "level": "functionals", "segment": self.segment}

    def _load(self):
        if self._smile is None:
            limit_threads(2)
            try:
                import opensmile
            except ImportError:
                raise ConfigError(f"{self.name} needs openSMILE: pip install 'lantern-emotion[audio]'") from None
            self._smile = opensmile.Smile(
                feature_set=getattr(opensmile.FeatureSet, self.feature_set),
                feature_level=opensmile.FeatureLevel.Functionals)
        return self._smile

    def extract_batch(self, utterances: Sequence) -> np.ndarray:
        smile = self._load()
        out = np.zeros((len(utterances), self.dim), dtype=np.float32)
        for i, u in enumerate(utterances):
            path = media_path(u, "audio", self.name)
            start, end = self._span(u)
            signal, sr = read_audio(path, u.id, start, end)
            try:
                values = smile.process_signal(signal, sr).to_numpy(dtype=np.float32).reshape(-1)
            except Exception as exc:  # openSMILE raises plain RuntimeErrors on unusable input
                raise DataError(f"utterance {u.id}: openSMILE {self.feature_set} failed ({exc})",
                                path=path, field="media.audio") from None
            if values.size != self.dim:
                raise DataError(f"utterance {u.id}: openSMILE returned {values.size} values, "
                                f"expected {self.dim}", path=path, field="media.audio")
            out[i] = np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)
        return out

    def close(self) -> None:
        self._smile = None


class EGeMAPSExtractor(OpenSmileExtractor):
    """eGeMAPSv02 functionals (88-d): the Geneva minimalistic acoustic parameter set."""

    name = "audio:egemaps"
    feature_set = "eGeMAPSv02"
    dim = 88


class ComParEExtractor(OpenSmileExtractor):
    """ComParE_2016 functionals (6373-d)."""

    name = "audio:compare"
    feature_set = "ComParE_2016"
    dim = 6373
    batch_size = 4
