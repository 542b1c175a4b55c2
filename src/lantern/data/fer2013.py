"""FER2013 face images (7 expressions) with our own folds.

Reads ``FER2013_test_images/test/<class>/PrivateTest_<id>.jpg`` under the data root: the
official PrivateTest split (3,589 48x48 grey faces), the only FER2013 images here. Since the
FER-2013 expression CNN inside ``visual:face`` was trained on FER2013's *training* split, these
images are unseen by it; we cut them into our own folds, stratified by class: each class's
images, ordered by the sha256 of their file name, go 70 % to train, 15 % to valid and 15 % to
test (a deterministic rule, independent of file-system order). Every image is a
single-utterance dialogue with ``media["image"]``, no text and speaker ``face``.

>>> fold_of(0.2), fold_of(0.8), fold_of(0.9)
('train', 'valid', 'test')
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from lantern.data.dialogues import Dialogue, EmotionDataset, Utterance
from lantern.data.labels import FER2013_7
from lantern.errors import ConfigError, DataError
from lantern.paths import data_root as default_root

FOLDER = "FER2013_test_images/test"
#: cumulative fold boundaries over each class's hash-ordered images
FOLDS = (("train", 0.70), ("valid", 0.85), ("test", 1.0))


def fold_of(position: float) -> str:
    """The fold of an image at ``position`` (0-1) in its class's hash order."""
    for fold, upper in FOLDS:
        if position < upper:
            return fold
    return FOLDS[-1][0]


def load_fer2013(data_root: str | Path | None = None, label_set: str | None = None) -> EmotionDataset:
    if label_set not in (None, FER2013_7.name):
        raise ConfigError(f"fer2013 has one label set, {FER2013_7.name!r}; got {label_set!r}")
    root = default_root(data_root) / FOLDER
    if not root.is_dir():
        raise DataError("FER2013 folder not found (set data_root or LANTERN_DATA_ROOT)", path=root)
    splits: dict[str, list[Dialogue]] = {f: [] for f, _ in FOLDS}
    unknown = sorted(p.name for p in root.iterdir() if p.is_dir() and p.name not in FER2013_7.classes)
    if unknown:
        raise DataError(f"unknown class folder(s) {unknown}; expected {list(FER2013_7.classes)}", path=root)
    for label in FER2013_7.classes:
        folder = root / label
        files = sorted((p for p in folder.glob("*.jpg")), key=lambda p: hashlib.sha256(p.name.encode()).hexdigest())
        if not files:
            raise DataError(f"no .jpg images for class {label!r}", path=folder)
        for i, path in enumerate(files):
            fold = fold_of(i / len(files))
            uid = f"{label}/{path.stem}"
            u = Utterance(uid, "face", "", label=FER2013_7.index(label), media={"image": str(path)})
            splits[fold].append(Dialogue(uid, [u], fold))
    return EmotionDataset("fer2013", FER2013_7, splits,
                          {"path": str(root), "folds": "own: 70/15/15 per class by sha256 of the file name",
                           "licence": "research only (FER2013 has no open licence)"})


__all__ = ["load_fer2013", "fold_of", "FOLDS"]
