"""A tone-of-voice phrase from prosody: pitch level and range, loudness and speaking rate of
a clip against its speaker's (or the corpus's) norms, from eGeMAPSv02 functionals.

>>> norms = ProsodyNorms.fit(np.array([[30.0, 3.0, 1.0, 3.0], [32.0, 5.0, 2.0, 4.0]]))
>>> tone_phrases(np.array([36.0, 4.0, 3.0, 3.5]), norms)
['high-pitched', 'loud']
>>> tone_phrases(np.array([31.0, 4.0, 1.5, 3.5]), norms)
['an even, ordinary tone']
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: eGeMAPSv02 functionals used, by their openSMILE names, and their indices in the 88-d vector
PROSODY = {"pitch": ("F0semitoneFrom27.5Hz_sma3nz_amean", 0),
           "pitch_range": ("F0semitoneFrom27.5Hz_sma3nz_pctlrange0-2", 5),
           "loudness": ("loudness_sma3_amean", 10),
           "rate": ("VoicedSegmentsPerSec", 82)}
WORDS = {"pitch": ("low-pitched", "high-pitched"), "pitch_range": ("flat intonation", "lively, varied intonation"),
         "loudness": ("soft and quiet", "loud"), "rate": ("slow speech", "fast speech")}
#: standard deviations from the norm before a trait is named
Z = 1.0


def prosody_of(egemaps: np.ndarray) -> np.ndarray:
    """(..., 4) pitch, pitch range, loudness, rate out of (..., 88) eGeMAPS vectors."""
    return np.asarray(egemaps, dtype=np.float64)[..., [i for _, i in PROSODY.values()]]


@dataclass(frozen=True)
class ProsodyNorms:
    mean: np.ndarray
    std: np.ndarray
    n: int

    @classmethod
    def fit(cls, prosody: np.ndarray) -> "ProsodyNorms":
        x = np.asarray(prosody, dtype=np.float64).reshape(-1, len(PROSODY))
        std = x.std(axis=0)
        return cls(x.mean(axis=0), np.where(std < 1e-9, 1.0, std), int(x.shape[0]))


def tone_phrases(prosody: np.ndarray, norms: ProsodyNorms) -> list[str]:
    """The traits more than :data:`Z` standard deviations from the norms, in a fixed order."""
    z = (np.asarray(prosody, np.float64) - norms.mean) / norms.std
    out = [WORDS[k][1] if v > 0 else WORDS[k][0] for k, v in zip(PROSODY, z) if abs(v) > Z]
    return out or ["an even, ordinary tone"]
