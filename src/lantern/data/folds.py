"""Cross-validation folds over a dataset's train and validation dialogues, for model selection.

IEMOCAP's validation split is 12 dialogues: models a point apart swap places with the seed.
Selecting on ``folds`` regroupings of the 120 train+valid dialogues, each fold validating on
one group (IEMOCAP: one recording session, so its speakers are unseen in training), scores
every candidate on all 120. The test split is never touched.

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
    """``ds`` with its train and valid dialogues pooled and split again: the groups of fold
    ``cv.fold`` (sorted group names dealt round-robin over the folds) validate, the rest train.
    Test is unchanged."""
    pool = [d for split in POOLED for d in ds.dialogues(split)]
    groups = sorted({cv.group_of(d) for d in pool})
    if len(groups) < cv.folds:
        raise ConfigError(f"cv: {len(groups)} groups of dialogues in {ds.name}'s train+valid "
                          f"cannot make {cv.folds} folds")
    held_out = set(groups[cv.fold::cv.folds])
    splits = dict(ds.splits)
    splits["train"] = [_moved(d, "train") for d in pool if cv.group_of(d) not in held_out]
    splits["valid"] = [_moved(d, "valid") for d in pool if cv.group_of(d) in held_out]
    source = dict(ds.source, cv={"fold": cv.fold, "folds": cv.folds, "group": cv.group,
                                 "valid_groups": sorted(held_out)})
    return EmotionDataset(ds.name, ds.label_set, splits, source, ds.vad_scale)


def _moved(dialogue: Dialogue, split: str) -> Dialogue:
    return dialogue if dialogue.split == split else Dialogue(dialogue.id, dialogue.utterances, split)
