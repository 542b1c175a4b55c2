"""Typed records shared by every stage: utterances, dialogues, label sets, datasets."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np

SPLITS = ("train", "valid", "test")
VAD_NAMES = ("valence", "arousal", "dominance")


@dataclass(frozen=True)
class LabelSet:
    """An ordered set of emotion classes; ``name`` goes into every result file.

    >>> ls = LabelSet("demo", ("neu", "ang"))
    >>> ls.index("ang"), ls.size
    (1, 2)
    """

    name: str
    classes: tuple[str, ...]
    descriptions: tuple[str, ...] = ()
    #: a person may feel several classes at once (EMOTIC, BoLD): targets are
    #: ``Utterance.labels``, models score each class with a sigmoid, results report mAP
    multi_label: bool = False

    @property
    def size(self) -> int:
        return len(self.classes)

    def index(self, label: str) -> int:
        return self.classes.index(label)


@dataclass
class Utterance:
    """One turn of a dialogue.

    ``label`` indexes the dataset's :class:`LabelSet` (None when unknown).
    ``vad`` holds valence, arousal, dominance on the dataset's scale (IEMOCAP: 1-5).
    ``features`` maps a feature name (e.g. ``"audio:iemocap8"``) to a 1-d vector;
    ``media`` maps a modality (``"audio"``, ``"video"``, ``"image"``) to a file path.
    ``labels`` holds the class indices of a multi-label target (EMOTIC's categories: a person
    can feel several at once; ``label`` is then None), None for single-label data.
    """

    id: str
    speaker: str
    text: str
    label: int | None = None
    vad: tuple[float, float, float] | None = None
    features: dict[str, np.ndarray] = field(default_factory=dict)
    media: dict[str, str] = field(default_factory=dict)
    start: float | None = None
    end: float | None = None
    meta: dict = field(default_factory=dict)
    labels: tuple[int, ...] | None = None


@dataclass
class Dialogue:
    id: str
    utterances: list[Utterance]
    split: str | None = None

    def __len__(self) -> int:
        return len(self.utterances)

    def __iter__(self) -> Iterator[Utterance]:
        return iter(self.utterances)

    @property
    def speakers(self) -> list[str]:
        """Distinct speakers in order of first appearance."""
        return list(dict.fromkeys(u.speaker for u in self.utterances))


@dataclass
class EmotionDataset:
    """A dataset: dialogues per split, one label set, and where it came from."""

    name: str
    label_set: LabelSet
    splits: dict[str, list[Dialogue]]
    source: dict = field(default_factory=dict)
    vad_scale: tuple[float, float] | None = None

    def dialogues(self, split: str) -> list[Dialogue]:
        if split not in self.splits:
            raise KeyError(f"{self.name} has no split {split!r}; it has {sorted(self.splits)}")
        return self.splits[split]

    def utterances(self, split: str) -> list[Utterance]:
        return [u for d in self.dialogues(split) for u in d.utterances]

    def label_counts(self, split: str) -> dict[str, int]:
        counts = Counter(u.label for u in self.utterances(split) if u.label is not None)
        return {name: counts.get(i, 0) for i, name in enumerate(self.label_set.classes)}

    def limit(self, n_dialogues: int | None) -> "EmotionDataset":
        """The first ``n_dialogues`` of every split (for smoke runs and ``--limit``)."""
        if n_dialogues is None:
            return self
        return EmotionDataset(self.name, self.label_set,
                              {s: ds[:n_dialogues] for s, ds in self.splits.items()},
                              dict(self.source, limit=n_dialogues), self.vad_scale)

    def summary(self) -> dict:
        out = {"dataset": self.name, "label_set": self.label_set.name,
               "classes": list(self.label_set.classes), "splits": {}}
        for split, dialogues in self.splits.items():
            utts = [u for d in dialogues for u in d.utterances]
            out["splits"][split] = {
                "dialogues": len(dialogues),
                "utterances": len(utts),
                "labelled": sum(u.label is not None for u in utts),
                "with_vad": sum(u.vad is not None for u in utts),
                "label_counts": self.label_counts(split),
                "features": sorted({k for u in utts for k in u.features}),
            }
        return out
