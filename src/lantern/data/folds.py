"""Cross-validation folds over a dataset's train and validation dialogues, for model selection.

IEMOCAP's validation split is 12 dialogues: models a point apart swap places with the seed.
Fold ``k`` of ``folds`` holds out one group of the pooled train+valid dialogues (IEMOCAP: one
recording session, so its speakers are unseen in training) as the split ``heldout``; the rest
keep their own split, so the model trains on the other groups' train dialogues and stops early
on their valid dialogues. The held-out group is scored once, never used to stop or choose, and
over all folds every train+valid dialogue is predicted by a model that never saw it. The test
split is left as it is (and is not used to choose).

A training config selects a fold with ``cv: {fold: 0, folds: 4, group: '^Ses\\d+'}``
(``group``: a regular expression whose first match in a dialogue id names its group; without
it every dialogue is its own group). ``scripts/cv_select.py`` runs every fold of every
candidate and ranks them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

from lantern.data.dialogues import Dialogue, EmotionDataset
from lantern.errors import ConfigError

POOLED = ("train", "valid")
HELD_OUT = "heldout"   # the split a fold scores


@dataclass(frozen=True)
class CrossValidationFold:
    """``cv:`` of a training config: which fold of the pooled train+valid dialogues validates."""

    key: ClassVar[str] = "cv"
    fold: int
    folds: int
    group: str | None = None

    def __post_init__(self) -> None:
        if not (isinstance(self.folds, int) and self.folds >= 2):
            raise ConfigError(f"cv.folds must be an integer >= 2, got {self.folds!r}")
        if not (isinstance(self.fold, int) and 0 <= self.fold < self.folds):
            raise ConfigError(f"cv.fold must be an integer in 0..{self.folds - 1}, got {self.fold!r}")
        if self.group is not None:
            try:
                re.compile(self.group)
            except re.error as exc:
                raise ConfigError(f"cv.group is not a regular expression: {exc}") from None

    @classmethod
    def of(cls, cfg: dict) -> "CrossValidationFold | None":
        raw = cfg.get(cls.key)
        if raw is None:
            return None
        if not isinstance(raw, dict) or not {"fold", "folds"} <= set(raw):
            raise ConfigError("cv: needs {fold: K, folds: N} (and optionally group: REGEX)")
        return cls(**raw)

    def group_of(self, dialogue: Dialogue) -> str:
        if self.group is None:
            return dialogue.id
        match = re.search(self.group, dialogue.id)
        if match is None:
            raise ConfigError(f"cv.group {self.group!r} does not match dialogue id {dialogue.id!r}")
        return match.group(0)


def cross_validation_fold(ds: EmotionDataset, cv: CrossValidationFold) -> EmotionDataset:
    """``ds`` with the dialogues of fold ``cv.fold``'s groups (sorted group names dealt
    round-robin over the folds) moved from train and valid into :data:`HELD_OUT`."""
    pool = [d for split in POOLED for d in ds.dialogues(split)]
    group = {d.id: cv.group_of(d) for d in pool}
    groups = sorted(set(group.values()))
    if len(groups) < cv.folds:
        raise ConfigError(f"cv: {len(groups)} groups of dialogues in {ds.name}'s train+valid "
                          f"cannot make {cv.folds} folds")
    held_out = set(groups[cv.fold::cv.folds])
    splits = {s: list(ds.dialogues(s)) for s in ds.splits if s not in POOLED}
    for split in POOLED:
        splits[split] = [d for d in ds.dialogues(split) if group[d.id] not in held_out]
        if not splits[split]:
            raise ConfigError(f"cv: fold {cv.fold} of {cv.folds} leaves {ds.name} no {split} dialogues")
    splits[HELD_OUT] = [Dialogue(d.id, d.utterances, HELD_OUT) for d in pool if group[d.id] in held_out]
    source = dict(ds.source, cv={"fold": cv.fold, "folds": cv.folds, "group": cv.group,
                                 "held_out_groups": sorted(held_out)})
    return EmotionDataset(ds.name, ds.label_set, splits, source, ds.vad_scale)
