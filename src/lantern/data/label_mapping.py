"""Where the corpora's label sets meet: one shared emotion space and each set's map into it.

The four dialogue corpora label different emotions. They meet in the seven classes of
Ekman's basic emotions plus neutral, which MELD and DailyDialog use as they are:

============  ===========================  ==============================================
shared        maps from                    does not map, and why
============  ===========================  ==============================================
neutral       IEMOCAP neu, MELD/DD         EmoryNLP Peaceful (calm, but a positive state of
              neutral, EmoryNLP Neutral    its own on Willcox's wheel; not "no emotion")
joy           IEMOCAP hap *and* exc,       EmoryNLP Powerful (confidence/pride: no Ekman
              MELD joy, DD happiness,      counterpart)
              EmoryNLP Joyful
sadness       sad, sadness, Sad
anger         IEMOCAP ang, MELD/DD         IEMOCAP fru: frustration is annotated apart from
              anger, EmoryNLP Mad          anger in IEMOCAP, and both 4-way conventions of the
                                           literature leave it out
surprise      MELD/DD surprise             (IEMOCAP 6-way and EmoryNLP have none)
fear          MELD/DD fear, EmoryNLP       (IEMOCAP 6-way has none)
              Scared
disgust       MELD/DD disgust              (IEMOCAP and EmoryNLP have none)
============  ===========================  ==============================================

The speech and face sets map one to one (RAVDESS happy/sad/angry/fearful/disgust/surprised,
FER2013 happy/sad/angry/fear/disgust/surprise, and neutral), except RAVDESS *calm*, acted as a
state of its own and left out like EmoryNLP Peaceful.

The shared space is itself a label set, ``shared7`` (:data:`lantern.data.labels.SHARED_7`),
the one a model trained on several corpora at once predicts (:mod:`lantern.data.mix`).

A model of one label set is scored on a corpus of another on the shared classes both can
express (:func:`shared_classes`): the model's probabilities are summed into the shared
classes, the mass of its unmapped classes (IEMOCAP's frustrated, say) is dropped and the
rest renormalised (:func:`project_probs`); gold labels that map outside those classes are
left out and counted (:func:`project_labels`);
:func:`lantern.evaluation.cross_corpus.cross_corpus_scores` does all three. IEMOCAP 6-way on DailyDialog, for one, is
scored on neutral, joy, sadness and anger.

>>> shared_classes("6way", "dailydialog7")
('neutral', 'joy', 'sadness', 'anger')
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from lantern.data.labels import EMOTIC_26, SHARED_7
from lantern.errors import ConfigError

SHARED = SHARED_7.classes

_IEMOCAP4 = {"hap": "joy", "sad": "sadness", "neu": "neutral", "ang": "anger"}
#: label set name -> {class: shared class, or None where it has no counterpart}
TO_SHARED: dict[str, dict[str, str | None]] = {
    "6way": {**_IEMOCAP4, "exc": "joy", "fru": None},
    "4way-merge": dict(_IEMOCAP4),
    "4way-drop": dict(_IEMOCAP4),
    "meld7": {c: c for c in ("neutral", "surprise", "fear", "sadness", "joy", "disgust", "anger")},
    "dailydialog7": {"neutral": "neutral", "happiness": "joy", "surprise": "surprise",
                     "anger": "anger", "sadness": "sadness", "disgust": "disgust", "fear": "fear"},
    "shared7": {c: c for c in SHARED},
    "emorynlp7": {"Joyful": "joy", "Mad": "anger", "Peaceful": None, "Neutral": "neutral",
                  "Sad": "sadness", "Powerful": None, "Scared": "fear"},
    # RAVDESS calm is acted as a state of its own, apart from neutral (like EmoryNLP Peaceful)
    "ravdess8": {"neutral": "neutral", "calm": None, "happy": "joy", "sad": "sadness",
                 "angry": "anger", "fearful": "fear", "disgust": "disgust", "surprised": "surprise"},
    "fer7": {"angry": "anger", "disgust": "disgust", "fear": "fear", "happy": "joy",
             "sad": "sadness", "surprise": "surprise", "neutral": "neutral"},
    "caer7": {"Anger": "anger", "Disgust": "disgust", "Fear": "fear", "Happy": "joy",
              "Neutral": "neutral", "Sad": "sadness", "Surprise": "surprise"},
    # EMOTIC's categories with an Ekman counterpart (Aversion: "disgust, dislike, repulsion" in
    # its definitions); EMOTIC has no neutral, and the other 20 have no counterpart
    "emotic26": {**{c: None for c in EMOTIC_26.classes}, "Anger": "anger", "Aversion": "disgust",
                 "Fear": "fear", "Happiness": "joy", "Sadness": "sadness", "Surprise": "surprise"},
}

__all__ = ["SHARED", "TO_SHARED", "mapping", "shared_classes", "project_probs", "project_labels"]


def mapping(label_set: str, classes: Sequence[str] | None = None) -> dict[str, str | None]:
    """The map of ``label_set`` into :data:`SHARED`; checked against ``classes`` if given."""
    if label_set not in TO_SHARED:
        raise ConfigError(f"no mapping of label set {label_set!r} into the shared classes; "
                          f"known: {', '.join(sorted(TO_SHARED))}")
    m = TO_SHARED[label_set]
    if classes is not None and set(classes) != set(m):
        raise ConfigError(f"label set {label_set!r} has classes {sorted(m)}, not {sorted(classes)}")
    return m


def shared_classes(model_set: str, data_set: str) -> tuple[str, ...]:
    """The shared classes a model of ``model_set`` and gold labels of ``data_set`` both have,
    in :data:`SHARED` order."""
    a = {v for v in mapping(model_set).values() if v}
    b = {v for v in mapping(data_set).values() if v}
    return tuple(c for c in SHARED if c in a and c in b)


def project_probs(probs: np.ndarray, classes: Sequence[str], label_set: str,
                  target: Sequence[str]) -> np.ndarray:
    """(n, len(target)) probabilities: each of ``target``'s shared classes gets the summed
    probability of the classes mapping to it; the rest is dropped and rows renormalised
    (a row with no mass left becomes uniform)."""
    m = mapping(label_set, classes)
    probs = np.asarray(probs, dtype=np.float64)
    out = np.zeros((probs.shape[0], len(target)))
    for j, c in enumerate(classes):
        if m[c] in target:
            out[:, target.index(m[c])] += probs[:, j]
    s = out.sum(axis=1, keepdims=True)
    return np.where(s > 0, out / np.where(s > 0, s, 1.0), 1.0 / len(target))


def project_labels(labels: Sequence[str | None], label_set: str,
                   target: Sequence[str]) -> np.ndarray:
    """Index into ``target`` of each gold label's shared class; -1 where it has none there
    (unknown, unmapped, or a shared class the model cannot express)."""
    m = mapping(label_set)
    out = []
    for label in labels:
        if label is not None and label not in m:
            raise ConfigError(f"label {label!r} is not a class of label set {label_set!r}")
        shared = m.get(label) if label is not None else None
        out.append(target.index(shared) if shared in target else -1)
    return np.asarray(out, dtype=np.int64)
