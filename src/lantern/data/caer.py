"""CAER-S (Lee et al., ICCV 2019): static frames of TV shows, 7 emotions, in its folder layout.

``<root>/CAER-S/{train,test}/<Class>/<image>.png`` with the classes ``Anger, Disgust, Fear,
Happy, Neutral, Sad, Surprise``. CAER-S has no validation split: ``valid_fraction`` of each
class's training images (by sha256 of the file name, so the choice does not depend on the file
system) is held out for selection. No CAER-S images exist on this machine; a user who has the
data points ``data_root`` at the folder that holds ``CAER-S/`` (or sets ``folder``). Every image
is a single-utterance dialogue with ``media["image"]`` and no text.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from lantern.data.dialogues import Dialogue, EmotionDataset, Utterance
from lantern.data.labels import CAER_7
from lantern.errors import ConfigError, DataError
from lantern.paths import data_root as default_root

FOLDER = "CAER-S"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def load_caer(data_root: str | Path | None = None, folder: str = FOLDER, label_set: str | None = None,
              valid_fraction: float = 0.1) -> EmotionDataset:
    if label_set not in (None, CAER_7.name):
        raise ConfigError(f"caer has one label set, {CAER_7.name!r}; got {label_set!r}")
    if not 0 < valid_fraction < 1:
        raise ConfigError(f"valid_fraction must be between 0 and 1, got {valid_fraction}")
    root = default_root(data_root) / folder
    splits: dict[str, list[Dialogue]] = {"train": [], "valid": [], "test": []}
    for official in ("train", "test"):
        base = root / official
        if not base.is_dir():
            raise DataError(f"CAER-S has no {official}/ folder here (expected {official}/<Class>/*.png)",
                            path=base)
        unknown = sorted(p.name for p in base.iterdir() if p.is_dir() and p.name not in CAER_7.classes)
        if unknown:
            raise DataError(f"unknown class folder(s) {unknown}; CAER-S has {list(CAER_7.classes)}", path=base)
        for label in CAER_7.classes:
            files = sorted((p for p in (base / label).glob("*") if p.suffix.lower() in IMAGE_SUFFIXES),
                           key=lambda p: hashlib.sha256(p.name.encode()).hexdigest())
            if not files:
                raise DataError(f"no images for class {label!r}", path=base / label)
            n_valid = int(round(valid_fraction * len(files))) if official == "train" else 0
            for i, path in enumerate(files):
                split = "valid" if i < n_valid else official
                uid = f"{official}/{label}/{path.stem}"
                u = Utterance(uid, "person", "", label=CAER_7.index(label), media={"image": str(path)})
                splits[split].append(Dialogue(uid, [u], split))
    return EmotionDataset("caer", CAER_7, splits,
                          {"path": str(root), "valid": f"{valid_fraction:.0%} of each class's train images"})


__all__ = ["load_caer"]
