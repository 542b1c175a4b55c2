"""Facial action units from MediaPipe blendshapes, the MERR way: an AU timeline per clip, the
clip's frequent AUs, the peak frame, AU phrases and an AU-combination pseudo-label.

MediaPipe gives 52 blendshape scores in [0, 1] per face; :data:`BLENDSHAPE_AU` maps those with
an action-unit counterpart (left and right averaged). An AU is *active* in a frame when its
score reaches :data:`ACTIVE` (OpenFace's intensity threshold of 1 on its 0-5 scale, rescaled
to 0-1 and raised to 0.25 because blendshape scores of a resting face sit near 0.1); it is
*frequent* in a clip when active in at least :data:`FREQUENT` of the frames with a face. The
peak frame has the highest summed score of the frequent AUs (MERR's peak frame).

>>> shapes = {"mouthSmileLeft": 0.8, "mouthSmileRight": 0.6, "cheekSquintLeft": 0.5, "cheekSquintRight": 0.5}
>>> aus = au_scores(shapes)
>>> round(aus["AU12"], 2), round(aus["AU6"], 2)
(0.7, 0.5)
>>> pseudo_label({"AU6", "AU12"})
'happy'
>>> au_phrases(["AU12", "AU4"])
['lip corners pulled up (smiling)', 'brows lowered and drawn together']
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: AU -> the blendshapes that measure it (averaged), from issue #12's mapping
BLENDSHAPE_AU = {
    "AU1": ("browInnerUp",), "AU2": ("browOuterUpLeft", "browOuterUpRight"),
    "AU4": ("browDownLeft", "browDownRight"), "AU5": ("eyeWideLeft", "eyeWideRight"),
    "AU6": ("cheekSquintLeft", "cheekSquintRight"), "AU7": ("eyeSquintLeft", "eyeSquintRight"),
    "AU9": ("noseSneerLeft", "noseSneerRight"), "AU10": ("mouthUpperUpLeft", "mouthUpperUpRight"),
    "AU12": ("mouthSmileLeft", "mouthSmileRight"), "AU14": ("mouthDimpleLeft", "mouthDimpleRight"),
    "AU15": ("mouthFrownLeft", "mouthFrownRight"), "AU17": ("mouthShrugLower",),
    "AU20": ("mouthStretchLeft", "mouthStretchRight"), "AU23": ("mouthPressLeft", "mouthPressRight"),
    "AU26": ("jawOpen",),
}
PHRASES = {
    "AU1": "inner brows raised", "AU2": "outer brows raised", "AU4": "brows lowered and drawn together",
    "AU5": "upper eyelids raised (eyes wide)", "AU6": "cheeks raised", "AU7": "eyelids tightened",
    "AU9": "nose wrinkled", "AU10": "upper lip raised", "AU12": "lip corners pulled up (smiling)",
    "AU14": "dimpled mouth corners", "AU15": "lip corners pulled down", "AU17": "chin raised",
    "AU20": "lips stretched sideways", "AU23": "lips tightened", "AU26": "jaw dropped (mouth open)",
}
#: MERR's AU combinations per emotion (AU16 of disgust has no blendshape: AU9 + AU15 here)
RULES = {
    "happy": ("AU6", "AU12"), "sad": ("AU1", "AU4", "AU15"), "surprise": ("AU1", "AU2", "AU5", "AU26"),
    "angry": ("AU4", "AU5", "AU7", "AU23"), "fear": ("AU1", "AU2", "AU4", "AU5", "AU7", "AU20", "AU26"),
    "disgust": ("AU9", "AU15"),
}
ACTIVE = 0.25
FREQUENT = 0.3


def au_scores(blendshapes: dict[str, float]) -> dict[str, float]:
    """AU -> score in [0, 1] from one face's blendshape scores."""
    return {au: float(np.mean([blendshapes.get(b, 0.0) for b in names]))
            for au, names in BLENDSHAPE_AU.items()}


def au_phrases(aus) -> list[str]:
    return [PHRASES[a] for a in aus if a in PHRASES]


def pseudo_label(active: set[str]) -> str:
    """The emotion whose whole AU combination is active (the longest one wins); ``neutral``
    when none is."""
    hits = [(len(aus), emo) for emo, aus in RULES.items() if set(aus) <= active]
    return max(hits)[1] if hits else "neutral"


@dataclass
class AUTimeline:
    """AU scores per sampled frame (None where no face was found)."""

    frames: list[dict[str, float] | None] = field(default_factory=list)

    @property
    def face_frames(self) -> list[int]:
        return [i for i, f in enumerate(self.frames) if f is not None]

    def frequent(self) -> list[str]:
        faces = [self.frames[i] for i in self.face_frames]
        if not faces:
            return []
        share = {au: np.mean([f[au] >= ACTIVE for f in faces]) for au in BLENDSHAPE_AU}
        return [au for au in BLENDSHAPE_AU if share[au] >= FREQUENT]

    def peak_index(self) -> int | None:
        """The face frame with the highest summed score of the frequent AUs (of all AUs when
        none is frequent); None without a face."""
        idx = self.face_frames
        if not idx:
            return None
        aus = self.frequent() or list(BLENDSHAPE_AU)
        return max(idx, key=lambda i: sum(self.frames[i][a] for a in aus))

    def active_at(self, index: int) -> list[str]:
        frame = self.frames[index] or {}
        return [au for au in BLENDSHAPE_AU if frame.get(au, 0.0) >= ACTIVE]
